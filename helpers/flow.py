"""The state of the message-flow diagram, as plain Python (no widgets, no HTML).

Two sources feed it, and nothing else:

- the **topology** read from the management API (exchanges with their type and alternate
  exchange, bindings with their keys or header arguments, queues with their ready and
  unacknowledged counts, consumers with their prefetch), via `read_topology()`;
- the **events** of the firehose (`helpers.trace.TraceEvent`): what the broker did with each
  message. Which queues a message reached is taken from the broker's `routed_queues`; this
  module never evaluates a binding key. To *draw* a message it looks for the path of
  bindings (or alternate-exchange links) that leads from the exchange to a queue the broker
  named, which is drawing, not routing.

Everything is scoped by a name prefix (`ch04.` shows only the chapter's names, plus the
built-in exchanges that touch them), and the firehose's own queues are never shown.
Memory is bounded: counters per drawn object and a short window of recent messages.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from helpers.errors import ManagementError
from helpers.trace import TRACE_EXCHANGE, TRACING_MARK, TraceEvent, body_preview

if TYPE_CHECKING:
    from helpers.management import ManagementClient

DEFAULT_EXCHANGE = ""
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # the pseudo-queue of direct reply-to
SERVER_NAMED = "amq.gen-"  # names the broker gives queues declared with ""
FADE_S = 8.0  # a client whose connection closed fades for this long, then is not drawn
PENDING_GRACE_S = 3.0  # how long a publish to a vanished server-named queue waits for proof
RECENT = 64  # messages kept for animation and the "last messages" list
PREVIEW_SOURCE = 256  # bytes of each recent body kept for its preview
MAX_CLIENTS = 24  # producers/consumer channels drawn; the rest are counted as "others"


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


def read_topology(api: ManagementClient, vhost: str) -> Topology:
    """Read exchanges, queues (with their current counts), bindings and consumers."""
    exchanges = tuple(
        Exchange(
            e["name"],
            e.get("type", ""),
            str((e.get("arguments") or {}).get("alternate-exchange", "")),
            bool(e.get("internal")),
        )
        for e in api.exchanges(vhost)
    )
    queues = tuple(
        Queue(
            q["name"],
            int(q.get("messages_ready") or 0),
            int(q.get("messages_unacknowledged") or 0),
            int(q.get("consumers") or 0),
            _dead_letter_exchange(q.get("arguments") or {}),
            str(q.get("type") or "classic"),
        )
        for q in api.queue_totals(vhost)
    )
    try:
        connections = tuple(
            sorted(
                (c["name"], _connection_label(c))
                for c in api.connections()
                if c.get("vhost") == vhost
            )
        )
        connections_listed = True
    except ManagementError:
        connections, connections_listed = (), False
    bindings = tuple(
        Binding(
            b["source"],
            b["destination"],
            b["destination_type"],
            b.get("routing_key", ""),
            tuple(sorted((str(k), str(v)) for k, v in (b.get("arguments") or {}).items())),
        )
        for b in api.bindings(vhost)
    )
    try:
        listed = api.consumers(vhost)
    except ManagementError as exc:
        if " 400" not in str(exc):
            raise
        # Metrics collection is off: counts per queue still come from queue_totals, and who
        # consumed is drawn from the firehose's deliveries.
        return Topology(
            exchanges,
            queues,
            bindings,
            (),
            consumers_listed=False,
            connections=connections,
            connections_listed=connections_listed,
        )
    consumers = tuple(
        Consumer(
            c["queue"]["name"],
            c.get("consumer_tag", ""),
            int(c.get("prefetch_count") or 0),
            bool(c.get("ack_required")),
            (c.get("channel_details") or {}).get("connection_name", ""),
            int((c.get("channel_details") or {}).get("number") or 0),
        )
        for c in listed
    )
    return Topology(
        exchanges,
        queues,
        bindings,
        consumers,
        connections=connections,
        connections_listed=connections_listed,
    )


def _connection_label(connection: dict[str, Any]) -> str:
    named = (connection.get("client_properties") or {}).get("connection_name")
    return str(named) if named else client_address(connection["name"])


def client_address(broker_name: str) -> str:
    """The client's side of the broker's name for a connection ("ip:port -> ip:port")."""
    return broker_name.split(" -> ")[0]


@dataclass(frozen=True)
class Message:
    """One recent publish or delivery, as the diagram draws and lists it.

    It keeps the raw start of the body and the headers, and makes the text shown from them
    only when it is drawn: a burst brings thousands of messages, of which the last few are.
    """

    seq: int
    kind: str  # "publish", "deliver" or "reply" (direct reply-to)
    at: float  # time.monotonic() when the view received it
    exchange: str
    routing_key: str
    queues: tuple[str, ...]  # publish: in-scope queues reached; deliver: (queue,)
    client: tuple[str, int]  # (connection, channel) of the producer or consumer
    payload: bytes  # the first bytes of the body
    size: int  # the whole body's size
    message_id: str = ""
    raw_headers: tuple[tuple[str, Any], ...] = ()
    redelivered: bool = False
    hidden_routes: int = 0  # queues reached outside the prefix

    @property
    def body(self) -> str:
        """A plain-text preview of the body (not escaped)."""
        return body_preview(self.payload, size=self.size)

    @property
    def headers(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.raw_headers)


@dataclass
class FlowState:
    """Everything the diagram draws, built from a topology and the firehose events."""

    prefix: str | tuple[str, ...] = ""  # a name prefix, or several (str.startswith)
    recent_size: int = RECENT
    topology: Topology = field(default_factory=Topology)
    hidden_queues: set[str] = field(default_factory=set)
    version: int = 0  # bumps on every change, so the view knows when to render
    published: Counter = field(default_factory=Counter)  # exchange -> messages published
    unroutable: Counter = field(default_factory=Counter)  # exchange -> messages dropped
    routed: Counter = field(default_factory=Counter)  # (exchange, queue) -> messages
    delivered: Counter = field(default_factory=Counter)  # queue -> deliveries
    redelivered: Counter = field(default_factory=Counter)  # queue -> redeliveries
    deliveries_to: Counter = field(default_factory=Counter)  # (queue, client) -> deliveries
    producers: dict[tuple[str, int], int] = field(default_factory=dict)  # client -> number
    produced: Counter = field(default_factory=Counter)  # (client, exchange) -> messages
    used_exchanges: set[str] = field(default_factory=set)  # built-ins seen in events
    # Direct reply-to: (replying client, calling client) -> replies. The reply goes straight
    # to the caller's channel, through no queue, so it is neither routed nor unroutable.
    direct_replies: Counter = field(default_factory=Counter)
    # Clients whose connection has closed, and since when: their boxes fade, then go (their
    # counts stay in the totals), so many short-lived programs do not pile up.
    gone_at: dict[tuple[str, int], float] = field(default_factory=dict)
    events: int = 0  # in-scope events applied
    ignored: int = 0  # events outside the scope

    def __post_init__(self) -> None:
        self.recent: deque[Message] = deque(maxlen=self.recent_size)
        self._seq = 0
        self._scope_cache: tuple[set[str], set[str]] | None = None
        # (message seq, queue, when) published through the default exchange to a queue the
        # topology did not hold yet; settled by a later topology or a delivery (see below).
        self._pending: list[tuple[int, str, float]] = []
        self._callers: dict[str, tuple[str, int]] = {}  # reply_to address -> requester
        self._names: dict[str, str] = {}  # connection -> the name it gave, once seen
        self._tags: dict[tuple[str, str, int], str] = {}  # (queue, connection, channel) -> tag

    # -- scope ------------------------------------------------------------------------------

    def in_prefix(self, name: str) -> bool:
        """Whether the name starts with the prefix (or with one of them, for a tuple)."""
        return name.startswith(self.prefix)

    def queue_visible(self, name: str) -> bool:
        return self.in_prefix(name) and name not in self.hidden_queues

    def _scope(self) -> tuple[set[str], set[str]]:
        """(queue names, exchange names) that the diagram draws, from the topology."""
        if self._scope_cache is not None:
            return self._scope_cache
        topo = self.topology
        hidden = self.hidden_queues | {
            b.destination
            for b in topo.bindings
            if b.source == TRACE_EXCHANGE and b.destination_type == "queue"
        }
        self.hidden_queues = hidden
        queues = {q.name for q in topo.queues if self.queue_visible(q.name)}
        builtin = {e.name for e in topo.exchanges if _builtin(e.name)}
        exchanges = {
            e.name for e in topo.exchanges if self.in_prefix(e.name) and not _builtin(e.name)
        }
        exchanges |= {x for x in self.used_exchanges if x in builtin or self.in_prefix(x)}
        # Dead-letter exchanges of drawn queues are drawn too.
        exchanges |= {
            q.dead_letter_exchange
            for q in topo.queues
            if q.name in queues and q.dead_letter_exchange is not None
        }
        # Follow bindings and alternate exchanges into and out of the scope until stable.
        alternates = {e.name: e.alternate for e in topo.exchanges if e.alternate}
        changed = True
        while changed:
            changed = False
            for b in topo.bindings:
                if b.source in (DEFAULT_EXCHANGE, TRACE_EXCHANGE):
                    continue
                dest_in = b.destination in (queues if b.destination_type == "queue" else exchanges)
                if dest_in and b.source not in exchanges:
                    exchanges.add(b.source)
                    changed = True
                if b.source in exchanges and b.destination_type == "exchange":
                    if b.destination not in exchanges:
                        exchanges.add(b.destination)
                        changed = True
            for src, alt in alternates.items():
                if src in exchanges and alt not in exchanges:
                    exchanges.add(alt)
                    changed = True
        exchanges -= {TRACE_EXCHANGE, TRACING_MARK}  # the diagrams' own, never drawn
        self._scope_cache = (queues, exchanges)
        return self._scope_cache

    def visible_queues(self) -> list[Queue]:
        names, _ = self._scope()
        return sorted((q for q in self.topology.queues if q.name in names), key=lambda q: q.name)

    def visible_exchanges(self) -> list[Exchange]:
        _, names = self._scope()
        found = {e.name: e for e in self.topology.exchanges if e.name in names}
        for name in names - found.keys():  # seen in events before the topology caught up
            found[name] = Exchange(name, "direct" if name == DEFAULT_EXCHANGE else "?")
        return sorted(found.values(), key=lambda e: e.name)

    def visible_bindings(self) -> list[Binding]:
        """Bindings between drawn objects; the default exchange's only where it carried."""
        queues, exchanges = self._scope()
        out = []
        for b in self.topology.bindings:
            if b.source not in exchanges:
                continue
            if b.destination_type == "queue" and b.destination not in queues:
                continue
            if b.destination_type == "exchange" and b.destination not in exchanges:
                continue
            if b.source == DEFAULT_EXCHANGE and not self.routed[(DEFAULT_EXCHANGE, b.destination)]:
                continue
            out.append(b)
        return sorted(out, key=lambda b: (b.source, b.destination, b.key, b.arguments))

    def binding_label(self, binding: Binding) -> str:
        """What to write on a binding: its key, its header arguments, nothing for fanout."""
        types = {e.name: e.type for e in self.topology.exchanges}
        return "" if types.get(binding.source) == "fanout" else binding.label

    def alternate_links(self) -> list[tuple[str, str]]:
        _, exchanges = self._scope()
        return sorted(
            (e.name, e.alternate)
            for e in self.topology.exchanges
            if e.alternate and e.name in exchanges
        )

    def dead_letter_links(self) -> list[tuple[str, str]]:
        """(queue, its dead-letter exchange) for every drawn queue that has one."""
        return [
            (q.name, q.dead_letter_exchange)
            for q in self.visible_queues()
            if q.dead_letter_exchange is not None
        ]

    def visible_consumers(self) -> list[Consumer]:
        queues, _ = self._scope()
        return sorted(
            (c for c in self.topology.consumers if c.queue in queues),
            key=lambda c: (c.queue, c.connection, c.channel, c.tag),
        )

    # -- feeding it -------------------------------------------------------------------------

    def set_topology(self, topology: Topology, now: float | None = None) -> bool:
        """Replace the topology; returns whether anything the diagram shows changed."""
        now = time.monotonic() if now is None else now
        changed = topology != self.topology
        if changed:
            self.topology = topology
            self._scope_cache = None
            if len(self._names) < 10_000:
                self._names.update(topology.connections)
            if len(self._tags) < 10_000:
                self._tags.update(
                    {(c.queue, c.connection, c.channel): c.tag for c in topology.consumers}
                )
        if topology.connections_listed and self._note_gone(now):
            changed = True
        if self._pending and self._resolve_pending(now):
            changed = True
        if changed:
            self.version += 1
        return changed

    def _note_gone(self, now: float) -> bool:
        """Note which clients' connections have closed since; returns whether any did.

        Run on every topology read, not only on a changed one: a client first seen in an
        event that arrived after its connection was already gone must fade too.
        """
        open_now = {name for name, _label in self.topology.connections}
        clients = {client for client, _x in self.produced} | {c for _q, c in self.deliveries_to}
        noted = False
        for client in clients:
            if client[0] in open_now:
                noted = self.gone_at.pop(client, None) is not None or noted
            elif client not in self.gone_at:
                self.gone_at[client] = now
                noted = True
        return noted

    def fading(self, client: tuple[str, int], now: float) -> float:
        """0 for a live client; up to 1 as its box fades after its connection closed."""
        gone = self.gone_at.get(client)
        return 0.0 if gone is None else min(1.0, (now - gone) / FADE_S)

    def former_consumer(self, queue: str, client: tuple[str, int]) -> str | None:
        """The tag of the consumer this channel had on `queue`, if the API ever listed one."""
        return self._tags.get((queue, *client))

    def connection_label(self, client: tuple[str, int]) -> str:
        """What to call a client's connection: the name it gave, else its address.

        Names are remembered after the connection has closed, so a program that has left
        keeps its name in the picture (and in the saved one).
        """
        return self._names.get(client[0]) or client_address(client[0])

    def _resolve_pending(self, now: float) -> bool:
        """Settle messages the default exchange "routed" to queues we did not know yet.

        For the default exchange the broker lists the queue named by the routing key in
        `routed_queues` even when no such queue exists (the message is then dropped; checked
        on 3.10 and 4.3), so that alone proves nothing. Proof that it arrived is the queue in
        a topology read, or a delivery from it (`_deliver`). A server-named queue (an RPC
        client's reply queue, say) may live for milliseconds, between two topology reads:
        it gets `PENDING_GRACE_S` for its delivery to show up before it counts as dropped.
        Returns whether anything was settled.
        """
        names = {q.name for q in self.topology.queues}
        keep: list[tuple[int, str, float]] = []
        settled = False
        for seq, queue, at in self._pending:
            if queue in names:
                self._settle_routed(seq, queue)
            elif queue.startswith(SERVER_NAMED) and now - at < PENDING_GRACE_S:
                keep.append((seq, queue, at))
                continue
            else:
                self.unroutable[DEFAULT_EXCHANGE] += 1
            settled = True
        self._pending = keep
        return settled

    def _settle_routed(self, seq: int, queue: str) -> None:
        self.routed[(DEFAULT_EXCHANGE, queue)] += 1
        for i, m in enumerate(self.recent):
            if m.seq == seq:
                if queue not in m.queues:  # one message standing for several (`repeat`)
                    self.recent[i] = replace(m, queues=m.queues + (queue,))
                break

    @property
    def pending(self) -> int:
        """Publishes whose fate is not known yet (see `_resolve_pending`)."""
        return len(self._pending)

    def hide_queue(self, name: str) -> None:
        """Never draw this queue (the view's own trace queue)."""
        self.hidden_queues.add(name)
        self._scope_cache = None

    def add_events(self, events: Iterable[TraceEvent], now: float | None = None) -> int:
        """Apply firehose events; returns how many were in scope."""
        at = time.monotonic() if now is None else now
        self._scope()  # learn the other diagrams' trace queues before judging events
        applied = 0
        for event in events:
            if event.kind == "publish":
                applied += self._publish(event, at)
            elif event.kind == "deliver":
                applied += self._deliver(event, at)
        if applied:
            self.version += 1
            self.events += applied
        return applied

    def _publish(self, event: TraceEvent, at: float) -> int:
        x = event.exchange
        if x == DEFAULT_EXCHANGE and event.routing_key.startswith(DIRECT_REPLY_TO + "."):
            return self._direct_reply(event, at)
        shown = tuple(q for q in event.routed_queues if self.queue_visible(q))
        hidden = [q for q in event.routed_queues if q in self.hidden_queues]
        if hidden and not shown:
            self.ignored += 1
            return 0
        x_in = self.in_prefix(x) and not _builtin(x)
        if x == DEFAULT_EXCHANGE and not shown:
            x_in = self.in_prefix(event.routing_key) and bool(self.prefix)
        if not (x_in or shown):
            self.ignored += 1
            return 0
        if _builtin(x) and x not in self.used_exchanges:
            self.used_exchanges.add(x)
            self._scope_cache = None
        unknown: tuple[str, ...] = ()
        if x == DEFAULT_EXCHANGE and shown:
            known, _ = self._scope()  # the drawn queues of the last topology read (cached)
            unknown = tuple(q for q in shown if q not in known)
            shown = tuple(q for q in shown if q in known)
        n = event.repeat
        self.published[x] += n
        if not event.routed_queues:
            self.unroutable[x] += n
        for q in shown:
            self.routed[(x, q)] += n
        client = self._client(event.client)
        self.produced[(client, x)] += n
        if event.reply_to.startswith(DIRECT_REPLY_TO) and len(self._callers) < 10_000:
            self._callers[event.reply_to] = client
        self._remember(event, "publish", at, shown, client)
        room = 10_000 - len(self._pending)
        if unknown and room > 0:
            copies = [(self._seq, q, at) for q in unknown for _ in range(n)]
            self._pending.extend(copies[:room])
        return n

    def _direct_reply(self, event: TraceEvent, at: float) -> int:
        """A reply sent with direct reply-to: from the replier straight to the caller.

        RabbitMQ 4 traces it as routed to the address (and traces its delivery); 3.x as
        routed nowhere. Either way it reached the caller's channel, whom the request named
        in its reply_to. In scope when the request was (or everything is drawn).
        """
        caller = self._callers.get(event.routing_key)
        if caller is None and self.prefix != "":
            self.ignored += 1
            return 0
        n = event.repeat
        client = self._client(event.client)
        self.published[DEFAULT_EXCHANGE] += n
        self.produced[(client, DEFAULT_EXCHANGE)] += n
        self.direct_replies[(client, caller or ("unknown caller", 0))] += n
        self._remember(event, "reply", at, (), client)
        return n

    def _deliver(self, event: TraceEvent, at: float) -> int:
        q = event.queue
        if q.startswith(DIRECT_REPLY_TO):
            return 0  # counted with its publish (3.x traces no such delivery at all)
        if not self.queue_visible(q):
            self.ignored += 1
            return 0
        n = event.repeat
        for _ in range(n):  # each delivered from it: it existed, the message reached it
            i = next((i for i, (_s, name, _a) in enumerate(self._pending) if name == q), None)
            if i is None:
                break
            seq = self._pending.pop(i)[0]
            self._settle_routed(seq, q)
        self.delivered[q] += n
        if event.redelivered:
            self.redelivered[q] += n
        client = event.client if len(self.deliveries_to) < MAX_CLIENTS * 4 else ("others", 0)
        self.deliveries_to[(q, client)] += n
        self._remember(event, "deliver", at, (q,), client)
        return n

    def _client(self, client: tuple[str, int]) -> tuple[str, int]:
        if client not in self.producers:
            live = sum(1 for c in self.producers if c not in self.gone_at)
            if live >= MAX_CLIENTS:
                return ("others", 0)
            self.producers[client] = len(self.producers) + 1
        return client

    def _remember(
        self,
        event: TraceEvent,
        kind: str,
        at: float,
        queues: tuple[str, ...],
        client: tuple[str, int],
    ) -> None:
        self._seq += 1
        self.recent.append(
            Message(
                self._seq,
                kind,
                at,
                event.exchange,
                event.routing_key,
                queues,
                client,
                event.body[:PREVIEW_SOURCE],
                event.body_size,
                event.message_id,
                tuple(itertools.islice(event.headers.items(), 4)),
                event.redelivered,
                sum(1 for q in event.routed_queues if not self.queue_visible(q)),
            )
        )

    # -- reading it -------------------------------------------------------------------------

    def path(self, exchange: str, queue: str) -> list[str]:
        """Exchange names from `exchange` to the one bound to `queue`, for drawing a dot.

        The broker already said the message reached `queue`; this only finds which drawn
        edges lead there (a direct binding, else through exchange-to-exchange bindings or
        an alternate exchange), breadth first. Returns [] when no drawn edge leads there.
        """
        if exchange == DEFAULT_EXCHANGE:
            return [exchange]
        edges: dict[str, list[str]] = {}
        into_queue: set[str] = set()
        for b in self.topology.bindings:
            if b.destination_type == "exchange":
                edges.setdefault(b.source, []).append(b.destination)
            elif b.destination == queue:
                into_queue.add(b.source)
        for e in self.topology.exchanges:
            if e.alternate:
                edges.setdefault(e.name, []).append(e.alternate)
        frontier, seen = [[exchange]], {exchange}
        while frontier:
            nxt = []
            for p in frontier:
                if p[-1] in into_queue:
                    return p
                for dest in edges.get(p[-1], ()):
                    if dest not in seen:
                        seen.add(dest)
                        nxt.append(p + [dest])
            frontier = nxt
        return []

    def producer_label(self, client: tuple[str, int]) -> str:
        n = self.producers.get(client)
        return f"producer {n}" if n else "other producers"

    def consumer_label(self, consumer: Consumer) -> str:
        return consumer.tag

    def deliveries_by_consumer(self, queue: str | None = None) -> dict[str, int]:
        """How many deliveries each consumer got (by consumer tag), e.g. for a bar chart.

        A delivery is matched to a consumer by its connection and channel; deliveries to a
        channel with no consumer (basic_get, or a consumer that has gone) count under
        "basic_get/gone".
        """
        by_channel: dict[tuple[str, str, int], str] = {}
        for c in self.topology.consumers:
            by_channel.setdefault((c.queue, c.connection, c.channel), c.tag)
        out: Counter = Counter()
        for (q, client), n in sorted(self.deliveries_to.items()):
            if queue is not None and q != queue:
                continue
            out[by_channel.get((q, *client), "basic_get/gone")] += n
        return dict(sorted(out.items()))

    def totals(self) -> dict[str, int]:
        """Messages published, copies routed to queues, dropped, delivered, redelivered;
        and, once there are any, replies sent with direct reply-to (which no queue holds)."""
        totals = {
            "published": sum(self.published.values()),
            "routed": sum(self.routed.values()),
            "unroutable": sum(self.unroutable.values()),
            "delivered": sum(self.delivered.values()),
            "redelivered": sum(self.redelivered.values()),
        }
        replies = sum(self.direct_replies.values())
        if replies:
            totals["direct_replies"] = replies
        return totals

    def summary(self) -> str:
        """A short deterministic text of what is drawn: no ids, ports, tags or timings.

        This is the diagram's text/plain, which nbval compares.
        """
        head = f"FlowDiagram(prefix={self.prefix!r})"
        lines = [head]
        bindings = self.visible_bindings()
        alternates = dict(self.alternate_links())
        for x in self.visible_exchanges():
            routes = [
                f"{self.binding_label(b)} -> {b.destination}".lstrip()
                for b in bindings
                if b.source == x.name
            ]
            if x.name in alternates:
                routes.append(f"unroutable -> {alternates[x.name]}")
            shown = "(default)" if x.name == DEFAULT_EXCHANGE else x.name
            lines.append(
                f"  exchange {shown} ({x.type})" + (": " + "; ".join(routes) if routes else "")
            )
        consumers = Counter(c.queue for c in self.visible_consumers())
        for q in self.visible_queues():
            counts = f"ready={q.ready} unacked={q.unacked} consumers={consumers[q.name]}"
            if q.dead_letter_exchange is not None:
                dlx = q.dead_letter_exchange or "(default)"
                counts += f"; dead letters -> {dlx}"
            lines.append(f"  queue {q.name}: {counts}")
        totals = " ".join(f"{k}={v}" for k, v in self.totals().items())
        lines.append(f"  messages: {totals}")
        return "\n".join(lines)


def _dead_letter_exchange(arguments: dict[str, Any]) -> str | None:
    """The queue's x-dead-letter-exchange, or None when it has none ("" is the default)."""
    value = arguments.get("x-dead-letter-exchange")
    return None if value is None else str(value)


def _builtin(name: str) -> bool:
    return name == DEFAULT_EXCHANGE or name.startswith("amq.")


def _short(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 20 else text[:19] + "…"
