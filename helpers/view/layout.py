"""Where everything of the flow diagram goes: `place(picture) -> Placement`.

Boxes sized to their text (`boxes`: a column as wide as its widest name allows, long
names wrapped or shortened in the middle, never cut at the end), put in their columns at
the heights of the boxes they are linked with (`arrange`); gaps between columns as wide as
their labels need; edges routed (`edges`) with a level run where their label goes; then
every label placed against every box, label and stroke (`labels`), and the caption and
legend under it all. When a label finds no free spot, its gap and the rows widen and it all
goes again. No markup and no widgets: `drawing` turns a Placement into SVG; the tests
measure it (tests/unit/test_layout.py, and in Chromium tests/test_diagram_gallery.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

from helpers.i18n import _
from helpers.view.arrange import arrange, columns_of
from helpers.view.boxes import BODY, MAX_W, MIN_W, SMALL, TITLE, Box, make_box, natural_width
from helpers.view.edges import (
    AROUND,
    FORWARD,
    REPLY,
    REVERSE,
    SAME,
    TRACK,
    TRACK_START,
    Frame,
    Router,
    track_counts,
    way,
)
from helpers.view.labels import Canvas, Label, Wanted, line_box
from helpers.view.labels import place as place_labels
from helpers.view.picture import Edge, Node, Picture
from helpers.view.route import Route
from helpers.view.text_fit import Fitted, fit, text_width

__all__ = ["Placement", "place"]

EDGE = 16.0  # px of margin around the picture
ROWS = 16.0  # px between two boxes of a column
MIN_GAP, GAP_PAD = 80.0, 32.0  # a gap between columns: at least, and beside its labels
STEEP, STEEP_MAX = 0.12, 140.0  # a gap widens by this much of its edges' rise, at most
LABEL_W = 180.0  # a label wider than this takes two lines
MIN_WIDTH = 600.0  # room for the caption and legend
KEY_AFTER = 3  # a label repeated on this many edges of a kind goes into the legend once
KEY_W = 28.0  # the line sample before a legend key
ATTEMPTS = 4  # each wider than the one before, while a label has no free spot
GRID = 16.0  # px: gap widths are rounded up to this, so the picture does not breathe
MAX_DOTS = 40  # dots drawn at most; more recent messages are "+N more in flight"
# Where along an edge to try its label, best first; 1.0: on the level run before the edge's
# end (a binding's key before its queue, a delivery's count before its consumer), 0.0: on
# the run after its start (a publish count after its program).
NEAR_TARGET = (1.0, 0.72, 0.8, 0.64, 0.86, 0.56, 0.48, 0.4, 0.32, 0.24, 0.9, 0.16, 0.1, 0.0)
NEAR_SOURCE = (0.0, 0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82, 0.12, 0.88, 1.0)
MIDDLE = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82, 0.12, 0.88, 0.0, 1.0)
AT_END = {"binding": 1, "alternate": 1, "deliver": 1, "publish": 0}  # where a stub goes
ALONG = tuple(round(0.5 + s * d / 50, 2) for d in range(0, 24) for s in (1, -1))[1:]
KEYABLE = ("deadletter", "alternate")  # kinds whose words may go to the legend instead
PRIORITY = {"binding": 0, "alternate": 1, "deadletter": 2, "publish": 3, "deliver": 4}


@dataclass(frozen=True)
class FooterLine:
    """One line of the caption, the legend, or "+N more in flight", under the boxes."""

    text: str
    x: float
    baseline: float
    size: float
    css: str  # "totals", "legend", "more" or "empty"
    key: str = ""  # an edge kind whose line is drawn before the text (a legend key)
    anchor: str = "start"
    full: str = ""  # the whole text when it was shortened


@dataclass(frozen=True)
class Placement:
    """Where everything of one picture goes, in the SVG's user units (px)."""

    picture: Picture
    width: float
    height: float
    boxes: dict[str, Box]
    routes: dict[str, Route]
    ways: dict[str, str]  # edge id -> FORWARD, REVERSE, AROUND, REPLY or SAME
    labels: dict[str, Label]
    footer: tuple[FooterLine, ...]
    keyed: dict[str, str]  # edge kind -> its label, drawn once in the legend
    unplaced: tuple[str, ...]  # edges whose label found no free spot
    more: int  # recent messages not animated ("+N more in flight")


