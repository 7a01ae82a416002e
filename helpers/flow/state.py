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

from helpers.flow.events import TraceEvent
from helpers.flow.scope import (
    DEFAULT_EXCHANGE,
    Prefix,
    Scope,
    in_prefix,
    is_builtin,
    path_between,
    scope_of,
)
from helpers.flow.topology import Binding, Consumer, Exchange, Queue, Topology

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # the pseudo-queue of direct reply-to
SERVER_NAMED = "amq.gen-"  # names the broker gives queues declared with ""
FADE_S = 8.0  # a client whose connection closed fades for this long, then is not drawn
PENDING_GRACE_S = 3.0  # how long a publish to a vanished server-named queue waits for proof
RECENT = 64  # messages kept for animation and the "last messages" list
PREVIEW_SOURCE = 256  # bytes of each recent body kept for its preview
MAX_CLIENTS = 24  # producers/consumer channels drawn; the rest are counted as "others"
MAX_REMEMBERED = 10_000  # connection names, consumer tags, direct reply-to callers kept
MAX_PENDING = 10_000  # default-exchange publishes waiting for proof (see _resolve_pending)
HEADERS_KEPT = 4  # headers of each recent message kept for the log

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


# -- the state ---------------------------------------------------------------------------------


@dataclass
class FlowState:
    """Everything the diagram draws, built from a topology and the firehose events."""

    prefix: Prefix = ""  # a name prefix, or several (str.startswith)
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
    # Clients whose connection has closed, and since when: their boxes fade, then go (their
    # counts stay in the totals), so many short-lived programs do not pile up.
    gone_at: dict[Client, float] = field(default_factory=dict)
    events: int = 0  # in-scope events applied
    ignored: int = 0  # events outside the scope

    def __post_init__(self) -> None:
        self.recent: deque[Message] = deque(maxlen=self.recent_size)
        self._seq = 0
        self._scope: Scope | None = None  # scope_of(...) for the current inputs
        # (message seq, queue, when) published through the default exchange to a queue the
        # topology did not hold yet; settled by a later topology or a delivery (see below).
        self._pending: list[tuple[int, str, float]] = []
        self._callers: dict[str, Client] = {}  # reply_to address -> requester
        self._names: dict[str, str] = {}  # connection -> the name it gave, once seen
        self._tags: dict[tuple[str, str, int], str] = {}  # (queue, connection, channel) -> tag

    # -- scope ------------------------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        """What is drawn: `scope_of` the current inputs, computed again when one changes."""
        if self._scope is None:
            self._scope = scope_of(
                self.topology, self.prefix, self.hidden_queues, self.used_exchanges
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
        queues = self.scope.queues
        return sorted(
            (c for c in self.topology.consumers if c.queue in queues),
            key=lambda c: (c.queue, c.connection, c.channel, c.tag),
        )

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
            if len(self._names) < MAX_REMEMBERED:
                self._names.update(topology.connections)
            if len(self._tags) < MAX_REMEMBERED:
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

    # -- feeding it: the events -------------------------------------------------------------

    def add_events(self, events: Iterable[TraceEvent], now: float | None = None) -> int:
        """Apply firehose events; returns how many were in scope."""
        at = time.monotonic() if now is None else now
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
            known = scope.queues  # the drawn queues of the last topology read
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
            live = sum(1 for c in self.producers if c not in self.gone_at)
            if live >= MAX_CLIENTS:
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

    # -- reading it -------------------------------------------------------------------------

    def fading(self, client: Client, now: float) -> float:
        """0 for a live client; up to 1 as its box fades after its connection closed."""
        gone = self.gone_at.get(client)
        return 0.0 if gone is None else min(1.0, (now - gone) / FADE_S)

    def former_consumer(self, queue: str, client: Client) -> str | None:
        """The tag of the consumer this channel had on `queue`, if the API ever listed one."""
        return self._tags.get((queue, *client))

    def connection_name(self, connection: str) -> str | None:
        """The name the connection gave (`connection_name`), remembered after it closed."""
        return self._names.get(connection)

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
