"""From the counting state to what the diagram shows: `picture_of(state, now) -> Picture`.

This is where the diagram decides what a learner reads, in words and numbers (no
coordinates, no markup; `helpers.view.layout` and `helpers.view.svg` place and draw it):

- one box per **program**, under the name its code gave (`connection_name`): every cell's
  connection of a chapter is one program, and a program that publishes and consumes is one
  box whose deliveries come back to it;
- a real consumer is drawn as a consumer (its tag, prefetch and ack mode) from its first
  delivery, `basic_get` only for basic_get;
- a program that has left stays, faded and marked "left", while any count on the picture
  comes from it (until the diagram is reset);
- queues that carried messages and are gone (reply queues, exclusive queues) fold into one
  box per exchange, so every edge's count is accounted for.
"""

from __future__ import annotations

import re
from collections import Counter

from helpers.flow.clients import is_helper
from helpers.flow.scope import DEFAULT_EXCHANGE
from helpers.flow.scope import describe as describe_scope
from helpers.flow.state import Client, FlowState, Message
from helpers.i18n import N_, _
from helpers.view.picture import (
    CONSUMERS,
    EXCHANGES,
    PROGRAMS,
    QUEUES,
    Dot,
    Edge,
    Node,
    Picture,
)
from helpers.view.programs import OTHERS, Program, describe, gather, has_left, program_name
from helpers.view.text import (
    binding_label,
    blocked_note,
    blocked_why,
    caption,
    log_line,
    message_body,
)

ANIMATION_S = 1.4  # how long a dot travels; older messages are not animated
MAX_DOTS = 40  # dots per picture; more recent messages are summed up as "+N"
LOG_LINES = 5
# Translated where the picture is made (the language is chosen then, not at import).
LEGEND = (
    N_(
        "published: messages sent to an exchange · routed: copies placed in queues (one message "
        "in 3 queues counts 3) · unroutable: dropped by an exchange · delivered: handed to a "
        "consumer or basic_get"
    ),
)


def picture_of(state: FlowState, now: float, show_helpers: bool = True) -> Picture:
    """What the diagram shows of `state` at `now` (see the module docstring)."""
    return _Scene(state, now, show_helpers).picture()


