"""What a vhost holds, as the management API lists it: exchanges, queues, bindings,
consumers and connections, as plain frozen dataclasses.

`topology_from_api` is a pure function of the API's JSON, so recorded answers drive it in
tests without a broker; `read_topology` makes the HTTP calls and hands their answers to it.
Nothing here knows about the diagram or the firehose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from helpers.errors import ManagementError

if TYPE_CHECKING:
    from helpers.management import ManagementClient

Json = dict[str, Any]
NOT_LISTED = 400  # what /api/consumers answers when management metrics are switched off
# A connection's `state` while a resource alarm is on (RabbitMQ 3.x and 4.x): "blocked" when
# it published during the alarm and the broker stopped reading it, "blocking" when its next
# publish will be (a connection that only consumes stays "blocking" and is never stopped).
BLOCKED_STATES = ("blocked", "blocking")


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str
    alternate: str = ""  # the alternate-exchange argument, if any
    internal: bool = False


@dataclass(frozen=True)
class Queue:
    name: str
    ready: int = 0
    unacked: int = 0
    consumers: int = 0
    # Its x-dead-letter-exchange argument: where the broker republishes what the queue
    # rejects, expires or drops. The firehose does not trace dead-lettering, so this link
    # comes from the queue's declaration and is drawn without dots.
    dead_letter_exchange: str | None = None
    type: str = "classic"  # classic, quorum or stream

    @property
    def counts_lag(self) -> bool:
        """Whether the management API's counts for it come from lagging statistics."""
        return self.type != "classic"


@dataclass(frozen=True)
class Binding:
    source: str
    destination: str
    destination_type: str  # "queue" or "exchange"
    key: str
    arguments: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """The binding key, or the header arguments for a headers exchange."""
        if self.arguments:
            return ", ".join(f"{k}={v}" for k, v in self.arguments)
        return self.key


@dataclass(frozen=True)
class Consumer:
    queue: str
    tag: str
    prefetch: int
    ack_required: bool
    connection: str
    channel: int


@dataclass(frozen=True)
class Topology:
    """What the management API says the vhost holds (all of it, not yet filtered)."""

    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    # False when the broker does not list consumers: RabbitMQ 4 deprecates the management
    # metrics behind /api/consumers (`management_metrics_collection`), which then answers 400.
    consumers_listed: bool = True
    # The vhost's open connections: (the broker's name for it, what to call it). The name a
    # client gave (`connection_name`) when it gave one, else its address.
    connections: tuple[tuple[str, str], ...] = ()
    connections_listed: bool = False
    # The vhost's connections that a resource alarm blocks: (the broker's name for it, its
    # state, "blocked" or "blocking"; see BLOCKED_STATES).
    blocked: tuple[tuple[str, str], ...] = ()
    # Each open connection's protocol ("AMQP 0-9-1", "MQTT 5-0", "STOMP 1.2", "AMQP 1-0") and
    # node: (the broker's name for it, protocol, node).
    protocols: tuple[tuple[str, str, str], ...] = ()


def read_topology(api: ManagementClient, vhost: str) -> Topology:
    """Read exchanges, queues (with their current counts), bindings, consumers, connections."""
    exchanges = api.exchanges(vhost)
    queues = api.queue_totals(vhost)
    try:
        connections: list[Json] | None = [c for c in api.connections() if c.get("vhost") == vhost]
    except ManagementError:
        connections = None
    bindings = api.bindings(vhost)
    try:
        consumers: list[Json] | None = api.consumers(vhost)
    except ManagementError as exc:
        if exc.status != NOT_LISTED:
            raise
        # Metrics collection is off: counts per queue still come from queue_totals, and who
        # consumed is drawn from the firehose's deliveries.
        consumers = None
    return topology_from_api(exchanges, queues, bindings, consumers, connections)


def topology_from_api(
    exchanges: list[Json],
    queues: list[Json],
    bindings: list[Json],
    consumers: list[Json] | None,
    connections: list[Json] | None,
) -> Topology:
    """The topology from the API's answers; None for a list the broker would not give."""
    return Topology(
        exchanges=tuple(
            Exchange(
                e["name"],
                e.get("type", ""),
                str((e.get("arguments") or {}).get("alternate-exchange", "")),
                bool(e.get("internal")),
            )
            for e in exchanges
        ),
        queues=tuple(
            Queue(
                q["name"],
                int(q.get("messages_ready") or 0),
                int(q.get("messages_unacknowledged") or 0),
                int(q.get("consumers") or 0),
                _dead_letter_exchange(q.get("arguments") or {}),
                str(q.get("type") or "classic"),
            )
            for q in queues
        ),
        bindings=tuple(
            Binding(
                b["source"],
                b["destination"],
                b["destination_type"],
                b.get("routing_key", ""),
                tuple(sorted((str(k), str(v)) for k, v in (b.get("arguments") or {}).items())),
            )
            for b in bindings
        ),
        consumers=tuple(
            Consumer(
                c["queue"]["name"],
                c.get("consumer_tag", ""),
                int(c.get("prefetch_count") or 0),
                bool(c.get("ack_required")),
                (c.get("channel_details") or {}).get("connection_name", ""),
                int((c.get("channel_details") or {}).get("number") or 0),
            )
            for c in consumers or ()
        ),
        consumers_listed=consumers is not None,
        connections=tuple(sorted((c["name"], _connection_label(c)) for c in connections or ())),
        connections_listed=connections is not None,
        blocked=tuple(
            sorted(
                (c["name"], str(c["state"]))
                for c in connections or ()
                if c.get("state") in BLOCKED_STATES
            )
        ),
        protocols=tuple(
            sorted(
                (c["name"], str(c.get("protocol") or ""), str(c.get("node") or ""))
                for c in connections or ()
            )
        ),
    )


def _connection_label(connection: Json) -> str:
    properties = connection.get("client_properties") or {}
    # An MQTT client has no connection_name: its client id names it.
    named = properties.get("connection_name") or properties.get("client_id")
    return str(named) if named else client_address(connection["name"])


def client_address(broker_name: str) -> str:
    """The client's side of the broker's name for a connection ("ip:port -> ip:port")."""
    return broker_name.split(" -> ")[0]


def _dead_letter_exchange(arguments: Json) -> str | None:
    """The queue's x-dead-letter-exchange, or None when it has none ("" is the default)."""
    value = arguments.get("x-dead-letter-exchange")
    return None if value is None else str(value)
