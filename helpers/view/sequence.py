"""The sequence view: the diagram's timeline (`FlowState.timeline`) as lifelines and arrows.

The flow diagram says *where* messages went; this says *when, and in what order*: one
lifeline per program (named as the flow diagram names it), exchange and queue, and one arrow
per thing that happened, top to bottom in the order the diagram received it. `sequence_of`
is pure (steps in, a `Sequence` of words out, no coordinates, no markup);
`helpers.view.seq_draw` places and draws it.

Where each arrow comes from, and what the broker really reports (checked with pika 1.4.4 on
RabbitMQ 4.3.6 and 3.10.8, by a probe on the reference and system nodes and by the
recordings in tests/unit/data; tests/test_sequence.py asserts it on the reference node):

- **publish** (program -> exchange) and **route** (exchange -> each queue in
  `routed_queues`): the firehose's `publish.<exchange>`. An empty `routed_queues` is drawn
  as "routed to no queue" on the exchange: the trace is the same whether the message was
  dropped or (mandatory) returned, and carries no `mandatory` flag.
  A publish to the default exchange names the routing key's queue in `routed_queues` even
  when there is no such queue: a queue the diagram never knew of is drawn with the same
  words, "routed to no queue (none named ...)", not as a route; dropped or returned, the
  trace cannot tell (a recorded "return" can).
- **deliver** (queue -> program): `deliver.<queue>`, for a consumer and for basic_get alike,
  marked when redelivered.
- A publish's, a delivery's and a reply's label ends with the message's correlation id
  ("  corr=c1", a uuid's first 8 characters), so a request and its reply can be paired, and a
  late reply told apart; the trace carries the message's properties.
- **dead-letter**: the broker traces no publish when it dead-letters (nack/reject with
  requeue=False, expiry, overflow). The message shows up only when it is *delivered* from
  the dead-letter queue: that `deliver` event names the dead-letter exchange as its
  exchange, keeps the original routing key, and carries `x-death` and
  `x-first-death-queue/-reason` headers. So the dead-letter arrows (queue -> DLX -> queue)
  are drawn, dotted, just before that delivery, read from those headers (4.x's
  `x-last-death-*` for the latest of several, as in a retry ladder), and say so: the
  dead-lettering itself happened earlier, at a moment no event reports.
- **reply** with direct reply-to (program -> program): a publish to the default exchange
  with routing key `amq.rabbitmq.reply-to.<...>`. 4.3 traces it as routed to that address
  and also traces a `deliver.amq.rabbitmq.reply-to...` to the caller; 3.10 traces it as
  routed nowhere, and no delivery. The arrow is drawn once, from the publish, to the program
  whose request named that address in its reply_to. A reply through a reply *queue*
  (`amq.gen-...`) is an ordinary publish, route and deliver.
- **ack / nack / reject / confirm / return** are never traced (neither the consumer's acks
  nor the broker's confirms and basic.return): they appear only where the program recorded
  them (`FlowState.record`), dashed.
- **client events** (`amq.rabbitmq.event`): connection opened / closed and consumer started /
  cancelled, in grey. `connection.closed` carries no reason: a connection the broker closed
  for a missed heartbeat is drawn as _("connection closed") after the program's last step,
  and the program may record the error it got (a "note").

The teardown events of one close come from different broker processes; a consumer's end
that arrives after its connection's close is drawn before it, so saved outputs stay the same.
Likewise a connection's opening that arrives after its first traced step is drawn before it.
In a burst the firehose process sends alike events as one with a count (drawn "×N"), kind by
kind: order within such a batch is lost (the newest few go one by one).

Order: in the order the diagram received the steps. For a diagram of the vhost "/", trace
messages and client events come through one queue, in the broker's order; for another
vhost, each batch's client events come before its trace events. A program's record is
stamped after a barrier (the diagram's sync), so it follows the broker steps it saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from helpers.flow.clients import is_helper
from helpers.flow.events import TraceEvent, as_text
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.state import DIRECT_REPLY_TO, Recorded, Step
from helpers.i18n import _
from helpers.view.text import body_preview

MAX_LIFELINES = 10  # beyond, the least busy are folded into one "N others" lifeline
MAX_ARROWS = 200  # arrows drawn at most (the newest); `last` usually asks for fewer
PREVIEW = 24  # characters of a body in a label
CORR_CHARS = 8  # characters of a long correlation id in a label (a uuid's first 8)

# Where an arrow comes from, which says how it is drawn (see helpers.view.seq_draw).
BROKER, EVENTS, PROGRAM, XDEATH = "broker", "events", "program", "x-death"


@dataclass(frozen=True)
class Lifeline:
    id: str  # "p:<program>", "x:<exchange>", "q:<queue>" or "o:others"
    kind: str  # "program", "exchange", "queue" or "others"
    title: str  # plain text, never cut here
    hover: str = ""


@dataclass(frozen=True)
class Arrow:
    step: int  # the timeline order of the step it comes from
    kind: str  # publish, route, unroutable, deliver, deadletter, reply, consume, cancel,
    # connect, close, ack, nack, reject, confirm, return, note
    source: str  # lifeline id
    target: str  # lifeline id (== source: a note on that lifeline)
    label: str  # plain text, never cut here
    origin: str  # BROKER, EVENTS, PROGRAM or XDEATH


@dataclass(frozen=True)
class Sequence:
    lifelines: tuple[Lifeline, ...] = ()
    arrows: tuple[Arrow, ...] = ()
    earlier: int = 0  # steps of the span not drawn (before the `last` ones)
    folded: tuple[str, ...] = ()  # titles folded into the "others" lifeline

    def title(self, lifeline_id: str) -> str:
        return next((x.title for x in self.lifelines if x.id == lifeline_id), lifeline_id)


def window(
    steps: Iterable[Step], since: int = 0, last: int | None = None
) -> tuple[list[Step], int]:
    """The steps after order `since`, at most the `last` of them; and how many were left out."""
    chosen = [s for s in steps if s.order > since]
    if last is not None and len(chosen) > last:
        return chosen[len(chosen) - last :], len(chosen) - last
    return chosen, 0


def exchange_title(name: str) -> str:
    return name or _("(default exchange)")


def correlation(e: TraceEvent) -> str:
    """The message's correlation id, as a label ends with it ("  corr=c1"): how a request
    and its reply are told apart. A long one (a uuid) shows its first CORR_CHARS characters;
    none for an event that stands for several (`repeat`), whose ids differ."""
    cid = e.correlation_id
    if not cid or e.repeat > 1:
        return ""
    return f"  corr={cid if len(cid) <= CORR_CHARS + 4 else cid[:CORR_CHARS] + '…'}"


def sequence_of(
    steps: Iterable[Step],
    program_of: Callable[[str], str],
    named: Callable[[str], bool] = lambda _c: True,
    show_helpers: bool = True,
    earlier: int = 0,
    exists: Callable[[str], bool] = lambda _q: True,
) -> Sequence:
    """The sequence of these steps (oldest first). `program_of(connection)` is the program a
    connection belongs to (as the flow diagram names it); `named(connection)` whether the
    code gave it a name: one that did not is "unnamed program #N" (its address, which holds
    a port that changes every run, shows only on hover). `exists(queue)`: whether a queue
    the default exchange "routed" to, not known then, turned out to exist (the broker names
    the routing key's queue even when there is none, and then drops or returns the
    message)."""
    builder = _Builder(program_of, named, exists)
    for step in steps:
        builder.add(step)
    arrows = builder.arrows
    if not show_helpers:
        hidden = {
            i
            for i, line in builder.lines.items()
            if line.kind == "program" and is_helper(line.title)
        }
        arrows = [a for a in arrows if a.source not in hidden and a.target not in hidden]
    if len(arrows) > MAX_ARROWS:
        earlier += len({a.step for a in arrows[: len(arrows) - MAX_ARROWS]})
        arrows = arrows[len(arrows) - MAX_ARROWS :]
    used: list[str] = []
    for a in arrows:
        for end in (a.source, a.target):
            if end not in used:
                used.append(end)
    lines = [builder.lines[i] for i in used]
    return _fold(Sequence(tuple(lines), tuple(arrows), earlier))


def _fold(seq: Sequence) -> Sequence:
    """At most MAX_LIFELINES lifelines: the busiest stay, in their order; the rest are one."""
    if len(seq.lifelines) <= MAX_LIFELINES:
        return seq
    busy: Counter = Counter()
    for a in seq.arrows:
        busy[a.source] += 1
        busy[a.target] += 1
    rank = sorted(seq.lifelines, key=lambda x: -busy[x.id])  # stable: earlier first on ties
    keep = {x.id for x in rank[: MAX_LIFELINES - 1]}
    gone = [x for x in seq.lifelines if x.id not in keep]
    others = Lifeline(
        "o:others",
        "others",
        _("{n} others").format(n=len(gone)),
        _("folded: ") + ", ".join(x.title for x in gone),
    )
    lines = [x for x in seq.lifelines if x.id in keep] + [others]

    def end(i: str) -> str:
        return i if i in keep else others.id

    arrows = tuple(replace(a, source=end(a.source), target=end(a.target)) for a in seq.arrows)
    return Sequence(tuple(lines), arrows, seq.earlier, tuple(x.title for x in gone))


class _Builder:
    """Turns steps into arrows, one step at a time, naming the lifelines as it goes."""

    def __init__(
        self,
        program_of: Callable[[str], str],
        named: Callable[[str], bool],
        exists: Callable[[str], bool],
    ) -> None:
        self.program_of, self.named, self.exists = program_of, named, exists
        self.lines: dict[str, Lifeline] = {}
        self.arrows: list[Arrow] = []
        self._unnamed: dict[str, str] = {}  # program (its address) -> "unnamed program #N"
        self._last_queue: dict[str, str] = {}  # program id -> queue it last got a message from
        self._last_exchange: dict[str, str] = {}  # program id -> exchange it last published to
        self._dead_seen: set[tuple] = set()
        self._closed: dict[str, Arrow] = {}  # connection -> the arrow of its close
        self._first: dict[str, Arrow] = {}  # connection -> the first arrow of its first trace

    # -- lifelines ----------------------------------------------------------------------------

    def program(self, connection: str) -> str:
        name = self.program_of(connection) if connection else _("a program not known")
        if connection and not self.named(connection):
            unnamed = _("unnamed program #{n}").format(n=len(self._unnamed) + 1)
            title = self._unnamed.setdefault(name, unnamed)
            return self._line(f"p:{title}", "program", title, f"{title}: {name}")
        return self._line(f"p:{name}", "program", name)

    def by_name(self, program: str) -> str:
        return self._line(f"p:{program}", "program", program)

    def exchange(self, name: str) -> str:
        hover = _("exchange {name!r}").format(name=name)
        return self._line(f"x:{name}", "exchange", exchange_title(name), hover)

    def queue(self, name: str) -> str:
        return self._line(f"q:{name}", "queue", name, _("queue {name}").format(name=name))

    def _line(self, id_: str, kind: str, title: str, hover: str = "") -> str:
        if id_ not in self.lines:
            self.lines[id_] = Lifeline(id_, kind, title, hover or title)
        return id_

    def arrow(self, step: Step, kind: str, source: str, target: str, label: str, origin: str):
        self.arrows.append(Arrow(step.order, kind, source, target, label, origin))

    # -- steps ------------------------------------------------------------------------------

    def add(self, step: Step) -> None:
        event = step.event
        if isinstance(event, TraceEvent):
            before = len(self.arrows)
            self._trace(step, event)  # appends only
            if len(self.arrows) > before:
                self._first.setdefault(event.connection, self.arrows[before])
        elif isinstance(event, ClientEvent):
            self._client(step, event)
        elif isinstance(event, Recorded):
            self._recorded(step, event)

    def _trace(self, step: Step, e: TraceEvent) -> None:
        times = f" ×{e.repeat}" if e.repeat > 1 else ""
        body = body_preview(e.body, PREVIEW, e.body_size) + correlation(e)
        me = self.program(e.connection)
        if e.kind == "publish" and e.routing_key.startswith(DIRECT_REPLY_TO + "."):
            caller = (
                self.program(step.caller[0]) if step.caller else self.by_name(_("the caller"))
            )
            label = _("reply (direct reply-to) {body}{times}").format(body=body, times=times)
            self.arrow(step, "reply", me, caller, label, BROKER)
            return
        if e.kind == "publish":
            x = self.exchange(e.exchange)
            self._last_exchange[me] = x
            label = _("publish {key!r} {body}{times}").format(
                key=e.routing_key, body=body, times=times
            )
            self.arrow(step, "publish", me, x, label, BROKER)
            for q in step.queues + tuple(q for q in step.unsure if self.exists(q)):
                label = _("route{times}").format(times=times)
                self.arrow(step, "route", x, self.queue(q), label, BROKER)
            for q in (q for q in step.unsure if not self.exists(q)):
                label = _("routed to no queue (none named {q!r}){times}").format(q=q, times=times)
                self.arrow(step, "unroutable", x, x, label, BROKER)
            if not e.routed_queues:
                label = _("routed to no queue{times}").format(times=times)
                self.arrow(step, "unroutable", x, x, label, BROKER)
            elif step.hidden and not step.queues:
                label = _("routed to {n} queue(s) not drawn").format(n=step.hidden)
                self.arrow(step, "route", x, x, label, BROKER)
            return
        q = self.queue(e.queue)
        self._dead_letter(step, e, q)
        self._last_queue[me] = q
        again = _(" (redelivered)") if e.redelivered else ""
        label = _("deliver {body}{again}{times}").format(body=body, again=again, times=times)
        self.arrow(step, "deliver", q, me, label, BROKER)

    def _dead_letter(self, step: Step, e: TraceEvent, q: str) -> None:
        """The dead-letter arrows that the x-death headers of a delivery tell of."""
        headers = {str(k): as_text(v) for k, v in e.headers.items()}
        if "x-death" not in headers and "x-first-death-queue" not in headers:
            return
        # The latest dead-lettering (4.x says it in x-last-death-*; on 3.x, and for a message
        # dead-lettered once, the first is the only one).
        source = headers.get("x-last-death-queue") or headers.get("x-first-death-queue", "")
        reason = headers.get("x-last-death-reason") or headers.get("x-first-death-reason", "")
        key = (e.queue, source, e.body, e.message_id, headers.get("x-death", ""))
        if key in self._dead_seen:  # a redelivery of a message drawn dead-lettered already
            return
        self._dead_seen.add(key)
        x = self.exchange(e.exchange)
        why = f" ({reason})" if reason else ""
        if source:
            label = _("dead-lettered{why}, earlier").format(why=why)
            self.arrow(step, "deadletter", self.queue(source), x, label, XDEATH)
        self.arrow(step, "route", x, q, _("route (dead letter)"), XDEATH)

    def _client(self, step: Step, e: ClientEvent) -> None:
        me = self.program(e.connection)
        if e.kind == "connection.created":
            opened = Arrow(step.order, "connect", me, me, _("connection opened"), EVENTS)
            first = self._first.get(e.connection)
            if first is None:
                self.arrows.append(opened)
            else:
                # The broker publishes client events from another process than the channel
                # that traces: on a loaded machine a connection's first delivery has come
                # first (4.3.6). Nothing happens on a connection before it opens.
                self.arrows.insert(next(i for i, a in enumerate(self.arrows) if a is first),
                                   opened)
        elif e.kind == "connection.closed":
            self.arrow(step, "close", me, me, _("connection closed"), EVENTS)
            self._closed[e.connection] = self.arrows[-1]
        elif e.kind == "consumer.deleted" and e.connection in self._closed:
            # The teardown events of one close come from different broker processes: a
            # consumer's end may arrive after its connection's. Drawn before it, always.
            close = self._closed[e.connection]
            at = next(i for i, a in enumerate(self.arrows) if a is close)
            cancel = Arrow(
                close.step, "cancel", me, self.queue(e.queue), _("consumer cancelled"), EVENTS
            )
            self.arrows.insert(at, cancel)
        elif e.kind == "consumer.created":
            how = _("auto ack") if not e.ack_required else _("manual ack")
            prefetch = _(", prefetch {n}").format(n=e.prefetch) if e.prefetch else ""
            label = _("consume ({how}{prefetch})").format(how=how, prefetch=prefetch)
            self.arrow(step, "consume", me, self.queue(e.queue), label, EVENTS)
        elif e.kind == "consumer.deleted":
            self.arrow(step, "cancel", me, self.queue(e.queue), _("consumer cancelled"), EVENTS)

    def _recorded(self, step: Step, r: Recorded) -> None:
        me = self.by_name(r.program)
        detail = f" {r.detail}" if r.detail else ""
        if r.kind == "note":
            self.arrow(step, "note", me, me, r.detail or "note", PROGRAM)
            return
        if r.kind in ("ack", "nack", "reject"):
            other = self.queue(r.on) if r.on is not None else self._last_queue.get(me, me)
            self.arrow(step, r.kind, me, other, f"{r.kind}{detail}", PROGRAM)
            return
        other = self.exchange(r.on) if r.on is not None else self._last_exchange.get(me, me)
        self.arrow(step, r.kind, other, me, f"{r.kind}{detail}", PROGRAM)
