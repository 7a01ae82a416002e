"""Drawing a placed Picture as SVG (with SMIL animation), with its notes and message log:
`render_picture(picture, animate)`.

Everything drawn as text comes from messages and the broker (names, keys, bodies), so every
piece goes through `esc()`. Where a text was shortened to fit, its whole shows on hover
(`<title>`). The class names (flow-svg, producer, queue, edge binding, dot publish, totals,
flow-log ...) are what notebooks and tests select on.
"""

from __future__ import annotations

import html
from typing import Any

from helpers.view.boxes import BODY, FOLD, SMALL, Box
from helpers.view.edges import ARROWED
from helpers.view.labels import Label, ascent, line_box
from helpers.view.layout import KEY_W, MAX_DOTS, FooterLine, Placement, place
from helpers.view.picture import CONSUMERS, Edge, Picture
from helpers.view.route import arrowhead, joined
from helpers.view.text_fit import font_family

ANIMATION_S = 1.4  # how long a dot travels along its edges
FADED = 0.5  # opacity of the box of a program that has left (not of its text)
COLORS = {  # fill, stroke
    "producer": ("#eef6ff", "#3b82f6"),
    "consumer": ("#f5f3ff", "#7c3aed"),
    "exchange": ("#fff7e6", "#d97706"),
    "queue": ("#ecfdf3", "#16a34a"),
    "helper": ("#f9fafb", "#9ca3af"),
}
PROGRAM_COLORS = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d")
STROKES = {  # edge kind -> colour of its line (with messages), of its label
    "deadletter": ("#dc2626", "#b91c1c"),
    "reply": ("#059669", "#065f46"),
}
DOT_COLORS = {"publish": "#2563eb", "deliver": "#7c3aed", "reply": "#059669", "dropped": "#dc2626"}


def esc(value: Any) -> str:
    """Escape text from elsewhere (names, keys, bodies) for HTML and SVG, quotes included."""
    return html.escape(str(value), quote=True)


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def render_picture(picture: Picture, animate: bool = True) -> str:
    """The picture as one self-contained HTML fragment: inline SVG, notes, message log.

    With `animate`, the picture's dots move along the edges their messages travelled, with
    a negative `begin` (their age) so that a re-render continues them where they were.
    """
    return draw(place(picture), animate)


def draw(p: Placement, animate: bool = True) -> str:
    """A placed picture as the HTML fragment of `render_picture`."""
    picture = p.picture
    parts = [_edge(p, e) for e in picture.edges if e.id in p.routes]
    parts += [_box(b) for b in p.boxes.values()]
    parts += [_beside(b) for b in p.boxes.values()]
    if animate:
        parts += _dots(p)
    parts += [_footer(line) for line in p.footer if animate or line.css != "more"]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-svg" '
        f'viewBox="0 0 {_n(p.width)} {_n(p.height)}" width="{_n(p.width)}" '
        f'style="max-width:100%;height:auto;font-family:{font_family()}">{"".join(parts)}</svg>'
    )
    style = f"font:12px {font_family()};color:#dc2626;margin:2px 16px"
    notes = "".join(
        f'<div class="flow-blocked" style="{style}">{esc(n)}</div>' for n in picture.notes
    )
    return f'<div class="flowdiagram">{svg}{notes}{_log(picture)}</div>'


def _text(label: Label, fill: str) -> str:
    """An edge's label, one line or two, with a white halo over whatever is under it."""
    attrs = (
        f'class="label" data-edge="{esc(label.edge)}" font-size="{_n(label.size)}" '
        f'text-anchor="middle" fill="{fill}" paint-order="stroke" stroke="#fff" '
        f'stroke-width="3" stroke-linejoin="round"'
    )
    hover = f"<title>{esc(label.full)}</title>" if label.full else ""
    first = label.top + ascent(label.size)
    if len(label.lines) == 1:
        return (
            f'<text {attrs} x="{_n(label.cx)}" y="{_n(first)}">{hover}{esc(label.lines[0])}</text>'
        )
    spans = "".join(
        f'<tspan x="{_n(label.cx)}" y="{_n(first + i * line_box(label.size))}">{esc(t)}</tspan>'
        for i, t in enumerate(label.lines)
    )
    return f"<text {attrs}>{hover}{spans}</text>"


