"""The state of the message-flow diagram, as plain Python (no widgets, no HTML, no network).

Two inputs feed it, and nothing else:

- the **topology** (`helpers.flow.topology`): exchanges with their type and alternate
  exchange, bindings with their keys or header arguments, queues with their ready and
  unacknowledged counts, consumers with their prefetch;
- the **events** of the firehose (`helpers.flow.events.TraceEvent`): what the broker did
  with each message. Which queues a message reached is taken from the broker's
  `routed_queues`; this module never evaluates a binding key. To *draw* a message it looks
  for the path of bindings (or alternate-exchange links) that leads from the exchange to a
  queue the broker named, which is drawing, not routing.

Everything is scoped by a name prefix (`ch04.` shows only the chapter's names, plus the
built-in exchanges that touch them), and the firehose's own queues are never shown: which
names are in scope is `helpers.flow.scope.scope_of()`, a plain function of the topology and
what events showed.
Memory is bounded: counters per drawn object, a short window of recent messages, and the
named limits below. Display text (labels, the summary nbval compares) is the views' business
(`helpers.view.text`).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from helpers.flow.clients import Clients, Consumer
from helpers.flow.events import TraceEvent
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.scope import (
    DEFAULT_EXCHANGE,
    Prefix,
    Scope,
    in_prefix,
    is_builtin,
    is_housekeeping,
    path_between,
    scope_of,
)
from helpers.flow.topology import Binding, Exchange, Queue, Topology

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # the pseudo-queue of direct reply-to
SERVER_NAMED = "amq.gen-"  # names the broker gives queues declared with ""
PENDING_GRACE_S = 3.0  # how long a publish to a vanished server-named queue waits for proof
RECENT = 64  # messages kept for animation and the "last messages" list
PREVIEW_SOURCE = 256  # bytes of each recent body kept for its preview
MAX_CLIENTS = 1_000  # (connection, channel) pairs counted apart; the rest as "others"
MAX_REMEMBERED = 10_000  # direct reply-to callers kept
MAX_PENDING = 10_000  # default-exchange publishes waiting for proof (see _resolve_pending)
HEADERS_KEPT = 4  # headers of each recent message kept for the log
TIMELINE = 4_000  # steps kept for the sequence view (helpers.view.sequence), newest last
# What a program may record of what the firehose cannot see (see `FlowState.record`).
RECORD_KINDS = ("ack", "nack", "reject", "confirm", "return", "note")
# Client events the sequence view draws (the others only serve the flow diagram).
TIMELINE_CLIENT_KINDS = (
    "connection.created",
    "connection.closed",
    "consumer.created",
    "consumer.deleted",
)

Client = tuple[str, int]  # (the broker's connection name, channel number)


@dataclass(frozen=True)
class Message:
    """One recent publish or delivery, as the diagram draws and lists it.

    It keeps the raw start of the body and the headers; the text shown is made from them
    only when it is drawn (`helpers.view.text`): a burst brings thousands of messages, of
    which the last few are.
    """

    seq: int
    kind: str  # "publish", "deliver" or "reply" (direct reply-to)
    at: float  # time.monotonic() when the view received it
    exchange: str
    routing_key: str
    queues: tuple[str, ...]  # publish: in-scope queues reached; deliver: (queue,)
    client: Client  # (connection, channel) of the producer or consumer
    payload: bytes  # the first bytes of the body
    size: int  # the whole body's size
    message_id: str = ""
    raw_headers: tuple[tuple[str, Any], ...] = ()
    redelivered: bool = False
    hidden_routes: int = 0  # queues reached outside the prefix


@dataclass(frozen=True)
class Recorded:
    """What a program saw that the broker's trace does not show (an ack it sent, a confirm
    or a returned message it received), recorded by the program's own code."""

    program: str  # the connection_name of the program that saw it
    kind: str  # one of RECORD_KINDS
    detail: str = ""  # a few words ("delivery tag 3", "NO_ROUTE"); shown as given
    on: str | None = None  # the queue (ack/nack/reject) or exchange (confirm/return)


@dataclass(frozen=True)
class Step:
    """One entry of the timeline the sequence view draws, in the order the diagram received
    it: a firehose event in scope (`source` "broker"), a client event ("events") or a
    program's own record ("program"). `order` grows by one per step and never repeats."""

    order: int
    source: str  # "broker", "events" or "program"
    event: TraceEvent | ClientEvent | Recorded
    queues: tuple[str, ...] = ()  # a publish: the drawn queues the broker routed it to
    hidden: int = 0  # a publish: queues it reached that are not drawn
    # A publish to the default exchange: queues the broker named that were not known to
    # exist then (see `_resolve_pending`: the broker names them even when there is none).
    unsure: tuple[str, ...] = ()
    caller: Client | None = None  # a direct reply-to reply: who asked (from its request)


