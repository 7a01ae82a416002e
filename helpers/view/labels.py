"""Placing edge labels where they can be read: against every box, every other label and
every edge's stroke, not at a curve's midpoint.

A label goes beside its own edge, at the first spot (in its edge kind's order of preference
along the path, on either side) that overlaps no box and no label placed before it, that no
stroke passes through (its own included: a label on its own dashed line is unreadable),
that keeps OTHER_CLEAR px from every other edge, and whose centre is nearer its own edge
than any other, so that it is clear which edge it names. The chapters' crowded shapes (two
producer edges crossing, two bindings into one queue, a retry ladder of dead-letter links)
each gave a learner two labels on one spot when labels sat at midpoints.

When no form of a label finds such a spot, it goes to the least bad one, marked not free
(`layout` then widens the picture and tries again); a form with no lines leaves the label
out (its words are in the legend).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, replace

from helpers.view.route import STEP, Rect, Route, distance_to, inflate, rects_overlap
from helpers.view.text_fit import ASCENT, DESCENT, Fitted

STROKE_CLEAR = 2.5  # px between a label and its own edge's stroke (half a stroke and a bit)
OTHER_CLEAR = 8.0  # px between a label and any other edge: never read as that one's
BOX_CLEAR = 2.0  # px between a label and a box or another label
NEARER_BY = 4.0  # a label's own edge is nearer its centre than any other, by this much
OFFSETS = (3.0, 7.0)  # px from the stroke to the label's near side: close, then a bit off
CELL = 24.0


def ascent(size: float) -> float:
    return math.ceil(ASCENT * size)


def line_box(size: float) -> float:
    """One text line's height, an upper bound of the browser's getBBox()."""
    return math.ceil(ASCENT * size) + math.ceil(DESCENT * size)


@dataclass(frozen=True)
class Wanted:
    """A label to place: its text in the forms to try, best first (one line, then two)."""

    edge: str
    forms: tuple[Fitted, ...]
    full: str  # the whole text, for a hover when a form left something out
    size: float
    fractions: tuple[float, ...]  # where along the edge to try, best first
    width_of: tuple[float, ...]  # each form's width (estimated from text_fit)


@dataclass(frozen=True)
class Label:
    edge: str
    lines: tuple[str, ...]
    full: str
    size: float
    cx: float  # centre
    top: float
    w: float
    h: float
    free: bool  # False: no spot met every rule; this is the least bad one

    @property
    def rect(self) -> Rect:
        return (self.cx - self.w / 2, self.top, self.cx + self.w / 2, self.top + self.h)


class Canvas:
    """What is drawn so far, bucketed in a grid: rectangles (boxes, labels) and the points
    of every edge's path. The points are at most STEP apart, so a stroke passes within `c`
    of a rectangle only if one of its points lies within `c + STEP / 2` of it."""

    def __init__(self, bounds: Rect):
        self.bounds = bounds
        self.rects: dict[tuple[int, int], list[Rect]] = defaultdict(list)
        self.points: dict[tuple[int, int], list[tuple[str, float, float]]] = defaultdict(list)
        self.routes: dict[str, Route] = {}

    @staticmethod
    def _cells(r: Rect) -> list[tuple[int, int]]:
        return [
            (i, j)
            for i in range(math.floor(r[0] / CELL), math.floor(r[2] / CELL) + 1)
            for j in range(math.floor(r[1] / CELL), math.floor(r[3] / CELL) + 1)
        ]

    def add_rect(self, r: Rect) -> None:
        for c in self._cells(r):
            self.rects[c].append(r)

    def add_route(self, key: str, route: Route) -> None:
        self.routes[key] = route
        for x, y in route.points:
            self.points[(math.floor(x / CELL), math.floor(y / CELL))].append((key, x, y))

    def inside(self, r: Rect) -> bool:
        b = self.bounds
        return b[0] <= r[0] and b[1] <= r[1] and r[2] <= b[2] and r[3] <= b[3]

    def hits_rect(self, r: Rect) -> bool:
        grown = inflate(r, BOX_CLEAR)
        return any(rects_overlap(grown, o) for c in self._cells(grown) for o in self.rects[c])

    def hits_stroke(self, r: Rect, key: str) -> bool:
        """Whether a stroke passes through `r`, or another edge than `key` near it."""
        half = STEP / 2
        own, other = inflate(r, STROKE_CLEAR + half), inflate(r, OTHER_CLEAR + half)
        for c in self._cells(other):
            for k, x, y in self.points[c]:
                g = own if k == key else other
                if g[0] <= x <= g[2] and g[1] <= y <= g[3]:
                    return True
        return False

    def nearer_other(self, key: str, p: tuple[float, float]) -> bool:
        """Whether another edge passes nearer to `p` than `key`'s own (less NEARER_BY)."""
        own = distance_to(self.routes[key].points, p)
        reach = own + NEARER_BY + STEP / 2
        area = (p[0] - reach, p[1] - reach, p[0] + reach, p[1] + reach)
        return any(
            k != key and math.hypot(x - p[0], y - p[1]) < reach
            for c in self._cells(area)
            for k, x, y in self.points[c]
        )