class _Scene:
    def __init__(self, state: FlowState, now: float, show_helpers: bool):
        self.state = state
        self.now = now
        self.show_helpers = show_helpers
        self.exchanges = state.visible_exchanges()
        self.queues = state.visible_queues()
        self.drawn_queues = {q.name for q in self.queues}
        self.programs = gather(state, show_helpers)
        self.fold_of = self._folds()  # gone queue -> the folded box it is drawn in
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []

    # -- programs --------------------------------------------------------------------------

    def _program_name(self, client: Client) -> str:
        return program_name(self.state, client)

    def _program_for(self, client: Client) -> str | None:
        name = self._program_name(client)
        if name in self.programs:
            return name
        return OTHERS if OTHERS in self.programs else None

    # -- short-lived queues ----------------------------------------------------------------

    def _folds(self) -> dict[str, str]:
        """Each gone queue's folded box: the one of the first exchange that routed to it."""
        fold: dict[str, str] = {}
        for q in self.state.gone_queues():
            sources = sorted(x for (x, queue), n in self.state.routed.items() if queue == q and n)
            fold[q] = sources[0] if sources else "?"
        return fold

    # -- the picture -------------------------------------------------------------------------

    def picture(self) -> Picture:
        self._exchange_nodes()
        self._queue_nodes()
        self._program_nodes()
        self._binding_edges()
        self._publish_and_deliver_edges()
        dots, more = self._dots()
        return Picture(
            nodes=tuple(self.nodes),
            edges=tuple(self.edges),
            dots=tuple(dots),
            more_dots=more,
            caption=caption(self.state.totals()),
            legend=tuple(_(line) for line in LEGEND),
            empty="" if (self.exchanges or self.queues) else self._empty(),
            notes=self._notes(),
            log=tuple(
                log_line(self.state, m, self._program_name)
                for m in list(self.state.recent)[-LOG_LINES:]
            ),
        )

    def _empty(self) -> str:
        scope = describe_scope(self.state.prefix)
        return _("nothing named {scope} yet: declare an exchange or a queue").format(scope=scope)

    def _exchange_nodes(self) -> None:
        state = self.state
        depth = {x.name: 0 for x in self.exchanges}
        links = [
            (b.source, b.destination)
            for b in state.visible_bindings()
            if b.destination_type == "exchange"
        ]
        links += state.alternate_links()
        for _round in range(4):  # longest path, bounded so a cycle of bindings cannot loop
            for src, dst in links:
                if src in depth and dst in depth and src != dst:
                    depth[dst] = max(depth[dst], min(depth[src] + 1, 3))
        for i, x in enumerate(self.exchanges):
            shown = _("(default)") if x.name == DEFAULT_EXCHANGE else x.name
            kind = _("{type} exchange").format(type=x.type) if x.type != "?" else _("exchange")
            dropped = state.unroutable[x.name]
            self.nodes.append(
                Node(
                    id=_xid(x.name),
                    kind="exchange",
                    column=EXCHANGES,
                    title=shown,
                    lines=(kind,),
                    hover=f"{shown}: {kind}"
                    + (
                        _(", alternate exchange {exchange}").format(exchange=x.alternate)
                        if x.alternate
                        else ""
                    ),
                    depth=depth[x.name],
                    note=_("✕ {dropped} unroutable").format(dropped=dropped) if dropped else "",
                    order=i,
                )
            )

    def _queue_nodes(self) -> None:
        for i, q in enumerate(self.queues):
            counts = _("ready {ready} · unacked {unacked}")
            lines = [counts.format(ready=q.ready, unacked=q.unacked)]
            if q.type != "classic":
                lines.append(_("{type} queue").format(type=q.type))
            dlx = q.dead_letter_exchange
            hover = _("{name}: {type} queue, {ready} ready, {unacked} unacknowledged").format(
                name=q.name, type=q.type, ready=q.ready, unacked=q.unacked
            )
            if dlx is not None:
                hover += _("; dead letters go to {exchange}").format(exchange=dlx or _("(default)"))
            self.nodes.append(
                Node(
                    id=_qid(q.name),
                    kind="queue",
                    column=QUEUES,
                    title=q.name,
                    lines=tuple(lines),
                    hover=hover,
                    meter=(q.ready, q.unacked),
                    order=i,
                )
            )
        folds: dict[str, list[str]] = {}
        for q, x in self.fold_of.items():
            folds.setdefault(x, []).append(q)
        for i, (x, names) in enumerate(sorted(folds.items())):
            k = len(names)
            short = all(self.state.short_lived(n) for n in names)
            title = (_("{k} short-lived queue{s}") if short else _("{k} deleted queue{s}")).format(
                k=k, s="s" if k > 1 else ""
            )
            carried = sum(self.state.routed[(x, n)] for n in names)
            taken = sum(self.state.delivered[n] for n in names)
            self.nodes.append(
                Node(
                    id=_fid(x),
                    kind="folded",
                    column=QUEUES,
                    title=title,
                    lines=(
                        _("routed {carried} · delivered {taken}").format(
                            carried=carried, taken=taken
                        ),
                        _("gone now"),
                    ),
                    hover=_("{title}, no longer on the broker: ").format(title=title)
                    + ", ".join(names),
                    order=len(self.queues) + i,
                )
            )

    def _program_nodes(self) -> None:
        blocked = dict(self.state.topology.blocked)
        colours: dict[str, int] = {}
        where = self._cluster_nodes()
        for p in sorted(self.programs.values(), key=lambda p: p.order):
            both = bool(p.published) or bool(self.state.direct_replies and self._replies(p))
            column = PROGRAMS if both else CONSUMERS
            left = has_left(self.state, p)
            lines, hover = describe(p, left)
            on = sorted({where[c] for c in p.connections if c in where})
            if on:
                lines = [*lines, _("via {nodes}").format(nodes=", ".join(on))]
            how = next((blocked[c] for c in sorted(p.connections) if c in blocked), "")
            colours.setdefault(p.name, len(colours))
            self.nodes.append(
                Node(
                    id=_pid(p.name),
                    kind="program",
                    column=column,
                    title=p.name,
                    lines=tuple(lines),
                    hover=hover,
                    faded=left,
                    badge=_("blocked") if how else "",
                    badge_hover=blocked_why(how) if how else "",
                    program=colours[p.name],
                    helper=is_helper(p.name),
                    order=p.order,
                )
            )

    def _cluster_nodes(self) -> dict[str, str]:
        """Connection -> the short name of its node, when the programs drawn are connected
        through more than one node (a cluster, chapter 10); {} on a single node, whose
        pictures stay as they are."""
        nodes = self.state.clients.node
        where = {c: nodes(c) for p in self.programs.values() for c in p.connections if nodes(c)}
        if len(set(where.values())) < 2:
            return {}
        return {c: _short_node(n) for c, n in where.items()}

    def _replies(self, p: Program) -> bool:
        return any(
            self._program_name(r) == p.name or self._program_name(c) == p.name
            for r, c in self.state.direct_replies
        )

    # -- edges --------------------------------------------------------------------------------

    def _edge_counts(self) -> Counter:
        """Messages per drawn exchange-to-queue or exchange-to-exchange edge, from the
        broker's routed queues and the drawn paths. A message crosses a link between
        exchanges once, however many queues it reaches beyond it, so such a link counts
        the most copies any one queue received through it (per exchange published to)."""
        state = self.state
        counts: Counter = Counter()
        hops: dict[tuple[str, str, str], int] = {}
        for (x, q), n in state.routed.items():
            path = state.path(x, q)
            for a, b in zip(path, path[1:], strict=False):
                hops[(x, a, b)] = max(hops.get((x, a, b), 0), n)
            if path and q in self.drawn_queues:
                counts[(path[-1], q)] += n
            elif q in self.fold_of:
                counts[(x, "\0fold")] += n
        for (_x, a, b), n in hops.items():
            counts[(a, b)] += n
        return counts

    def _binding_edges(self) -> None:
        state = self.state
        counts = self._edge_counts()
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for b in state.visible_bindings():
            labels = grouped.setdefault((b.source, b.destination_type, b.destination), [])
            label = binding_label(state, b)
            args = dict(b.arguments)
            if label and "x-match" in args:  # a headers binding leads with its mode
                mode = args.pop("x-match")
                label = f"{mode}: " + ", ".join(f"{k}={v}" for k, v in args.items())
            if label and label not in labels:
                labels.append(label)
        for (source, dest_type, dest), labels in grouped.items():
            target = _qid(dest) if dest_type == "queue" else _xid(dest)
            label = " | ".join(labels)
            self.edges.append(
                Edge(
                    id=_eid("binding", _xid(source), target),
                    kind="binding",
                    source=_xid(source),
                    target=target,
                    label=label,
                    count=counts[(source, dest)],
                    hover=_("binding {source} → {dest}").format(
                        source=source or _("(default)"), dest=dest
                    )
                    + (f" [{label}]" if label else ""),
                )
            )
        for src, alt in state.alternate_links():
            self.edges.append(
                Edge(
                    id=_eid("alternate", _xid(src), _xid(alt)),
                    kind="alternate",
                    source=_xid(src),
                    target=_xid(alt),
                    label=_("alternate"),
                    count=counts[(src, alt)],
                    dashed=True,
                    hover=_(
                        "what {src} cannot route goes to its alternate exchange {alt}"
                    ).format(src=src, alt=alt),
                )
            )
        drawn_x = {x.name for x in self.exchanges}
        for q, dlx in state.dead_letter_links():
            if dlx in drawn_x:
                self.edges.append(
                    Edge(
                        id=_eid("deadletter", _qid(q), _xid(dlx)),
                        kind="deadletter",
                        source=_qid(q),
                        target=_xid(dlx),
                        label=_("dead letters"),
                        dashed=True,
                        hover=_(
                            "{q} dead-letters (rejected, expired, over its limit) to {value}"
                        ).format(q=q, value=dlx or _("(default)")),
                    )
                )
        for x in {x for x in self.fold_of.values() if x in drawn_x}:
            self.edges.append(
                Edge(
                    id=_eid("binding", _xid(x), _fid(x)),
                    kind="binding",
                    source=_xid(x),
                    target=_fid(x),
                    count=counts[(x, "\0fold")],
                    hover=_("messages routed to queues that have gone since"),
                )
            )

    def _publish_and_deliver_edges(self) -> None:
        state = self.state
        for name, p in self.programs.items():
            for x, n in sorted(p.published.items()):
                self.edges.append(
                    Edge(
                        id=_eid("publish", _pid(name), _xid(x)),
                        kind="publish",
                        source=_pid(name),
                        target=_xid(x),
                        count=n,
                        hover=_(
                            "{name} published {n} to {value}"
                        ).format(name=name, n=n, value=x or _("(default)")),
                    )
                )
            received: Counter = Counter()
            got: Counter = Counter()
            for q, n in p.received.items():
                received[self._queue_node(q)] += n
                got[self._queue_node(q)] += p.got[q]
            for c in p.consumers:  # a consumer that has received nothing yet: a thin edge
                received[_qid(c.queue)] += 0
            for src, n in sorted(received.items()):
                by_get = bool(n) and got[src] == n
                self.edges.append(
                    Edge(
                        id=_eid("deliver", src, _pid(name)),
                        kind="deliver",
                        source=src,
                        target=_pid(name),
                        label="basic_get" if by_get else "",
                        count=n,
                        hover=_(
                            "{name} received {n} from {value}"
                        ).format(name=name, n=n, value=src[2:])
                        + (_(" by basic_get") if by_get else ""),
                    )
                )
        for (replier, caller), n in sorted(state.direct_replies.items(), key=str):
            a, b = self._program_for(replier), self._program_for(caller)
            if a is None or b is None:
                continue
            self.edges.append(
                Edge(
                    id=_eid("reply", _pid(a), _pid(b)),
                    kind="reply",
                    source=_pid(a),
                    target=_pid(b),
                    label=_("reply · {n}").format(n=n),
                    count=n,
                    dashed=True,
                    hover=_(
                        "direct reply-to: {n} repl{suffix} sent straight to the caller's channel, "
                        "through no queue"
                    ).format(n=n, suffix="y" if n == 1 else "ies"),
                )
            )

    # -- dots, captions, log -------------------------------------------------------------------

    def _queue_node(self, queue: str) -> str:
        """The node a queue's messages are drawn at: its own, or its folded box."""
        if queue in self.drawn_queues:
            return _qid(queue)
        return _fid(self.fold_of.get(queue, "?"))

    def _dots(self) -> tuple[list[Dot], int]:
        """The recent messages as dots along the edges the broker used, oldest first."""
        edge_ids = {e.id for e in self.edges}
        out: list[Dot] = []
        skipped = 0
        for m in reversed(self.state.recent):
            age = self.now - m.at
            if age >= ANIMATION_S or age < -1:
                break
            if len(out) >= MAX_DOTS:
                skipped += 1
                continue
            program = self._program_for(m.client)
            if program is None:
                continue
            title = f"{m.exchange or _('(default)')} [{m.routing_key}] {message_body(m)}"
            for kind, path in self._paths(m, program):
                path = [e for e in path if e in edge_ids]
                if path:
                    out.append(Dot(tuple(path), age, kind, title))
        out.reverse()
        return out, skipped

    def _paths(self, m: Message, program: str) -> list[tuple[str, list[str]]]:
        """The edges one message travelled: (dot kind, edge ids) per copy."""
        me = _pid(program)
        if m.kind == "deliver":
            return [("deliver", [_eid("deliver", self._queue_node(m.queues[0]), me)])]
        if m.kind == "reply":
            targets = [e.id for e in self.edges if e.kind == "reply" and e.source == me]
            return [("reply", targets[:1])]
        first = _eid("publish", me, _xid(m.exchange))
        if not m.queues:
            return [("dropped", [first])]
        out = []
        for q in m.queues:
            hops = self.state.path(m.exchange, q) or [m.exchange]
            path = [first]
            for a, b in zip(hops, hops[1:], strict=False):
                path.append(_eid("binding", _xid(a), _xid(b)))
                path.append(_eid("alternate", _xid(a), _xid(b)))
            node = self._queue_node(q)
            last = hops[-1] if node.startswith("q:") else m.exchange
            path.append(_eid("binding", _xid(last), node))
            out.append(("publish", path))
        return out

    def _notes(self) -> tuple[str, ...]:
        drawn = {c for p in self.programs.values() for c in p.connections}
        note = blocked_note(self.state, drawn)
        return (note,) if note else ()


def _eid(kind: str, source: str, target: str) -> str:
    return f"{kind}|{source}|{target}"


def _xid(name: str) -> str:
    return "x:" + name


def _qid(name: str) -> str:
    return "q:" + name


def _fid(exchange: str) -> str:
    return "f:" + exchange


def _pid(name: str) -> str:
    return "p:" + name


def _short_node(name: str) -> str:
    """node2 for the tutorial's cluster's tutorial-node2-ab12cd@localhost; else the name
    before "@" (rabbit for rabbit@host)."""
    found = re.fullmatch(r"tutorial-(node\d+)-[0-9a-f]+@.*", name)
    return found.group(1) if found else name.split("@", 1)[0]