def place(picture: Picture) -> Placement:
    """Boxes, edges, labels and captions of `picture`, placed (see the module docstring)."""
    best: Placement | None = None
    widen: dict[int, float] = defaultdict(float)  # extra px for a gap between columns
    rows = ROWS
    for _attempt_no in range(ATTEMPTS):
        placed, crowded = _attempt(picture, widen, rows)
        if not placed.unplaced:
            return placed
        if best is None or len(placed.unplaced) < len(best.unplaced):
            best = placed
        # Widen where a label found no room: its gap, and the rows (a fan of edges spreads).
        for gap, w in crowded.items():
            widen[gap] += max(40.0, w * 0.6)
        rows += 10
    assert best is not None
    return best


def label_text(edge: Edge, keyed: dict[str, str]) -> str:
    """What an edge's label says: its words (unless they are in the legend) and its count."""
    label = "" if keyed.get(edge.kind) == edge.label else edge.label
    count = str(edge.count) if edge.count and not label.endswith(f"· {edge.count}") else ""
    return " · ".join(t for t in (label, count) if t)


def _keyed(edges: list[Edge]) -> dict[str, str]:
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for e in edges:
        if e.kind in KEYABLE and e.label:
            seen[(e.kind, e.label)] += 1
    return {kind: label for (kind, label), n in sorted(seen.items()) if n >= KEY_AFTER}


def _wanted(edges: list[Edge], ways: dict[str, str], keyed: dict[str, str]) -> list[Wanted]:
    """The labels to place, the hardest first: bindings (the longest words), then counts.

    Each in the forms to try: one line (two if wider than LABEL_W), two shorter lines, and
    for a dead-letter or alternate link the count alone, its words then in the legend.
    """
    out = []
    for e in edges:
        text = label_text(e, keyed)
        if not text:
            continue
        one = fit(text, LABEL_W, SMALL, False, 2)
        forms = [one]
        wide = text_width(text, SMALL)
        if len(one.lines) == 1 and wide > 90 and " " in text:
            two = fit(text, wide / 2 + 24, SMALL, False, 2)
            if not two.cut and len(two.lines) == 2:
                forms.append(two)
        if e.kind in KEYABLE and e.kind not in keyed:
            short = label_text(e, {e.kind: e.label})
            if short != text:
                forms.append(Fitted((short,) if short else ()))
        w = ways[e.id]
        if w == FORWARD and e.kind in AT_END:
            fractions = NEAR_TARGET if AT_END[e.kind] else NEAR_SOURCE
        else:
            fractions = ALONG if w in (AROUND, REPLY, SAME) else MIDDLE
        widths = tuple(f.width(SMALL) + 2 for f in forms)
        out.append(Wanted(e.id, tuple(forms), text, SMALL, fractions, widths))
    kinds = {e.id: e.kind for e in edges}
    out.sort(key=lambda w: (PRIORITY.get(kinds[w.edge], 9), -w.width_of[0], w.edge))
    return out


def _boxes(
    columns: list[list[Node]], edges: list[Edge], ways: dict[str, str]
) -> tuple[dict[str, Box], list[list[Box]], list[float]]:
    """Each node's box, sized to its text (and to its ports: many edges, a taller box)."""
    ends: dict[tuple[str, str], int] = defaultdict(int)
    for e in edges:
        w = ways[e.id]
        ends[(e.source, "l" if w in (REVERSE, REPLY) else "r")] += 1
        ends[(e.target, "r" if w in (REVERSE, SAME) else "l")] += 1
    boxes: dict[str, Box] = {}
    by_column: list[list[Box]] = []
    widths: list[float] = []
    for k, col in enumerate(columns):
        w = min(MAX_W, max([MIN_W] + [natural_width(n) for n in col]))
        widths.append(w)
        by_column.append([])
        for n in col:
            ports = max(ends[(n.id, "l")], ends[(n.id, "r")])
            boxes[n.id] = make_box(n, k, w, 16 + 4 * max(0, ports - 1))
            by_column[k].append(boxes[n.id])
    return boxes, by_column, widths


