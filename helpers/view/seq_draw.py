"""Drawing a `Sequence` (helpers.view.sequence): placed, as SVG, as text, and as the static
picture a notebook saves (`SequenceView`, what `FlowDiagram.sequence()` returns).

One arrow per row, its label just above its line: no two labels share a row, and a row is
taller than a label, so labels never overlap one another (nor the lifelines' titles, which
are placed apart by their own widths). A label sits in one gap between two neighbouring
lifelines that its arrow spans (a note's, in the gap right of its lifeline), and the gaps
are widened to the labels they hold (`gaps`), up to LABEL_MAX: so no label runs across a
lifeline; a longer one is shortened in the middle. `Placed.labels` gives the boxes of all
text, `Placed.arrow_labels` each arrow's with it, and `Placed.centres` the lifelines' x, for
the tests. Every piece of text comes from messages and the broker, so it goes through
`esc()`; text shortened to fit shows whole on hover (`<title>`).

Styles say where an arrow comes from (the one-line legend under the picture): solid, the
broker's firehose; dotted red, dead-lettering read from a delivery's x-death headers; dashed,
recorded by the program's own code; grey, the broker's client events.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from helpers.i18n import N_, _
from helpers.view.drawing import esc
from helpers.view.sequence import BROKER, EVENTS, PROGRAM, XDEATH, Arrow, Sequence
from helpers.view.text_fit import (
    ASCENT,
    font_family,
    line_height,
    shorten_middle,
    text_width,
)

SIZE, TITLE_SIZE = 11.0, 12.0
LEFT = 40.0  # the step numbers' column
MAX_TITLE_W, MIN_GAP = 170.0, 120.0  # a lifeline's title box; centres at least this apart
HEAD_Y, HEAD_H = 8.0, 26.0
ROW = 26.0  # one arrow per row; taller than a label (line_height(SIZE) ~ 12.8 px)
LABEL_MAX = 320.0  # a label's width at most (the rest on hover)
NOTE_LOOP = 16.0  # a note's small loop on its lifeline
PAD = 8.0  # between a label and the lifelines left and right of it
NOTE_PAD = NOTE_LOOP + 6  # a note's label starts this far right of its lifeline
# The markers around the static picture: tests/nbval_sanitize.cfg leaves what is between
# them out of comparisons (the same as the flow diagram's, helpers.view.diagram).
STATIC_START, STATIC_END = "<!--flow-diagram-->", "<!--/flow-diagram-->"

COLORS = {  # arrow kind -> stroke
    "publish": "#2563eb",
    "route": "#d97706",
    "unroutable": "#dc2626",
    "deliver": "#7c3aed",
    "deadletter": "#dc2626",
    "reply": "#059669",
    "ack": "#16a34a",
    "confirm": "#16a34a",
    "nack": "#dc2626",
    "reject": "#dc2626",
    "return": "#dc2626",
    "note": "#b45309",
}
GREY = "#9ca3af"
DASH = {BROKER: "", EVENTS: "", PROGRAM: "6 4", XDEATH: "2 3"}
HEAD_FILL = {
    "program": ("#eef6ff", "#3b82f6"),
    "exchange": ("#fff7e6", "#d97706"),
    "queue": ("#ecfdf3", "#16a34a"),
    "others": ("#f9fafb", "#9ca3af"),
}
# Translated where they are drawn (the language is chosen then, not at import).
LEGEND = N_(
    "solid: the broker's firehose · dotted red: dead-lettering, read from x-death at delivery"
    " · dashed: recorded by the program · grey: client events"
)
ORIGIN_TAG = {
    BROKER: "",
    EVENTS: N_("  [client event]"),
    PROGRAM: N_("  [recorded]"),
    XDEATH: N_("  [x-death]"),
}


@dataclass(frozen=True)
class Box:
    """A label's box (x, y of its top left, width, height) and its text."""

    x: float
    y: float
    w: float
    h: float
    text: str

    def overlaps(self, other: Box) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


@dataclass
class Placed:
    svg: str
    width: float
    height: float
    labels: list[Box] = field(default_factory=list)  # every text's box
    arrow_labels: list[tuple[Arrow, Box]] = field(default_factory=list)
    centres: dict[str, float] = field(default_factory=dict)  # lifeline id -> its x


def _label_width(a: Arrow) -> float:
    """The room an arrow's label asks for in its gap (its width at most LABEL_MAX, with the
    padding either side, and half a pixel so that rounding never shortens it)."""
    lead = NOTE_PAD if a.source == a.target else PAD
    return min(text_width(a.label, SIZE), LABEL_MAX) + lead + PAD + 0.5


