"""What the flow diagram shows, as plain data: boxes, edges, dots and captions.

`picture_of(state, now)` (in `helpers.view.scene`) turns the counting state into a
`Picture`; `helpers.view.layout` places it and `helpers.view.svg` draws it. The picture holds
only words and numbers, no coordinates and no markup, so each side is tested alone: what the
diagram *says* (every count accounted for, the names the code gave) against recorded broker
runs, and where it is *drawn* (no label over another, nothing cut) in a real browser.

All text here is plain and unescaped; the drawing escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Columns, left to right. A program that both publishes and consumes is drawn once, in
# PROGRAMS; the deliveries it receives come back to it as edges of kind "deliver" whose
# target is in PROGRAMS (a back edge: the layout routes it around the other boxes).
PROGRAMS, EXCHANGES, QUEUES, CONSUMERS = "programs", "exchanges", "queues", "consumers"

# Node kinds: "program" (a client program: producer, consumer, or both), "exchange",
# "queue", "folded" (short-lived queues of one exchange, drawn as one box).
# Edge kinds: "publish" (program -> exchange), "binding" (exchange -> queue or exchange),
# "alternate" (exchange -> its alternate exchange), "deadletter" (queue -> its dead-letter
# exchange, against the flow), "deliver" (queue -> program), "reply" (direct reply-to:
# program -> program, through no queue).


@dataclass(frozen=True)
class Node:
    id: str  # stable across renders ("x:ch04.logs", "q:ch04.errors", "p:ch04.producer")
    kind: str  # see above
    column: str  # PROGRAMS, EXCHANGES, QUEUES or CONSUMERS
    title: str  # the first, bold line: the name the code gave
    lines: tuple[str, ...] = ()  # further lines, most important first
    hover: str = ""  # the whole story, shown on hover (<title>); never cut
    depth: int = 0  # exchanges only: 0, or 1+ behind exchange-to-exchange links
    faded: bool = False  # a program whose connections have all closed ("left")
    badge: str = ""  # a short red tag on the box ("blocked"), or ""
    badge_hover: str = ""
    note: str = ""  # a red line above the box ("✕ 3 unroutable"), or ""
    program: int | None = None  # colour index of the program (the same on its boxes)
    meter: tuple[int, int] | None = None  # queues: (ready, unacked) for the small bar
    helper: bool = False  # one of the tutorial's own connections (a check, the panel)
    order: int = 0  # position within its column (smaller first); ties by id


@dataclass(frozen=True)
class Edge:
    id: str
    kind: str  # see above
    source: str  # node id
    target: str  # node id
    label: str = ""  # binding key(s), "alternate", "dead letters", ""; never cut here
    count: int = 0  # messages it carried (0: drawn thin and grey)
    dashed: bool = False
    hover: str = ""  # the whole story for a <title>


@dataclass(frozen=True)
class Dot:
    """One recent message moving along edges (an animation), newest last."""

    edges: tuple[str, ...]  # edge ids in the order it travels them
    age: float  # seconds since it happened
    kind: str  # "publish", "deliver", "reply" or "dropped"
    title: str  # the message in one line (exchange, key, body preview)


@dataclass(frozen=True)
class Picture:
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    dots: tuple[Dot, ...] = ()
    more_dots: int = 0  # recent messages not animated ("+N more in flight")
    caption: str = ""  # the totals in one line
    legend: tuple[str, ...] = ()  # what the totals count, at body-text size
    empty: str = ""  # shown when there is nothing to draw yet
    notes: tuple[str, ...] = field(default_factory=tuple)  # red lines under the picture
    log: tuple[str, ...] = ()  # the last few messages, one plain line each, oldest first

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)