def _gap_of(edges: list[Edge], ways: dict[str, str], column_of: dict[str, int]) -> dict[str, int]:
    """The gap between columns (k: right of column k) where an edge's label goes."""
    out = {}
    for e in edges:
        cs, ct = column_of[e.source], column_of[e.target]
        gap = {FORWARD: ct - 1, REVERSE: cs - 1, SAME: cs}.get(ways[e.id])
        if gap is not None:
            out[e.id] = gap
    return out


def _columns_x(
    boxes: dict[str, Box],
    edges: list[Edge],
    ways: dict[str, str],
    widths: list[float],
    wanted: list[Wanted],
    gap_of: dict[str, int],
    widen: dict[int, float],
) -> tuple[list[float], float]:
    """Each column's left end, and the picture's width: gaps as wide as their labels, their
    runs beside the columns and the rise of their edges need (rounded up, so that a count
    growing by a digit does not move every box)."""
    need: dict[int, float] = defaultdict(float)
    for want in wanted:
        if want.edge in gap_of:
            need[gap_of[want.edge]] = max(need[gap_of[want.edge]], min(want.width_of))
    steep: dict[int, float] = defaultdict(float)  # a tall fan gets room to turn in
    for e in edges:
        if e.id in gap_of:
            dy = abs(boxes[e.source].cy - boxes[e.target].cy)
            steep[gap_of[e.id]] = max(steep[gap_of[e.id]], min(STEEP_MAX, dy * STEEP))
    right, left = track_counts(boxes, edges, ways)
    reply_room = max((min(w.width_of) for w in wanted if ways[w.edge] == REPLY), default=0.0)
    x = EDGE
    if left[0]:
        x += TRACK_START + TRACK * left[0] + (reply_room + 8 if reply_room else 0) + widen[-1]
    xs = []
    last = len(widths) - 1
    for k, w in enumerate(widths):
        xs.append(round(x))
        x += w
        if k < last:
            gap = max(MIN_GAP, need[k] + 2 * GAP_PAD + steep[k]) + widen[k]
            x += math.ceil(gap / GRID) * GRID
            x += sum(TRACK_START + TRACK * n for n in (right[k], left[k + 1]) if n)
    if right[last]:
        x += TRACK_START + TRACK * right[last]
    return xs, max(MIN_WIDTH, x + EDGE)


def _stubs(
    edges: list[Edge],
    ways: dict[str, str],
    wanted: list[Wanted],
    gap_of: dict[str, int],
    xs: list[float],
    widths: list[float],
) -> dict[str, tuple[float, float]]:
    """Level runs at edges' starts and ends for their labels: in one gap as long as its
    widest label needs, for every edge there (labelled or not), so that all turn at one
    place, away from the labels. A dead-letter link leaves its queue beside the bindings'
    runs into it."""
    kinds = {e.id: e.kind for e in edges}
    run: dict[tuple[int, int], float] = defaultdict(float)
    for want in wanted:
        kind = kinds[want.edge]
        if ways[want.edge] == FORWARD and kind in AT_END:
            key = (gap_of[want.edge], AT_END[kind])
            run[key] = max(run[key], want.width_of[0] + 14)
    stubs: dict[str, tuple[float, float]] = {}
    for e in edges:
        gap = gap_of.get(e.id)
        if gap is None or gap + 1 >= len(xs):
            continue
        room = (xs[gap + 1] - xs[gap] - widths[gap]) / 2
        if ways[e.id] == FORWARD and e.kind in AT_END:
            length = min(run[(gap, AT_END[e.kind])], room)
            stubs[e.id] = (0.0, length) if AT_END[e.kind] else (length, 0.0)
        elif ways[e.id] == REVERSE:
            stubs[e.id] = (min(run[(gap, 1)], room), 0.0)
    return stubs


