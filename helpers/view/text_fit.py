"""Measuring and fitting the diagram's text without a browser.

Widths come from a table of DejaVu Sans advance widths (`dejavu_widths`), the font the
diagram asks for first: the widest common sans-serif, so an estimate is an upper bound
where it is installed (kerning only narrows text) and close where Verdana or Arial stand
in. Text that does not fit is wrapped at spaces or shortened in the middle ("ctag1.4f3a…9b2c"),
never cut at the end: the end of a name (a consumer tag's last digits, a binding key's last
word) is often what tells two apart. The caller puts the whole text on hover.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers.i18n import chinese
from helpers.view.dejavu_widths import BOLD, REGULAR

FONT_FAMILY = "'DejaVu Sans', Verdana, Arial, sans-serif"
# The Chinese edition's stack: DejaVu Sans still draws the Latin letters and digits (the
# widths below are its), and each CJK character falls back to the first font that has it:
# Noto Sans CJK SC or WenQuanYi Micro Hei on Linux (fonts-noto-cjk, fonts-wqy-microhei),
# PingFang SC or Hiragino Sans GB on macOS, Microsoft YaHei on Windows.
CJK_FONT_FAMILY = (
    "'DejaVu Sans', 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'PingFang SC', "
    "'Hiragino Sans GB', 'Microsoft YaHei', Verdana, Arial, sans-serif"
)
ASCENT, DESCENT = 0.928, 0.236  # DejaVu Sans, in em: a text's box is (ASCENT + DESCENT) high
ELLIPSIS = "…"
SEPARATORS = {"·", "|", "→", "-", "–", "—", "+", "="}


def _table(runs: tuple[tuple[int, tuple[int, ...]], ...]) -> dict[str, float]:
    return {chr(first + i): w / 1000 for first, ws in runs for i, w in enumerate(ws)}


_WIDTHS = {False: _table(REGULAR), True: _table(BOLD)}


def font_family() -> str:
    """The SVG's font-family: the English one unchanged (the English notebooks' saved
    pictures stay byte for byte), the CJK stack when the helpers speak Chinese."""
    return CJK_FONT_FAMILY if chinese() else FONT_FAMILY


def is_wide(ch: str) -> bool:
    """A character drawn a full em wide (CJK ideographs, kana, hangul, full-width forms and
    CJK punctuation), after which a line may break even without a space."""
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF  # radicals, CJK punctuation, kana, ideographs
        or 0xAC00 <= o <= 0xD7AF  # hangul syllables
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0xFE30 <= o <= 0xFE4F  # vertical forms
        or 0xFF00 <= o <= 0xFF60  # full-width forms (，：（）)
        or 0xFFE0 <= o <= 0xFFE6
        or 0x20000 <= o <= 0x3FFFF  # ideograph extensions
    )


def _char_em(ch: str, bold: bool) -> float:
    """A character's width in em; one not in the table (CJK, emoji, a rare symbol) is drawn
    by a fallback font, counted wide so the estimate stays an upper bound."""
    w = _WIDTHS[bold].get(ch)
    if w is not None:
        return w
    if is_wide(ch):
        return 1.0  # CJK fonts draw these on a square em (WenQuanYi, Noto CJK, PingFang)
    if ord(ch) < 0x300 or 0x2000 <= ord(ch) < 0x2070:
        return 0.7
    return 1.3 if ord(ch) >= 0x1F000 else 1.0


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width of one line of `text` at font-size `size` (px), an upper bound."""
    return sum(_char_em(ch, bold) for ch in text) * size


def line_height(size: float) -> float:
    """The height of one line's box, as a browser's getBBox() measures it."""
    return (ASCENT + DESCENT) * size


@dataclass(frozen=True)
class Fitted:
    """Text fitted to a width: its lines, and whether something was left out (then the
    whole text belongs in a hover)."""

    lines: tuple[str, ...]
    cut: bool = False

    def width(self, size: float, bold: bool = False) -> float:
        return max((text_width(line, size, bold) for line in self.lines), default=0.0)


def shorten_middle(text: str, width: float, size: float, bold: bool = False) -> str:
    """`text` with characters from its middle replaced by "…" until it fits `width`; the
    start keeps a little more than the end ("ctag1.4f3a…9b2c")."""
    if text_width(text, size, bold) <= width:
        return text
    ems = [_char_em(ch, bold) * size for ch in text]
    budget = width - text_width(ELLIPSIS, size, bold)
    head, tail, used = 0, 0, 0.0
    # Take characters alternately, two from the start for each one from the end.
    while head + tail < len(text):
        take_head = head < 2 * (tail + 1)
        i = head if take_head else len(text) - 1 - tail
        if used + ems[i] > budget:
            break
        used += ems[i]
        if take_head:
            head += 1
        else:
            tail += 1
    return text[:head] + ELLIPSIS + (text[len(text) - tail :] if tail else "")


def fit(text: str, width: float, size: float, bold: bool = False, max_lines: int = 2) -> Fitted:
    """`text` in at most `max_lines` lines no wider than `width`.

    It is wrapped at spaces; a word wider than a line on its own (a consumer tag, a long
    queue name) is shortened in the middle; what still does not fit in `max_lines` lines
    goes into the last line, shortened in the middle.
    """
    if text_width(text, size, bold) <= width:
        return Fitted((text,))
    cut = False
    lines: list[str] = []
    words: list[tuple[str, str]] = []  # (word, what joins it to the one before: " " or "")
    for word, joint in _words(text):  # a separator stays at the end of the line before it
        if words and word in SEPARATORS:
            before, its_joint = words[-1]
            words[-1] = (before + joint + word, its_joint)
        else:
            words.append((word, joint))
    for word, joint in words:
        if lines and text_width(lines[-1] + joint + word, size, bold) <= width:
            lines[-1] += joint + word
            continue
        if text_width(word, size, bold) > width:
            # Too long for any line: shortened in the middle, after what the line holds
            # when there is room for a good part of it ("consumer ctag1.4f3a…9b2c").
            cut = True
            room = width - text_width(lines[-1] + joint, size, bold) if lines else 0.0
            if room >= width / 2:
                lines[-1] += joint + shorten_middle(word, room, size, bold)
                continue
            word = shorten_middle(word, width, size, bold)
        lines.append(word)
    if len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1 :])
        lines = lines[: max_lines - 1] + [shorten_middle(rest, width, size, bold)]
        cut = True
    return Fitted(tuple(lines), cut)


CLOSING = set("，。、：；！？）」』》】〉")  # never at the start of a line (kinsoku)


def _words(text: str) -> list[tuple[str, str]]:
    """`text` split where a line may break, each piece with what joins it to the one before
    (" " or ""): at spaces, and around each CJK character (Chinese has no spaces, so a long
    Chinese label would otherwise be one word, shortened in the middle instead of wrapped).
    Latin words inside Chinese stay whole, and closing punctuation stays with the character
    before it."""
    out: list[tuple[str, str]] = []
    for i, chunk in enumerate(text.split(" ")):
        joint = " " if i else ""
        if not any(is_wide(ch) for ch in chunk):
            out.append((chunk, joint))
            continue
        piece = ""
        for ch in chunk:
            if not is_wide(ch):
                piece += ch
                continue
            if piece:
                out.append((piece, joint))
                joint, piece = "", ""
            if ch in CLOSING and out and out[-1][0]:
                out[-1] = (out[-1][0] + ch, out[-1][1])
            else:
                out.append((ch, joint))
            joint = ""
        if piece:
            out.append((piece, joint))
    return out