def _edge(p: Placement, e: Edge) -> str:
    route, way = p.routes[e.id], p.ways[e.id]
    line, ink = STROKES.get(e.kind, ("#6b7280", "#374151"))
    if not e.count and e.kind not in STROKES:
        line = "#c4c8cf"
    width = 2 if e.count or e.kind == "reply" else 1.3
    dash = ' stroke-dasharray="5,4"' if e.dashed or e.kind == "deadletter" else ""
    hover = e.hover or e.label
    out = (
        f'<g class="edge {esc(e.kind)}" data-edge="{esc(e.id)}" data-way="{way}">'
        + (f"<title>{esc(hover)}</title>" if hover else "")
        + f'<path d="{route.d}" fill="none" stroke="{line}" stroke-width="{width}"{dash}/>'
    )
    if way in ARROWED:
        out += f'<polygon class="arrow" points="{arrowhead(route)}" fill="{line}"/>'
    if e.id in p.labels:
        out += _text(p.labels[e.id], ink)
    return out + "</g>"


def _css(b: Box) -> str:
    n = b.node
    if n.kind == "program":
        css = "consumer" if n.column == CONSUMERS else "producer"
    else:
        css = {"folded": "queue folded"}.get(n.kind, n.kind)
    return css + (" helper" if n.helper else "")


def _box(b: Box) -> str:
    n = b.node
    css = _css(b)
    fill, stroke = COLORS["helper" if n.helper else css.split()[0]]
    hover = n.hover or " · ".join((n.title, *n.lines))
    if b.cut and not all(t in hover for t in (n.title, *n.lines)):
        hover = " · ".join((n.title, *n.lines)) + "; " + hover
    # A program that has left: its box fades, its words stay legible (a grey, not a veil).
    opacity = f' opacity="{FADED}"' if n.faded else ""
    x, y, w, h = b.x, b.y, b.w, b.h
    out = (
        f'<g class="{css}" data-name="{esc(n.title)}" data-node="{esc(n.id)}">'
        f"<title>{esc(hover)}</title>"
    )
    if n.kind == "folded":
        for d in (FOLD, FOLD / 2):
            out += (
                f'<rect class="fold" x="{_n(x + d)}" y="{_n(y - d)}" width="{_n(w)}" '
                f'height="{_n(h)}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="1"/>'
            )
    dash = ' stroke-dasharray="4,3"' if n.helper else ""
    out += (
        f'<rect class="box" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}{opacity}/>'
    )
    if n.program is not None:
        colour = PROGRAM_COLORS[n.program % len(PROGRAM_COLORS)]
        out += (
            f'<rect class="program" x="{_n(x + 1)}" y="{_n(y + 4)}" width="5" '
            f'height="{_n(h - 8)}" rx="2" fill="{colour}"{opacity}/>'
        )
    quiet = n.helper or n.faded
    ink = {"title": "#374151", "line": "#4b5563"} if quiet else {}
    for row in b.rows():
        weight = ' font-weight="700"' if row.bold else ""
        fill_text = ink.get(row.css, "#111827" if row.bold else "#374151")
        out += (
            f'<text class="{row.css}" x="{_n(row.x)}" y="{_n(row.baseline)}" '
            f'font-size="{_n(row.size)}"{weight} fill="{fill_text}">{esc(row.text)}</text>'
        )
    meter = b.meter_rect()
    if meter is not None and n.meter is not None:
        ready, unacked = n.meter
        room = meter[2] - meter[0]
        w_ready = room * min(ready, 50) / 50
        w_unacked = min(room * min(unacked, 50) / 50, room - w_ready)
        out += (
            f'<rect class="meter" x="{_n(meter[0])}" y="{_n(meter[1])}" width="{_n(room)}" '
            'height="4" rx="2" fill="#e5e7eb"/>'
            f'<rect class="ready" x="{_n(meter[0])}" y="{_n(meter[1])}" width="{_n(w_ready)}" '
            'height="4" fill="#16a34a"/>'
            f'<rect class="unacked" x="{_n(meter[0] + w_ready)}" y="{_n(meter[1])}" '
            f'width="{_n(w_unacked)}" height="4" fill="#f59e0b"/>'
        )
    return out + "</g>"


