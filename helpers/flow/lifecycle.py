"""What the broker's event exchange says about clients, as `ClientEvent`s.

The management API lists a connection, its name and its consumers only from statistics
gathered about once a second; a connection a notebook cell opens and closes within that
second is never listed. RabbitMQ's `rabbitmq_event_exchange` plugin publishes to
`amq.rabbitmq.event` as things happen: `connection.created` (with the client's properties,
so the name the code gave), `channel.created`, `consumer.created`, ... The firehose process
reads them beside the trace messages, joins what needs joining (a consumer names its channel
by an Erlang pid; `channel.created` says which connection and number that pid is) and sends
`ClientEvent`s to the kernel.

Facts checked on RabbitMQ 4.3.6 and 3.10.8 (pika 1.4.4; recorded in
tests/unit/data/lifecycle-*.json by scripts/record_lifecycle_events.py):

- The exchange exists in ONE vhost only, `event_exchange.vhost` (the default vhost, "/",
  unless configured), and carries the events of every vhost. A passive declare of it in any
  other vhost answers 404 (which closes the channel). So the firehose of a diagram of "/"
  binds its own queue to it; that of another vhost opens a second connection to "/" for a
  queue of its own there, and falls back to the management API only where its user may not
  use "/" (a classroom's student: 530 NOT_ALLOWED) or the plugin is missing.
- Order: the plugin publishes from the broker's event handler, not from the client's
  connection process, so its messages and the trace messages reach the one queue the
  firehose reads by two paths. A client's steps are round trips (consume-ok before the
  publish), far longer than that hop: in every run here a short-lived client's events and
  its publish's trace messages came in the order they happened (in one queue; from two
  queues, a diagram of another vhost's, the kernel gets each flush's client events before
  its trace events). Event publishes are not traced, and are not counted in the vhost's
  `publish` statistics; their deliveries to the firehose's queue are counted in "/"'s
  `deliver_get` (tests/test_flow_lifecycle.py).
- The body is empty; everything is in the headers (property `timestamp` in seconds, and a
  header `timestamp_in_ms`). Pids are strings such as `<node@host.1796190126.2689.0>`. Text
  arrives from pika as `str`; `as_text` also takes bytes.
- `connection.created`: name ("127.0.0.1:55636 -> 127.0.0.1:5682", the name trace messages
  use), pid, vhost, user, protocol ("{0,9,1}"), user_provided_name (only when the client gave
  a `connection_name`), client_properties (a list of Erlang terms as text), auth_mechanism,
  host, port, peer_host, peer_port, channel_max, frame_max, timeout, connected_at, node,
  type, ssl_* and peer_cert_*, user_who_performed_action.
- `connection.closed`: name, pid, node, client_properties, user_provided_name (if given):
  no vhost, no user.
- `channel.created`: pid, connection (the connection's pid), number, name ("<connection
  name> (1)"), vhost, user.
- `channel.closed`: pid only (and consumer_count on 4.3): no vhost, no connection.
- `consumer.created`: channel (the channel's pid), queue (the plain name, not a resource),
  consumer_tag, prefetch_count, ack_required, exclusive, arguments, vhost.
  `consumer.deleted`: channel, queue, consumer_tag, vhost. A consumer still running when its
  channel or connection closes gets its consumer.deleted before channel.closed (classic and
  quorum queues). The teardown events of one close come from different processes, so
  channel.closed may follow connection.closed (seen once on 4.3): the joiner keeps a
  channel's connection until its own channel.closed.
- `queue.created`: name, vhost, durable, auto_delete, exclusive, arguments, owner_pid ("" for
  a queue without an owner); 4.3 adds type, leader, members. `queue.deleted`: name, vhost
  (4.3 adds type); user_who_performed_action "rmq-internal" when an exclusive queue went with
  its connection. An exclusive queue's queue.deleted comes before connection.closed on 3.10,
  after it on 4.3.

Joining: the vhost of `channel.closed` and `connection.closed` is known only from their
`created` event. A close whose `created` the joiner saw in another vhost is dropped; a
connection.closed it never saw the creation of (the connection is older than the diagram)
is passed on, since a close the diagram missed would leave a box open for ever, and the
connection's name is unique across vhosts; a channel.closed of a channel it never saw is
dropped (nothing in it says whose channel it was).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import astuple, dataclass, fields
from typing import Any

from helpers.flow.events import as_text

EVENT_EXCHANGE = "amq.rabbitmq.event"
# The one vhost that has it: RabbitMQ's `event_exchange.vhost`, unless configured the default
# vhost. A diagram of another vhost reads it over a second connection to this one.
EVENT_VHOST = "/"


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One thing that happened to a client: its connection, a channel or a consumer."""

    # "connection.created", "connection.closed", "channel.created", "channel.closed",
    # "consumer.created", "consumer.deleted", "queue.created" or "queue.deleted"
    kind: str
    connection: str = ""  # the broker's name of the connection ("ip:port -> ip:port")
    channel: int = 0  # channel number (channel.* and consumer.*; 0 when not known)
    name: str = ""  # connection.created: the connection_name the client gave ("" if none)
    protocol: str = ""  # connection.created: e.g. "AMQP 0-9-1"
    user: str = ""
    queue: str = ""  # consumer.* and queue.*: the queue's name
    consumer_tag: str = ""
    prefetch: int = 0  # consumer.created: its prefetch count (0: no limit)
    ack_required: bool = True  # consumer.created: False for auto_ack
    exclusive: bool = False  # queue.created: an exclusive queue
    auto_delete: bool = False  # queue.created
    durable: bool = True  # queue.created
    node: str = ""  # connection.created: the node the client is connected to


