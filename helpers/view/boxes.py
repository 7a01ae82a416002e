"""What a box of the flow diagram holds and how big it is: its text fitted to its width,
the rows that text takes, and the note and badge beside it.

Sizes come from estimated text widths (`text_fit`), upper bounds in the font the diagram
asks for, so a fitted line never runs out of its box. Kept apart from where the box goes
(`layout`) and how it is drawn (`drawing`), which both read the rows from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers.view.labels import ascent, line_box
from helpers.view.picture import Node
from helpers.view.route import Rect
from helpers.view.text_fit import Fitted, fit, text_width

TITLE, BODY, SMALL = 13.0, 12.0, 11.0  # font sizes: a box's first line, body text, edge labels
PAD_X, PAD_Y = 12.0, 7.0  # text inside a box; the program stripe sits in PAD_X
MIN_W, MAX_W = 150.0, 250.0  # a column of boxes is as wide as its widest text, within these
MIN_H = 46.0
METER_H = 8.0  # the ready/unacked bar under a queue's text
TITLE_LINES = 2  # a long title wraps to two lines; longer ones are shortened in the middle
BADGE_H, NOTE_GAP = 16.0, 3.0
FOLD = 6.0  # a folded box's cards behind it, up and to the right


@dataclass(frozen=True)
class Row:
    """One line of text in a box: left end, baseline, size, weight."""

    text: str
    x: float
    baseline: float
    size: float
    bold: bool
    css: str  # "title" or "line"


@dataclass
class Box:
    node: Node
    column: int
    w: float
    h: float
    title: Fitted
    lines: tuple[Fitted, ...]
    note: Fitted | None
    x: float = 0.0
    y: float = 0.0

    @property
    def above(self) -> float:
        """Room the box needs above its top: its note, its badge, its folded cards."""
        room = FOLD if self.node.kind == "folded" else 0.0
        if self.node.badge:
            room = BADGE_H - 3
        if self.note is not None:
            room += NOTE_GAP + line_box(BODY)
        return room

    @property
    def rect(self) -> Rect:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def cut(self) -> bool:
        """Some of its text was shortened: its hover must carry the whole."""
        return self.title.cut or any(f.cut for f in self.lines) or bool(self.note and self.note.cut)

    def rows(self) -> list[Row]:
        out: list[Row] = []
        top = self.y + PAD_Y
        for line in self.title.lines:
            out.append(Row(line, self.x + PAD_X, top + ascent(TITLE), TITLE, True, "title"))
            top += line_box(TITLE)
        for fitted in self.lines:
            for line in fitted.lines:
                out.append(Row(line, self.x + PAD_X, top + ascent(BODY), BODY, False, "line"))
                top += line_box(BODY)
        return out

    def badge_rect(self) -> Rect | None:
        """A red tag sitting on the box's top edge, at its right."""
        if not self.node.badge:
            return None
        w = text_width(self.node.badge, SMALL, True) + 12
        right = self.x + self.w - 8
        return (right - w, self.y - BADGE_H + 3, right, self.y + 3)

    def note_rect(self) -> Rect | None:
        """A red line above the box, right-aligned with it (over its badge, if any)."""
        if self.note is None:
            return None
        bottom = self.y - NOTE_GAP - (BADGE_H - 3 if self.node.badge else 0)
        w = self.note.width(BODY) + 1
        return (self.x + self.w - w, bottom - line_box(BODY), self.x + self.w, bottom)

    def meter_rect(self) -> Rect | None:
        if self.node.meter is None:
            return None
        bottom = self.y + self.h - 5
        return (self.x + PAD_X, bottom - 4, self.x + self.w - PAD_X, bottom)


def natural_width(node: Node) -> float:
    """How wide the node's box would be with nothing wrapped or shortened."""
    widths = [text_width(node.title, TITLE, True)]
    widths += [text_width(line, BODY) for line in node.lines]
    return max(widths) + 2 * PAD_X + 2


def make_box(node: Node, column: int, w: float, min_h: float = MIN_H) -> Box:
    """The node's box at width `w`: its text fitted (wrapped, else shortened in the middle)
    and its height grown to hold it."""
    inner = w - 2 * PAD_X - 2
    title = fit(node.title, inner, TITLE, True, TITLE_LINES)
    lines = tuple(fit(line, inner, BODY, False, 2) for line in node.lines)
    note = fit(node.note, w - 2, BODY, False, 1) if node.note else None
    rows = len(lines) and sum(len(f.lines) for f in lines)
    h = 2 * PAD_Y + len(title.lines) * line_box(TITLE) + rows * line_box(BODY)
    if node.meter is not None:
        h += METER_H
    return Box(node, column, w, max(h, min_h, MIN_H), title, lines, note)