def _beside(b: Box) -> str:
    """A box's red note above it and its red badge on its top edge (outside its group, so
    that a hover on the badge explains the badge)."""
    n, out = b.node, ""
    note = b.note_rect()
    if note is not None and b.note is not None:
        hover = f"<title>{esc(n.note)}</title>" if b.note.cut else ""
        out += (
            f'<text class="note" data-node="{esc(n.id)}" x="{_n(note[2])}" '
            f'y="{_n(note[1] + ascent(BODY))}" font-size="{_n(BODY)}" text-anchor="end" '
            f'fill="#dc2626">{hover}{esc(b.note.lines[0])}</text>'
        )
    badge = b.badge_rect()
    if badge is not None:
        x0, y0, x1, y1 = badge
        out += (
            f'<g class="blocked-tag" data-state="{esc(n.badge)}" data-node="{esc(n.id)}">'
            + (f"<title>{esc(n.badge_hover)}</title>" if n.badge_hover else "")
            + f'<rect x="{_n(x0)}" y="{_n(y0)}" width="{_n(x1 - x0)}" height="{_n(y1 - y0)}" '
            'rx="4" fill="#dc2626"/>'
            f'<text class="badge" x="{_n((x0 + x1) / 2)}" y="{_n(y0 + 2 + ascent(SMALL))}" '
            f'font-size="{_n(SMALL)}" font-weight="700" text-anchor="middle" fill="#fff">'
            f"{esc(n.badge)}</text></g>"
        )
    return out


def _dots(p: Placement) -> list[str]:
    """Each recent message as a dot along the edges it travelled."""
    out = []
    for dot in p.picture.dots[-MAX_DOTS:]:
        routes = [p.routes[e] for e in dot.edges if e in p.routes]
        if not routes:
            continue
        begin = f"{-dot.age:.2f}s"
        out.append(
            f'<circle class="dot {esc(dot.kind)}" r="6" '
            f'fill="{DOT_COLORS.get(dot.kind, "#2563eb")}" stroke="#fff" stroke-width="1.5">'
            f"<title>{esc(dot.title)}</title>"
            f'<animateMotion dur="{ANIMATION_S}s" begin="{begin}" fill="freeze" '
            f'path="{joined(routes)}"/>'
            f'<animate attributeName="opacity" values="1;1;0" keyTimes="0;0.8;1" '
            f'dur="{ANIMATION_S}s" begin="{begin}" fill="freeze"/></circle>'
        )
    return out


def _footer(line: FooterLine) -> str:
    colour = {"totals": "#1f2937", "more": "#4b5563"}.get(line.css, "#374151")
    hover = f"<title>{esc(line.full)}</title>" if line.full else ""
    text = (
        f'<text class="{line.css}" x="{_n(line.x)}" y="{_n(line.baseline)}" '
        f'font-size="{_n(line.size)}" text-anchor="{line.anchor}" fill="{colour}">'
        f"{hover}{esc(line.text)}</text>"
    )
    if not line.key:
        return text
    stroke = STROKES.get(line.key, ("#6b7280", ""))[0]
    y = line.baseline - 4
    x0 = line.x - KEY_W - 6
    return (
        f'<g class="legend-key" data-kind="{esc(line.key)}"><line x1="{_n(x0)}" y1="{_n(y)}" '
        f'x2="{_n(x0 + KEY_W)}" y2="{_n(y)}" stroke="{stroke}" stroke-width="1.5" '
        f'stroke-dasharray="5,4"/>{text}</g>'
    )


def _log(picture: Picture) -> str:
    """The last few messages as text: what they were and where the broker put them."""
    if not picture.log:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in picture.log)
    return (
        '<ol class="flow-log" style="font:12px monospace;color:#374151;margin:4px 0 0 0;'
        f'padding-left:44px">{items}</ol>'
    )