def _spots(route: Route, w: float, h: float, fractions: tuple[float, ...]):
    """Label centres beside the route, at each fraction of its length, on both sides.

    Beside a level stretch the label goes above or below the route where it passes under
    the label's whole width (a curve rises or falls under a wide label), centred on the
    point or reaching back or forward from it; beside a steep stretch, left or right of it.
    """
    pts = route.points
    cum = [0.0]
    for a, b in zip(pts, pts[1:], strict=False):
        cum.append(cum[-1] + math.dist(a, b))
    reach = w / 2 + h + 8
    for f in fractions:
        # 1.0 and 0.0: a label reaching to just before the end, or from just after the start.
        d = {1.0: cum[-1] - w / 2 - 8, 0.0: w / 2 + 8}.get(f, f * cum[-1])
        (px, py), (tx, _ty) = route.at(d)
        lo, hi = bisect_left(cum, d - reach), bisect_right(cum, d + reach)
        near = pts[max(0, lo - 1) : hi + 1]
        if abs(tx) > 0.7:
            for shift in (0.0, -(w / 2 - 4) * tx, (w / 2 - 4) * tx):
                cx = px + shift
                ys = [y for x, y in near if cx - w / 2 - 2 <= x <= cx + w / 2 + 2] or [py]
                for extra in OFFSETS:
                    yield cx, min(ys) - extra - h / 2
                    yield cx, max(ys) + extra + h / 2
        else:
            xs = [x for x, y in near if py - h / 2 - 2 <= y <= py + h / 2 + 2] or [px]
            for extra in OFFSETS:
                yield min(xs) - extra - w / 2, py
                yield max(xs) + extra + w / 2, py


def place(canvas: Canvas, wanted: list[Wanted]) -> dict[str, Label]:
    """Each wanted label at its first good spot, in the order given (the hardest first);
    each placed label is an obstacle for the next."""
    out: dict[str, Label] = {}
    for want in wanted:
        route = canvas.routes[want.edge]
        best: tuple[int, Label] | None = None
        for form, w in zip(want.forms, want.width_of, strict=True):
            if not form.lines:  # nothing left to write here (the legend says it)
                best = None
                break
            h = line_box(want.size) * len(form.lines)
            for cx, cy in _spots(route, w, h, want.fractions):
                label = Label(
                    want.edge, form.lines, want.full if form.cut else "", want.size,
                    cx, cy - h / 2, w, h, True,
                )  # fmt: skip
                r = label.rect
                if not canvas.inside(r):
                    continue
                bad = 2 * canvas.hits_rect(r) + 2 * canvas.hits_stroke(r, want.edge)
                if bad == 0 and not canvas.nearer_other(want.edge, (cx, cy)):
                    best = (0, label)
                    break
                bad = bad or 1
                if best is None or bad < best[0]:
                    best = (bad, replace(label, free=False))
            if best is not None and best[0] == 0:
                break
        if best is None and not form.lines:
            continue
        if best is None:  # nowhere inside the canvas: at the middle, marked not free
            (px, py), _ = route.at(route.length() / 2)
            form, w = want.forms[-1], want.width_of[-1]
            h = line_box(want.size) * len(form.lines)
            best = (9, Label(want.edge, form.lines, want.full, want.size, px, py - h, w, h, False))
        out[want.edge] = best[1]
        canvas.add_rect(best[1].rect)
    return out
