"""Routing the diagram's edges between placed boxes: the way each takes, the side of a box
it leaves and enters, at which port, and the path.

- forward (left to right: publish, binding, deliver to a consumer): an S-curve from the
  source's right side to the target's left; across a column in between (an exchange behind
  an exchange) it runs straight through the gap between that column's boxes;
- reverse (dead letters, queue back to an exchange): the same against the flow, from the
  queue's left side to the exchange's right, ending in an arrowhead;
- around (deliveries back to a program in the first column): out of the queue's right side,
  down to a lane below every box, left to the gutter, up and into the program's left side;
  several nest without crossing each other (the one to the highest box outermost);
- reply (direct reply-to, program to program): a loop in the gutter left of the programs.

Each side's ports are ordered by where the other end lies, so edges leaving one box do not
cross at it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from helpers.view.boxes import Box
from helpers.view.picture import Edge
from helpers.view.route import PathBuilder, Route

FORWARD, REVERSE, AROUND, REPLY, SAME = "forward", "reverse", "around", "reply", "same"
ARROWED = {REVERSE, AROUND, REPLY, SAME}  # against the flow: an arrowhead says which way
PORT_GAP = 10.0  # px between the ports on one side of a box, at most
TRACK = 12.0  # px between parallel runs in a gap, the gutter or below the boxes
TRACK_START = 12.0  # px from a column to its first track
LANE_GAP = 30.0  # px between lanes below the boxes: a label fits between two, clear of both
SLOT_CLEAR = 14.0  # px between a box and an edge passing its column, where there is room


def way(edge: Edge, source_column: int, target_column: int) -> str:
    if edge.kind == "reply":
        return REPLY
    if target_column > source_column:
        return FORWARD
    if target_column == source_column:
        return SAME
    return AROUND if edge.kind == "deliver" else REVERSE


@dataclass(frozen=True)
class Frame:
    """The columns' left ends and widths."""

    x: tuple[float, ...]
    w: tuple[float, ...]

    def right(self, column: int) -> float:
        return self.x[column] + self.w[column]


def track_counts(
    boxes: dict[str, Box], edges: list[Edge], ways: dict[str, str]
) -> tuple[dict[int, int], dict[int, int]]:
    """Runs needed right of each column (around edges leaving it, loops of one column) and
    left of each column (around edges arriving, reply loops), to size the gaps."""
    right: dict[int, int] = defaultdict(int)
    left: dict[int, int] = defaultdict(int)
    for e in edges:
        w = ways[e.id]
        if w == AROUND:
            right[boxes[e.source].column] += 1
            left[boxes[e.target].column] += 1
        elif w == REPLY:
            left[boxes[e.source].column] += 1
        elif w == SAME:
            right[boxes[e.source].column] += 1
    return right, left