def gaps(seq: Sequence, widths: list[float]) -> tuple[list[float], dict[int, int | None]]:
    """The distance between each two neighbouring lifelines, and the gap each arrow's label
    sits in (by its index in `seq.arrows`; None: a note on the last lifeline, free to the
    right). An arrow between neighbours, and a note, have one gap; an arrow across several
    lifelines takes the first of its gaps from its source that is wide enough, or else the
    widest, which is widened. Every gap is wide enough for its lifelines' titles."""
    index = {x.id: i for i, x in enumerate(seq.lifelines)}
    room = [max(MIN_GAP, widths[i] / 2 + widths[i + 1] / 2 + 16) for i in range(len(widths) - 1)]
    where: dict[int, int | None] = {}
    wide: list[tuple[int, list[int]]] = []  # arrows across several lifelines: their gaps
    for n, a in enumerate(seq.arrows):
        s, t = index[a.source], index[a.target]
        if s == t:
            where[n] = s if s < len(room) else None
        elif abs(s - t) == 1:
            where[n] = min(s, t)
        else:
            spanned = list(range(s, t)) if s < t else list(range(s - 1, t - 1, -1))
            wide.append((n, spanned))
            continue
        if where[n] is not None:
            room[where[n]] = max(room[where[n]], _label_width(a))
    for n, spanned in sorted(wide, key=lambda w: -_label_width(seq.arrows[w[0]])):
        need = _label_width(seq.arrows[n])
        fits = [g for g in spanned if room[g] >= need]
        chosen = fits[0] if fits else max(spanned, key=lambda g: room[g])
        room[chosen] = max(room[chosen], need)
        where[n] = chosen
    return room, where


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _text(
    parts: list[str],
    boxes: list[Box],
    x: float,
    y: float,
    text: str,
    whole: str = "",
    size: float = SIZE,
    anchor: str = "start",
    bold: bool = False,
    fill: str = "#111827",
):
    """A line of text with its baseline at y; its box goes to `boxes`."""
    w = text_width(text, size, bold)
    left = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    boxes.append(Box(left, y - ASCENT * size, w, line_height(size), text))
    hover = f"<title>{esc(whole)}</title>" if whole and whole != text else ""
    weight = ' font-weight="bold"' if bold else ""
    parts.append(
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}"'
        f'{weight} fill="{fill}">{hover}{esc(text)}</text>'
    )


def place(seq: Sequence) -> Placed:
    """The sequence as an SVG document, with the boxes of all its text."""
    parts: list[str] = []
    boxes: list[Box] = []
    widths = [min(text_width(x.title, TITLE_SIZE, True) + 16, MAX_TITLE_W) for x in seq.lifelines]
    room, where = gaps(seq, widths)
    centre: dict[str, float] = {}
    xs: list[float] = []
    x = LEFT
    for i, line in enumerate(seq.lifelines):
        x += widths[i] / 2 if i == 0 else room[i - 1]
        centre[line.id] = x
        xs.append(x)
    arrow_labels: list[tuple[Arrow, Box]] = []
    top = HEAD_Y + HEAD_H + 26.0
    rows = len(seq.arrows) + (1 if seq.earlier else 0) + (0 if seq.arrows else 1)
    bottom = top + (rows - 1) * ROW + 12
    for i, line in enumerate(seq.lifelines):
        cx, w = centre[line.id], widths[i]
        fill, stroke = HEAD_FILL[line.kind]
        parts.append(
            f'<line class="lifeline" x1="{_n(cx)}" y1="{_n(HEAD_Y + HEAD_H)}" x2="{_n(cx)}" '
            f'y2="{_n(bottom)}" stroke="#d1d5db" stroke-dasharray="3 3"/>'
        )
        parts.append(
            f'<rect class="seq-head {line.kind}" x="{_n(cx - w / 2)}" y="{_n(HEAD_Y)}" '
            f'width="{_n(w)}" height="{_n(HEAD_H)}" rx="4" fill="{fill}" stroke="{stroke}">'
            f"<title>{esc(line.hover)}</title></rect>"
        )
        title = shorten_middle(line.title, w - 16, TITLE_SIZE, True)
        _text(parts, boxes, cx, HEAD_Y + 17, title, line.hover, TITLE_SIZE, "middle", True)
    y = top
    if seq.earlier:
        earlier = _("… {n} earlier steps not shown").format(n=seq.earlier)
        _text(parts, boxes, LEFT, y, earlier, fill="#6b7280")
        y += ROW
    if not seq.arrows:
        nothing = _("nothing the diagram saw happened in this span")
        _text(parts, boxes, LEFT, y, nothing, fill="#6b7280")
    right = max(
        (centre[x.id] + w / 2 for x, w in zip(seq.lifelines, widths, strict=True)), default=LEFT
    )
    number, previous = 0, None
    for n, a in enumerate(seq.arrows):
        if a.step != previous:
            number, previous = number + 1, a.step
            _text(parts, boxes, LEFT - 8, y, str(number), anchor="end", fill="#6b7280")
        gap = where[n]
        # A note on the last lifeline has the room right of it, as much as a gap at most.
        free = (centre[a.source], NOTE_PAD + LABEL_MAX + PAD)
        space = (xs[gap], room[gap]) if gap is not None else free
        right = max(right, _arrow(parts, boxes, a, centre[a.source], centre[a.target], y, space))
        arrow_labels.append((a, boxes[-1]))
        y += ROW
    legend_y = bottom + 18
    legend = _(LEGEND)
    _text(parts, boxes, 8, legend_y, legend, size=10, fill="#4b5563")
    right = max(right, 8 + text_width(legend, 10)) + 12
    height = legend_y + 8
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-sequence" '
        f'viewBox="0 0 {_n(right)} {_n(height)}" width="{_n(right)}" '
        f'style="max-width:100%;height:auto;font-family:{font_family()}">{"".join(parts)}</svg>'
    )
    return Placed(svg, right, height, boxes, arrow_labels, centre)