# The events the firehose binds its queue to (the plugin sends many more: vhost, user,
# permission, policy, binding, exchange and alarm events, which the diagram does not need).
EVENT_KEYS = (
    "connection.created",
    "connection.closed",
    "channel.created",
    "channel.closed",
    "consumer.created",
    "consumer.deleted",
    "queue.created",
    "queue.deleted",
)

MAX_KNOWN = 10_000  # connections and channels remembered; beyond, the oldest are forgotten
RECENTLY_CLOSED = 256  # closed channels kept, for a consumer.deleted that comes late

# The broker's protocol terms, as the management API spells them (checked on 4.3.6 and 3.10.8:
# "{'MQTT',{5,0}}" is "MQTT 5-0", "{'STOMP',\"1.2\"}" is "STOMP 1.2", "{1,0}" is "AMQP 1-0").
_PROTOCOLS = {
    "{0,9,1}": "AMQP 0-9-1",
    "{0,9}": "AMQP 0-9",
    "{0,8,0}": "AMQP 0-8",
    "{1,0}": "AMQP 1-0",
}
_TAGGED = re.compile(r"""^\{'?(MQTT|STOMP)'?,\s*(?:\{([\d,]+)\}|"([^"]*)")\}$""")
_CLIENT_ID = re.compile(r'\{client_id,longstr,<<"(.*?)">>\}')


def protocol_name(value: Any) -> str:
    """The broker's protocol term ("{0,9,1}", "{'MQTT',{5,0}}") as the management API shows it
    ("AMQP 0-9-1", "MQTT 5-0")."""
    text = as_text(value)
    tagged = _TAGGED.match(text)
    if tagged:
        name, numbers, quoted = tagged.groups()
        return f"{name} {numbers.replace(',', '-') if numbers else quoted}"
    return _PROTOCOLS.get(text, text)


def client_id(client_properties: Any) -> str:
    """The MQTT client id in a connection event's client properties ("" if none)."""
    items = client_properties if isinstance(client_properties, list) else [client_properties]
    for item in items:
        found = _CLIENT_ID.search(as_text(item or ""))
        if found:
            return found.group(1)
    return ""


