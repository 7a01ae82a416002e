"""The geometry of the diagram's edges: SVG path data together with the same path as a
polyline, so that labels can be placed against it and tests can measure it.

Edges are drawn from three pieces: an S-curve between two columns (horizontal at both ends,
so a line leaves and enters a box square to its side), a straight run (across a column,
between its boxes), and rounded orthogonal runs for the edges routed around the boxes
(back edges, reply loops). Nothing here knows about nodes or columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1
STEP = 4.0  # px between the polyline's points
CORNER = 8.0  # radius of an orthogonal run's rounded corners


@dataclass(frozen=True)
class Route:
    """One edge's path: `d` to draw, `points` (STEP apart) to measure."""

    d: str
    points: tuple[Point, ...]

    def length(self) -> float:
        return sum(math.dist(a, b) for a, b in zip(self.points, self.points[1:], strict=False))

    def at(self, distance: float) -> tuple[Point, Point]:
        """The point `distance` px along the path and the unit direction there."""
        pts = self.points
        left = max(0.0, distance)
        for a, b in zip(pts, pts[1:], strict=False):
            seg = math.dist(a, b)
            if seg == 0:
                continue
            if left <= seg or b is pts[-1]:
                t = min(1.0, left / seg)
                return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t), (
                    (b[0] - a[0]) / seg,
                    (b[1] - a[1]) / seg,
                )
            left -= seg
        return pts[-1], (1.0, 0.0)

    def end_direction(self) -> Point:
        """The unit direction in which the path arrives (for an arrowhead)."""
        for a in reversed(self.points[:-1]):
            b = self.points[-1]
            seg = math.dist(a, b)
            if seg > 0.5:
                return (b[0] - a[0]) / seg, (b[1] - a[1]) / seg
        return 1.0, 0.0


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


class PathBuilder:
    """Builds a Route piece by piece from a start point."""

    def __init__(self, start: Point):
        self.parts = [f"M{_f(start[0])},{_f(start[1])}"]
        self.points: list[Point] = [start]

    @property
    def here(self) -> Point:
        return self.points[-1]

    def line_to(self, p: Point) -> PathBuilder:
        a = self.here
        n = max(1, math.ceil(math.dist(a, p) / STEP))
        self.points += [
            (a[0] + (p[0] - a[0]) * i / n, a[1] + (p[1] - a[1]) * i / n) for i in range(1, n + 1)
        ]
        self.parts.append(f"L{_f(p[0])},{_f(p[1])}")
        return self

    def curve_to(self, p: Point, bend: float = 0.5) -> PathBuilder:
        """An S-curve, horizontal where it starts and where it ends, turning at `bend` of
        the way (less: it turns early, and runs level for longer before its end)."""
        a = self.here
        mx = a[0] + (p[0] - a[0]) * bend
        c1, c2 = (mx, a[1]), (mx, p[1])
        n = max(4, math.ceil((abs(p[0] - a[0]) + abs(p[1] - a[1])) / STEP))
        for i in range(1, n + 1):
            t = i / n
            u = 1 - t
            self.points.append(
                (
                    u**3 * a[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * p[0],
                    u**3 * a[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * p[1],
                )
            )
        self.parts.append(f"C{_f(mx)},{_f(a[1])} {_f(mx)},{_f(p[1])} {_f(p[0])},{_f(p[1])}")
        return self

    def _quad_to(self, c: Point, p: Point) -> None:
        a = self.here
        n = max(2, math.ceil((math.dist(a, c) + math.dist(c, p)) / STEP))
        for i in range(1, n + 1):
            t = i / n
            u = 1 - t
            self.points.append(
                (
                    u * u * a[0] + 2 * u * t * c[0] + t * t * p[0],
                    u * u * a[1] + 2 * u * t * c[1] + t * t * p[1],
                )
            )
        self.parts.append(f"Q{_f(c[0])},{_f(c[1])} {_f(p[0])},{_f(p[1])}")

    def orthogonal(self, corners: list[Point], end: Point) -> PathBuilder:
        """Straight runs through `corners` to `end`, each corner rounded."""
        pts = [self.here, *corners, end]
        for i in range(1, len(pts) - 1):
            prev, corner, nxt = pts[i - 1], pts[i], pts[i + 1]
            r = min(CORNER, math.dist(prev, corner) / 2, math.dist(corner, nxt) / 2)
            if r < 0.5:
                self.line_to(corner)
                continue
            a = _toward(corner, prev, r)
            b = _toward(corner, nxt, r)
            self.line_to(a)
            self._quad_to(corner, b)
        return self.line_to(end)

    def build(self) -> Route:
        return Route(" ".join(self.parts), tuple(self.points))


def _toward(a: Point, b: Point, r: float) -> Point:
    d = math.dist(a, b)
    return (a[0] + (b[0] - a[0]) * r / d, a[1] + (b[1] - a[1]) * r / d)


def arrowhead(route: Route, size: float = 8.0) -> str:
    """The points of a filled triangle whose tip is the route's end."""
    (x, y), (dx, dy) = route.points[-1], route.end_direction()
    bx, by = x - dx * size, y - dy * size
    nx, ny = -dy * size * 0.45, dx * size * 0.45
    return f"{_f(x)},{_f(y)} {_f(bx + nx)},{_f(by + ny)} {_f(bx - nx)},{_f(by - ny)}"


def joined(routes: list[Route]) -> str:
    """One path through several routes in turn (a message's way along its edges): each
    route's start is joined to the previous end by a straight line, not a jump."""
    out = []
    for i, r in enumerate(routes):
        out.append(r.d if i == 0 else "L" + r.d[1:])
    return " ".join(out)


# -- measuring -----------------------------------------------------------------------------


def point_segment_distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    seg = dx * dx + dy * dy
    t = 0.0 if seg == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / seg))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def distance_to(points: tuple[Point, ...], p: Point) -> float:
    """The distance from `p` to a polyline."""
    if len(points) == 1:
        return math.dist(points[0], p)
    return min(point_segment_distance(p, a, b) for a, b in zip(points, points[1:], strict=False))


def segment_hits_rect(a: Point, b: Point, r: Rect) -> bool:
    """Whether the segment a-b passes through the rectangle (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = r
    dx, dy = b[0] - a[0], b[1] - a[1]
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
        else:
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return False
    return True


def rects_overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inflate(r: Rect, by: float) -> Rect:
    return (r[0] - by, r[1] - by, r[2] + by, r[3] + by)