def _arrow(
    parts: list[str],
    boxes: list[Box],
    a: Arrow,
    x1: float,
    x2: float,
    y: float,
    space: tuple[float, float],
) -> float:
    """One arrow (or a note's loop) with its label above it (beside a note's loop), in the
    gap `space` (the x of its left lifeline, and its width); returns its right end."""
    gap_x, gap_w = space
    colour = GREY if a.origin == EVENTS else COLORS.get(a.kind, "#374151")
    if a.origin == XDEATH:
        colour = COLORS["deadletter"]
    dash = f' stroke-dasharray="{DASH[a.origin]}"' if DASH[a.origin] else ""
    css = f"seq-arrow {a.kind} from-{a.origin.replace('-', '')}"
    if x1 == x2:  # a note on one lifeline
        d = f"M{_n(x1)},{_n(y - 6)} h{_n(NOTE_LOOP)} v8 h{_n(-NOTE_LOOP + 5)}"
        head = _head(x1, y + 2, -1, colour)
        left, room = x1 + NOTE_PAD, gap_w - NOTE_PAD - PAD
        label_y = y + 2
    else:
        d = f"M{_n(x1)},{_n(y)} L{_n(x2)},{_n(y)}"
        head = _head(x2, y, 1 if x2 > x1 else -1, colour)
        left, room = gap_x + PAD, gap_w - 2 * PAD
        label_y = y - 5
    parts.append(
        f'<g class="{css}"><title>{esc(a.label)}</title><path d="{d}" fill="none" '
        f'stroke="{colour}" stroke-width="1.5"{dash}/>{head}</g>'
    )
    text = shorten_middle(a.label, min(room, LABEL_MAX), SIZE)
    _text(
        parts,
        boxes,
        left,
        label_y,
        text,
        a.label,
        fill="#6b7280" if a.origin == EVENTS else "#111827",
    )
    return max(x1, x2, left + text_width(text, SIZE))


def _head(x: float, y: float, direction: int, colour: str) -> str:
    back = x - 7 * direction
    d = f"M{_n(x)},{_n(y)} L{_n(back)},{_n(y - 3.5)} L{_n(back)},{_n(y + 3.5)} Z"
    return f'<path d="{d}" fill="{colour}"/>'


def text_of(seq: Sequence) -> str:
    """The sequence as plain lines, the same on every run (no ids, ports or timings): what a
    notebook's saved output shows as text/plain, and what nbval compares."""
    steps = len({a.step for a in seq.arrows})
    head = _("sequence of {n} step{s} ({legend})")
    lines = [head.format(n=steps, s="s" if steps != 1 else "", legend=_(LEGEND))]
    if seq.earlier:
        lines.append("  " + _("… {n} earlier steps not shown").format(n=seq.earlier))
    number, previous = 0, None
    for a in seq.arrows:
        lead = "    "
        if a.step != previous:
            number, previous = number + 1, a.step
            lead = f"{number:>3} "
        ends = (
            seq.title(a.source)
            if a.source == a.target
            else f"{seq.title(a.source)} → {seq.title(a.target)}"
        )
        lines.append(f"{lead} {ends}: {a.label}{_(ORIGIN_TAG[a.origin])}")
    if seq.folded:
        folded = _("folded into one lifeline: {names}").format(names=", ".join(seq.folded))
        lines.append("  " + folded)
    return "\n".join(lines)


class SequenceView:
    """What `FlowDiagram.sequence()` returns: shows as the picture in Jupyter (a static SVG
    image, like the flow diagram's saved picture) with `text` as its text/plain."""

    def __init__(self, seq: Sequence) -> None:
        self.sequence = seq
        self.placed = place(seq)
        self.text = text_of(seq)

    @property
    def arrows(self):
        return self.sequence.arrows

    @property
    def svg(self) -> str:
        return self.placed.svg

    def html(self) -> str:
        """The picture as an `<img>` with an SVG data: URI (it survives JupyterLab's
        sanitizing of an untrusted notebook, GitHub and nbviewer), between the markers that
        tests/nbval_sanitize.cfg leaves out of comparisons."""
        data = base64.b64encode(self.svg.encode()).decode("ascii")
        alt = self.text.splitlines()[0]
        img = (
            f'<img class="flow-sequence-static" alt="{esc(alt)}" '
            f'src="data:image/svg+xml;base64,{data}" style="max-width:100%"/>'
        )
        return f'{STATIC_START}<div class="flowsequence">{img}</div>{STATIC_END}'

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text, "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text