def _attempt(
    picture: Picture, widen: dict[int, float], rows: float
) -> tuple[Placement, dict[int, float]]:
    """One placement with these gaps and rows; also, for each gap between columns where a
    label found no free spot, the widest such label (-1: the gutter or below the boxes)."""
    nodes = list(picture.nodes)
    ids = {n.id for n in nodes}
    edges = sorted((e for e in picture.edges if e.source in ids and e.target in ids), key=_by_id)
    keyed = _keyed(edges)
    columns = columns_of(nodes, edges)
    column_of = {n.id: k for k, col in enumerate(columns) for n in col}
    ways = {e.id: way(e, column_of[e.source], column_of[e.target]) for e in edges}
    boxes, by_column, widths = _boxes(columns, edges, ways)
    links = [(e.source, e.target) for e in edges if ways[e.id] == FORWARD]
    arrange(by_column, links, rows, EDGE)
    wanted = _wanted(edges, ways, keyed)
    gap_of = _gap_of(edges, ways, column_of)
    xs, width = _columns_x(boxes, edges, ways, widths, wanted, gap_of, widen)
    for b in boxes.values():
        b.x = xs[b.column]
    stubs = _stubs(edges, ways, wanted, gap_of, xs, widths)
    routes, bottom = Router(boxes, edges, ways, Frame(tuple(xs), tuple(widths)), stubs).route()

    canvas = Canvas((0.0, 0.0, width, bottom + line_box(SMALL) + 8))
    for b in boxes.values():
        for r in (b.rect, b.note_rect(), b.badge_rect()):
            if r is not None:
                canvas.add_rect(r)
    for edge_id, r in routes.items():
        canvas.add_route(edge_id, r)
    labels = place_labels(canvas, wanted)
    kinds = {e.id: e for e in edges}
    for want in wanted:  # a label that had room only for its count: its words in the legend
        e = kinds[want.edge]
        if e.kind in KEYABLE and len(want.forms) > 1:
            shown = labels.get(e.id)
            if shown is None or shown.lines == want.forms[-1].lines:
                keyed.setdefault(e.kind, e.label)

    low = max([bottom] + [lab.top + lab.h for lab in labels.values()]) if nodes else EDGE
    more = picture.more_dots + max(0, len(picture.dots) - MAX_DOTS)
    footer = _footer(picture, keyed, more, width, low + 18)
    height = max((f.baseline for f in footer), default=low) + 8
    unplaced = tuple(sorted(k for k, lab in labels.items() if not lab.free))
    crowded: dict[int, float] = defaultdict(float)
    for k in unplaced:
        gap = gap_of.get(k, -1)
        crowded[gap] = max(crowded[gap], labels[k].w)
    return (
        Placement(
            picture,
            round(width),
            round(height),
            boxes,
            routes,
            ways,
            labels,
            tuple(footer),
            keyed,
            unplaced,
            more,
        ),  # fmt: skip
        crowded,
    )


def _footer(
    picture: Picture, keyed: dict[str, str], more: int, width: float, top: float
) -> list[FooterLine]:
    """The caption, "+N more in flight", the legend and its keys, wrapped to the width."""
    out: list[FooterLine] = []
    room = width - 2 * EDGE
    y = top

    def lines(text: str, size: float, css: str, x: float = EDGE, avail: float = room) -> None:
        nonlocal y
        fitted: Fitted = fit(text, avail, size, False, 4)
        for line in fitted.lines:
            y += line_box(size)
            out.append(FooterLine(line, x, y - 4, size, css, full=text if fitted.cut else ""))

    if picture.empty and not picture.nodes:
        lines(picture.empty, BODY, "empty")
        y += 10
    if picture.caption:
        lines(picture.caption, TITLE, "totals")
    if more:
        text = _("+{more} more in flight").format(more=more)
        last = out[-1] if out and out[-1].css == "totals" else None
        if last and text_width(last.text, TITLE) + 24 + text_width(text, BODY) <= room:
            out.append(FooterLine(text, width - EDGE, last.baseline, BODY, "more", anchor="end"))
        else:
            y += line_box(BODY)
            out.append(FooterLine(text, EDGE, y - 4, BODY, "more"))
    for entry in picture.legend:
        lines(entry, BODY, "legend")
    for kind, label in keyed.items():
        before = len(out)
        lines(label, BODY, "legend", EDGE + KEY_W + 6, room - KEY_W - 6)
        out[before] = replace(out[before], key=kind)
    return out


def _by_id(e: Edge) -> str:
    return e.id