class EventJoiner:
    """Turns event-exchange messages into ClientEvents, one at a time, in queue order.

    It remembers which connection and channel number each channel pid is (consumer events
    name only the pid), and each connection's and channel's vhost (their close events do
    not say it). Memory is bounded: a closed channel or connection is forgotten (a closed
    channel after RECENTLY_CLOSED more closes), and each map keeps at most MAX_KNOWN.
    """

    def __init__(self) -> None:
        # connection pid -> (connection name, vhost)
        self._connections: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # channel pid -> (connection name, channel number, vhost)
        self._channels: OrderedDict[str, tuple[str, int, str]] = OrderedDict()
        self._closed: OrderedDict[str, tuple[str, int, str]] = OrderedDict()

    def feed(
        self, routing_key: str, headers: dict[str, Any] | None, vhost: str
    ) -> ClientEvent | None:
        """The ClientEvent one event message stands for, or None: another vhost's, an event
        the diagram does not use, or a close nothing can be said about (see the module
        docstring). `headers` as pika hands them; `vhost` is the diagram's."""
        h = headers or {}
        kind = routing_key
        if kind == "connection.created":
            return self._connection_created(h, vhost)
        if kind == "connection.closed":
            known = self._connections.pop(as_text(h.get("pid", "")), None)
            if known is not None and known[1] != vhost:
                return None
            return ClientEvent(kind, connection=as_text(h.get("name", "")))
        if kind == "channel.created":
            return self._channel_created(h, vhost)
        if kind == "channel.closed":
            pid = as_text(h.get("pid", ""))
            known = self._channels.pop(pid, None)
            if known is None:
                return None
            _remember(self._closed, pid, known, RECENTLY_CLOSED)
            connection, number, where = known
            if where != vhost:
                return None
            return ClientEvent(kind, connection=connection, channel=number)
        if kind not in ("consumer.created", "consumer.deleted", "queue.created", "queue.deleted"):
            return None
        if as_text(h.get("vhost", "")) != vhost:
            return None
        if kind == "queue.deleted":
            return ClientEvent(kind, queue=as_text(h.get("name", "")))
        if kind == "queue.created":
            return ClientEvent(
                kind,
                queue=as_text(h.get("name", "")),
                exclusive=bool(h.get("exclusive", False)),
                auto_delete=bool(h.get("auto_delete", False)),
                durable=bool(h.get("durable", True)),
            )
        pid = as_text(h.get("channel", ""))
        connection, number, _where = (
            self._channels.get(pid) or self._closed.get(pid) or ("", 0, vhost)
        )
        return ClientEvent(
            kind,
            connection=connection,
            channel=number,
            queue=as_text(h.get("queue", "")),
            consumer_tag=as_text(h.get("consumer_tag", "")),
            prefetch=int(h.get("prefetch_count", 0) or 0),
            ack_required=bool(h.get("ack_required", True)),
        )

    def _connection_created(self, h: dict[str, Any], vhost: str) -> ClientEvent | None:
        name, where = as_text(h.get("name", "")), as_text(h.get("vhost", ""))
        _remember(self._connections, as_text(h.get("pid", "")), (name, where), MAX_KNOWN)
        if where != vhost:
            return None
        return ClientEvent(
            "connection.created",
            connection=name,
            # An MQTT client names itself by its client id (no connection_name in MQTT).
            name=as_text(h.get("user_provided_name", "")) or client_id(h.get("client_properties")),
            protocol=protocol_name(h.get("protocol", "")),
            user=as_text(h.get("user", "")),
            node=as_text(h.get("node", "")),
        )

    def _channel_created(self, h: dict[str, Any], vhost: str) -> ClientEvent | None:
        number = int(h.get("number", 0) or 0)
        where = as_text(h.get("vhost", ""))
        known = self._connections.get(as_text(h.get("connection", "")))
        if known is not None:
            connection = known[0]
        else:  # a connection older than the diagram: its channel's name says which it is
            connection = as_text(h.get("name", "")).removesuffix(f" ({number})")
        _remember(self._channels, as_text(h.get("pid", "")), (connection, number, where), MAX_KNOWN)
        if where != vhost:
            return None
        return ClientEvent(
            "channel.created",
            connection=connection,
            channel=number,
            user=as_text(h.get("user", "")),
        )


def _remember(table: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    """Put `key` in `table`, forgetting the oldest entries beyond `limit`."""
    if not key:
        return
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


# The fields of a client event on the pipe, in order (all of them: they are short).
WIRE_FIELDS = tuple(f.name for f in fields(ClientEvent))


def encode(event: ClientEvent) -> list[Any]:
    """A client event as a compact JSON-ready list (the order of WIRE_FIELDS)."""
    return list(astuple(event))


def decode(item: list[Any]) -> ClientEvent:
    """The event `encode` made the list from."""
    return ClientEvent(**dict(zip(WIRE_FIELDS, item, strict=True)))