class Router:
    """Routes every edge once the boxes have their places (see the module docstring)."""

    def __init__(
        self,
        boxes: dict[str, Box],
        edges: list[Edge],
        ways: dict[str, str],
        frame: Frame,
        stubs: dict[str, tuple[float, float]] | None = None,
    ):
        self.boxes, self.edges, self.ways, self.frame = boxes, edges, ways, frame
        # Straight, level runs at an edge's start and end, where its label goes: beside a
        # run of its own, a label stays clear of the edges fanning out of the same box.
        self.stubs = stubs or {}
        self.used: dict[int, list[float]] = defaultdict(list)  # y of runs across a column
        around = [e for e in edges if ways[e.id] == AROUND]
        # Outermost first: the one to the highest box, then from the highest box.
        around.sort(key=lambda e: (boxes[e.target].cy, boxes[e.source].cy, e.id))
        self.nest = {e.id: len(around) - 1 - i for i, e in enumerate(around)}  # 0: innermost
        # Runs beside a column, innermost first; reply loops outside the around edges'
        # runs, shorter loops inside longer ones.
        self.right_track: dict[str, int] = {}
        self.left_track: dict[str, int] = {}
        right_used: dict[int, int] = defaultdict(int)
        left_used: dict[int, int] = defaultdict(int)
        for e in sorted(around, key=lambda e: self.nest[e.id]):
            self.right_track[e.id] = right_used[boxes[e.source].column]
            right_used[boxes[e.source].column] += 1
            self.left_track[e.id] = left_used[boxes[e.target].column]
            left_used[boxes[e.target].column] += 1
        loops = sorted(
            (e for e in edges if ways[e.id] in (REPLY, SAME)),
            key=lambda e: (abs(boxes[e.source].cy - boxes[e.target].cy), e.id),
        )
        for e in loops:
            column = boxes[e.source].column
            used, track = (
                (left_used, self.left_track)
                if ways[e.id] == REPLY
                else (right_used, self.right_track)
            )
            track[e.id] = used[column]
            used[column] += 1
        self.ports = self._ports()

    def _ports(self) -> dict[tuple[str, int], float]:
        """(edge id, 0 for its source end or 1 for its target end) -> the port's y."""
        sides: dict[tuple[str, str], list[tuple[float, str, int]]] = defaultdict(list)
        big = 1e9
        for e in self.edges:
            s, t, w = self.boxes[e.source], self.boxes[e.target], self.ways[e.id]
            if w == FORWARD:
                ends = (("r", t.cy), ("l", s.cy))
            elif w == REVERSE:
                ends = (("l", t.cy), ("r", s.cy))
            elif w == AROUND:  # they leave downwards; the outer ones above the inner
                ends = (("r", big - self.nest[e.id]), ("l", big - self.nest[e.id]))
            elif w == REPLY:
                ends = (("l", t.cy), ("l", s.cy))
            else:
                ends = (("r", t.cy), ("r", s.cy))
            sides[(e.source, ends[0][0])].append((ends[0][1], e.id, 0))
            sides[(e.target, ends[1][0])].append((ends[1][1], e.id, 1))
        ports: dict[tuple[str, int], float] = {}
        for (node, _side), ends in sides.items():
            box = self.boxes[node]
            ends.sort()
            n = len(ends)
            gap = min(PORT_GAP, (box.h - 16) / (n - 1)) if n > 1 else 0.0
            for i, (_key, edge_id, end) in enumerate(ends):
                ports[(edge_id, end)] = box.cy + (i - (n - 1) / 2) * gap
        return ports

    def _slot(self, column: int, want: float) -> float:
        """Where an edge crosses `column`: the free height nearest `want`, away from the
        boxes (so it passes clear of their labels) and from the edges crossing already."""
        boxes = sorted((b for b in self.boxes.values() if b.column == column), key=lambda b: b.y)
        gaps, low = [], 6.0 - SLOT_CLEAR
        for b in boxes:
            gaps.append((low, b.y - b.above))
            low = b.y + b.h
        gaps.append((low, 1e9))
        free = []
        for a, z in gaps:
            clear = min(SLOT_CLEAR, (z - a) / 2)
            if clear >= 4:
                free.append((a + clear, z - clear))
        best = min((min(max(want, a), z) for a, z in free), key=lambda y: (abs(y - want), y))
        lo, hi = next((a, z) for a, z in free if a <= best <= z)
        for step in (0, 5, -5, 10, -10, 15, -15, 20, -20):
            y = best + step
            if lo <= y <= hi and all(abs(y - u) >= 5 for u in self.used[column]):
                best = y
                break
        self.used[column].append(best)
        return best

    def route(self) -> tuple[dict[str, Route], float]:
        """Every edge's route, and the lowest y any of them (or a box) reaches."""
        routes: dict[str, Route] = {}
        for e in self.edges:
            w = self.ways[e.id]
            if w in (FORWARD, REVERSE):
                routes[e.id] = self._across(e, w == FORWARD)
            elif w in (REPLY, SAME):
                routes[e.id] = self._loop(e, w == REPLY)
        bottom = max((b.y + b.h for b in self.boxes.values()), default=0.0)
        bottom = max([bottom] + [y for r in routes.values() for _x, y in r.points])
        lowest = bottom
        for e in self.edges:
            if self.ways[e.id] == AROUND:
                lane = bottom + LANE_GAP * (self.nest[e.id] + 1)
                routes[e.id] = self._around(e, lane)
                lowest = max(lowest, lane)
        return {e.id: routes[e.id] for e in self.edges}, lowest

    def _across(self, e: Edge, forward: bool) -> Route:
        s, t, f = self.boxes[e.source], self.boxes[e.target], self.frame
        y0, y1 = self.ports[(e.id, 0)], self.ports[(e.id, 1)]
        x0 = s.x + s.w if forward else s.x
        x1 = t.x if forward else t.x + t.w
        start, end = self.stubs.get(e.id, (0.0, 0.0))
        path = PathBuilder((x0, y0))
        step = 1 if forward else -1
        if start:
            path.line_to((x0 + step * start, y0))
        for k in range(s.column + step, t.column, step):
            near, far = (f.x[k], f.right(k)) if forward else (f.right(k), f.x[k])
            middle = (near + far) / 2
            want = y0 + (y1 - y0) * (middle - x0) / (x1 - x0)
            y = self._slot(k, want)
            path.curve_to((near, y)).line_to((far, y))
        if end:
            path.curve_to((x1 - step * end, y1))
        return path.curve_to((x1, y1)).build() if not end else path.line_to((x1, y1)).build()

    def _around(self, e: Edge, lane: float) -> Route:
        s, t, f = self.boxes[e.source], self.boxes[e.target], self.frame
        y0, y1 = self.ports[(e.id, 0)], self.ports[(e.id, 1)]
        down = f.right(s.column) + TRACK_START + TRACK * self.right_track[e.id]
        up = f.x[t.column] - TRACK_START - TRACK * self.left_track[e.id]
        corners = [(down, y0), (down, lane), (up, lane), (up, y1)]
        return PathBuilder((s.x + s.w, y0)).orthogonal(corners, (t.x, y1)).build()

    def _loop(self, e: Edge, left: bool) -> Route:
        s, t, f = self.boxes[e.source], self.boxes[e.target], self.frame
        y0, y1 = self.ports[(e.id, 0)], self.ports[(e.id, 1)]
        if left:
            x = f.x[s.column] - TRACK_START - TRACK * self.left_track[e.id]
            return PathBuilder((s.x, y0)).orthogonal([(x, y0), (x, y1)], (t.x, y1)).build()
        x = f.right(s.column) + TRACK_START + TRACK * self.right_track[e.id]
        return PathBuilder((s.x + s.w, y0)).orthogonal([(x, y0), (x, y1)], (t.x + t.w, y1)).build()