# -- the state ---------------------------------------------------------------------------------


@dataclass
class FlowState:
    """Everything the diagram draws, built from a topology and the firehose events."""

    prefix: Prefix = ""  # what to draw: see helpers.flow.scope.in_prefix
    housekeeping: bool = False  # draw housekeeping traffic too (see scope.is_housekeeping)
    recent_size: int = RECENT
    topology: Topology = field(default_factory=Topology)
    hidden_queues: set[str] = field(default_factory=set)  # this view's own trace queue
    version: int = 0  # bumps on every change, so the view knows when to render
    published: Counter = field(default_factory=Counter)  # exchange -> messages published
    unroutable: Counter = field(default_factory=Counter)  # exchange -> messages dropped
    routed: Counter = field(default_factory=Counter)  # (exchange, queue) -> messages
    delivered: Counter = field(default_factory=Counter)  # queue -> deliveries
    redelivered: Counter = field(default_factory=Counter)  # queue -> redeliveries
    deliveries_to: Counter = field(default_factory=Counter)  # (queue, client) -> deliveries
    producers: dict[Client, int] = field(default_factory=dict)  # client -> number
    produced: Counter = field(default_factory=Counter)  # (client, exchange) -> messages
    used_exchanges: set[str] = field(default_factory=set)  # built-ins seen in events
    # Direct reply-to: (replying client, calling client) -> replies. The reply goes straight
    # to the caller's channel, through no queue, so it is neither routed nor unroutable.
    direct_replies: Counter = field(default_factory=Counter)
    events: int = 0  # in-scope events applied
    ignored: int = 0  # events outside the scope
    housekept: Counter = field(default_factory=Counter)  # "published"/"delivered" not drawn

    def __post_init__(self) -> None:
        self.recent: deque[Message] = deque(maxlen=self.recent_size)
        self._seq = 0
        self._scope: Scope | None = None  # scope_of(...) for the current inputs
        # (message seq, queue, when) published through the default exchange to a queue the
        # topology did not hold yet; settled by a later topology or a delivery (see below).
        self._pending: list[tuple[int, str, float]] = []
        self._callers: dict[str, Client] = {}  # reply_to address -> requester
        # Who the programs are: names, closes and consumers (helpers.flow.clients).
        self.clients = Clients()
        # Queues that held counted messages, by name: what the diagram last knew of each,
        # so that one which has gone (a reply queue) still accounts for its counts.
        # Queues a client event said were declared: are they short-lived (exclusive,
        # auto-delete or server-named)?
        self._created: dict[str, bool] = {}
        # The sequence view's timeline (a ring buffer) and the connections it has steps of.
        self.timeline: deque[Step] = deque(maxlen=TIMELINE)
        self.ticks = 0  # the order of the newest step (helpers.view.sequence marks by it)
        self._timeline_conns: dict[str, None] = {}

    # -- scope ------------------------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        """What is drawn: `scope_of` the current inputs, computed again when one changes."""
        if self._scope is None:
            self._scope = scope_of(
                self.topology,
                self.prefix,
                self.hidden_queues,
                self.used_exchanges,
                self.housekeeping,
            )
        return self._scope

    def in_prefix(self, name: str) -> bool:
        return in_prefix(name, self.prefix)

    def queue_visible(self, name: str) -> bool:
        return self.in_prefix(name) and name not in self.scope.hidden

    def hide_queue(self, name: str) -> None:
        """Never draw this queue (the view's own trace queue)."""
        self.hidden_queues.add(name)
        self._scope = None

    def visible_queues(self) -> list[Queue]:
        names = self.scope.queues
        return sorted((q for q in self.topology.queues if q.name in names), key=lambda q: q.name)

    def visible_exchanges(self) -> list[Exchange]:
        names = self.scope.exchanges
        found = {e.name: e for e in self.topology.exchanges if e.name in names}
        for name in names - found.keys():  # seen in events before the topology caught up
            found[name] = Exchange(name, "direct" if name == DEFAULT_EXCHANGE else "?")
        return sorted(found.values(), key=lambda e: e.name)

    def visible_bindings(self) -> list[Binding]:
        """Bindings between drawn objects; the default exchange's only where it carried."""
        queues, exchanges = self.scope.queues, self.scope.exchanges
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

    def alternate_links(self) -> list[tuple[str, str]]:
        exchanges = self.scope.exchanges
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
        """The consumers on drawn queues now (from client events, else the API)."""
        queues = self.scope.queues
        return [c for c in self.clients.consumers() if c.queue in queues]

    def short_lived(self, queue: str) -> bool:
        """Whether a queue was declared exclusive, auto-delete or server-named."""
        return self._created.get(queue, queue.startswith(SERVER_NAMED))

    def gone_queues(self) -> list[str]:
        """Queues that carried counted messages and are no longer drawn (they were deleted:
        a reply queue, an exclusive queue whose connection closed), oldest name first."""
        drawn = self.scope.queues
        counted = {q for (_x, q) in self.routed} | {q for (q, _c) in self.deliveries_to}
        return sorted(q for q in counted if q not in drawn and self.queue_visible(q))

    def path(self, exchange: str, queue: str) -> list[str]:
        """See `path_between`."""
        return path_between(self.topology, exchange, queue)

    # -- feeding it: the topology -----------------------------------------------------------

    def set_topology(self, topology: Topology, now: float | None = None) -> bool:
        """Replace the topology; returns whether anything the diagram shows changed."""
        now = time.monotonic() if now is None else now
        changed = topology != self.topology
        if changed:
            self.topology = topology
            self._scope = None
        counted = {c[0] for c, _x in self.produced} | {c[0] for _q, c in self.deliveries_to}
        if self.clients.note_topology(topology, now, counted):
            changed = True
        if self._pending and self._resolve_pending(now):
            changed = True
        if changed:
            self.version += 1
        return changed

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
        names = {q.name for q in self.topology.queues} | self._created.keys()
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

    # -- feeding it: client events -----------------------------------------------------------

    def add_client_events(self, events: Iterable[ClientEvent], now: float | None = None) -> bool:
        """Apply the broker's client events (names, consumers, closes, queues declared).

        They come in the broker's order with the trace events (one queue carries both), so
        a consumer is known here before its first delivery is counted, and a short-lived
        reply queue is known to exist when the publish to it arrives.
        """
        at = time.monotonic() if now is None else now
        changed = False
        for event in events:
            if event.kind == "queue.created" and len(self._created) < MAX_REMEMBERED:
                self._created[event.queue] = (
                    event.exclusive or event.auto_delete or event.queue.startswith(SERVER_NAMED)
                )
                changed = True
            changed = self.clients.apply(event, at) or changed
            self._time_client(event)
        if changed:
            self.version += 1
        return changed

    def reset(self) -> None:
        """Forget every count and recent message (the diagram's Reset): programs that have
        left go from the picture with them; what exists now stays drawn."""
        self.published.clear()
        self.unroutable.clear()
        self.routed.clear()
        self.delivered.clear()
        self.redelivered.clear()
        self.deliveries_to.clear()
        self.producers.clear()
        self.produced.clear()
        self.direct_replies.clear()
        self.housekept.clear()
        self.recent.clear()
        self.timeline.clear()
        self._pending.clear()
        self.events = self.ignored = 0
        self.version += 1

    # -- feeding it: the events -------------------------------------------------------------

    def add_events(self, events: Iterable[TraceEvent], now: float | None = None) -> int:
        """Apply firehose events; returns how many were in scope."""
        at = time.monotonic() if now is None else now
        applied = 0
        for event in events:
            n = 0
            if event.kind == "publish":
                n = self._publish(event, at)
            elif event.kind == "deliver":
                n = self._deliver(event, at)
            if n:
                self._time_trace(event)
            applied += n
        if applied:
            self.version += 1
            self.events += applied
        return applied

    def _publish(self, event: TraceEvent, at: float) -> int:
        x = event.exchange
        if not self.housekeeping and is_housekeeping(x, event.routing_key):
            self.housekept["published"] += event.repeat
            return 0
        if x == DEFAULT_EXCHANGE and event.routing_key.startswith(DIRECT_REPLY_TO + "."):
            return self._direct_reply(event, at)
        scope = self.scope
        shown = tuple(q for q in event.routed_queues if self.queue_visible(q))
        if not shown and any(q in scope.hidden for q in event.routed_queues):
            self.ignored += 1
            return 0
        x_in = self.in_prefix(x) and not is_builtin(x)
        if x == DEFAULT_EXCHANGE and not shown:
            x_in = self.in_prefix(event.routing_key) and bool(self.prefix)
        if not (x_in or shown):
            self.ignored += 1
            return 0
        if is_builtin(x) and x not in self.used_exchanges:
            self.used_exchanges.add(x)
            self._scope = None
        unknown: tuple[str, ...] = ()
        if x == DEFAULT_EXCHANGE and shown:
            # The drawn queues of the last topology read, and those declared since.
            known = scope.queues | self._created.keys()
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
        if event.reply_to.startswith(DIRECT_REPLY_TO) and len(self._callers) < MAX_REMEMBERED:
            self._callers[event.reply_to] = client
        self._remember(event, "publish", at, shown, client)
        room = MAX_PENDING - len(self._pending)
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
            if not self.housekeeping and is_housekeeping(q):
                self.housekept["delivered"] += event.repeat
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

    def _client(self, client: Client) -> Client:
        if client not in self.producers:
            if len(self.producers) >= MAX_CLIENTS:
                return ("others", 0)
            self.producers[client] = len(self.producers) + 1
        return client

    def _remember(
        self, event: TraceEvent, kind: str, at: float, queues: tuple[str, ...], client: Client
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
                tuple(itertools.islice(event.headers.items(), HEADERS_KEPT)),
                event.redelivered,
                sum(1 for q in event.routed_queues if not self.queue_visible(q)),
            )
        )

    # -- the timeline of the sequence view ----------------------------------------------------

    def record(self, program: str, kind: str, detail: str = "", on: str | None = None) -> Step:
        """Add what a program saw that the firehose does not (see `Recorded`), as the newest
        step. The caller makes sure that the broker's steps before it have arrived."""
        if kind not in RECORD_KINDS:
            raise ValueError(f"kind must be one of {', '.join(RECORD_KINDS)}, not {kind!r}")
        step = self._step("program", Recorded(program, kind, str(detail), on))
        self.version += 1
        return step

    def _step(self, source: str, event: Any, **more: Any) -> Step:
        self.ticks += 1
        step = Step(self.ticks, source, event, **more)
        self.timeline.append(step)
        connection = getattr(event, "connection", "")
        if connection and connection not in self._timeline_conns:
            self._timeline_conns[connection] = None
            if len(self._timeline_conns) > MAX_REMEMBERED:
                del self._timeline_conns[next(iter(self._timeline_conns))]
        return step

    def _time_trace(self, event: TraceEvent) -> None:
        """A firehose event the diagram counted, as a step (with what the sequence needs)."""
        if len(event.body) > PREVIEW_SOURCE:  # (the live diagram's are cut on the pipe)
            event = replace(event, body=event.body[:PREVIEW_SOURCE], size=event.body_size)
        if event.kind != "publish":
            self._step("broker", event)
            return
        if event.routing_key.startswith(DIRECT_REPLY_TO + "."):
            self._step("broker", event, caller=self._callers.get(event.routing_key))
            return
        shown = tuple(q for q in event.routed_queues if self.queue_visible(q))
        hidden = len(event.routed_queues) - len(shown)
        unsure: tuple[str, ...] = ()
        if event.exchange == DEFAULT_EXCHANGE:
            known = self.scope.queues | self._created.keys()
            unsure = tuple(q for q in shown if q not in known)
            shown = tuple(q for q in shown if q in known)
        self._step("broker", event, queues=shown, hidden=hidden, unsure=unsure)

    def queue_known(self, name: str) -> bool:
        """Whether a queue of this name existed at some point the diagram knows of: in the
        topology, declared (a client event), or delivered from."""
        return (
            name in self._created
            or self.delivered[name] > 0
            or any(q.name == name for q in self.topology.queues)
        )

    def _time_client(self, event: ClientEvent) -> None:
        """A client event as a step when the sequence draws it: a connection the chapter
        named (in the prefix), or one that already has steps; a consumer of a drawn queue."""
        if event.kind not in TIMELINE_CLIENT_KINDS:
            return
        if event.kind.startswith("consumer."):
            keep = self.queue_visible(event.queue)
        elif event.kind == "connection.created":
            keep = bool(event.name) and (self.prefix == "" or self.in_prefix(event.name))
        else:
            keep = event.connection in self._timeline_conns
        if keep:
            self._step("events", event)

    # -- reading it -------------------------------------------------------------------------

    def connection_name(self, connection: str) -> str | None:
        """The name the connection gave (`connection_name`), remembered after it closed."""
        return self.clients.given_name(connection)

    def deliveries_by_consumer(self, queue: str | None = None) -> dict[str, int]:
        """How many deliveries each consumer got (by consumer tag), e.g. for a bar chart.

        A delivery is matched to a consumer by its connection and channel (the consumer
        seen there, now or before); deliveries to a channel that never had a consumer on
        that queue were basic_get's, counted under "basic_get".
        """
        out: Counter = Counter()
        for (q, client), n in sorted(self.deliveries_to.items()):
            if queue is not None and q != queue:
                continue
            seen = self.clients.consumers_ever(q, *client)
            out[seen[0].tag if len(seen) == 1 else "basic_get" if not seen else "consumers"] += n
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
        hidden = sum(self.housekept.values())
        if hidden:
            totals["housekeeping_hidden"] = hidden
        return totals
