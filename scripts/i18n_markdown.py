"""What a translation of a markdown cell must keep from the English: checked without a broker.

A translator rewrites prose, not code. So that a translation cannot silently drop or change
code, a link or the shape of a chapter, a msgstr must keep from its msgid:

- the same inline code spans (`basic_ack`), as a set: each span of the English is in the
  translation, and the translation adds none;
- the same fenced blocks in the same order: a block with an info string (```` ```python ````,
  ```` ```bash ````) identical, line for line; a bare block (a text picture) with the same
  number of lines, since its labels may be translated;
- the same link targets, except that a relative path leaving notebooks/ (`../examples/x.py`)
  gains one `../`, because the Chinese notebooks live one folder deeper (notebooks/zh/);
  links between chapters (`01_connection.ipynb`) stay as they are and reach the Chinese
  chapter;
- the same heading levels in the same order;
- the same `<details>` and `<summary>` tags (the collapsed solution).

`problems(msgid, msgstr)` returns one short phrase per difference.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(?P<code>.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(?P<target>\S+)", re.M)
AUTOLINK = re.compile(r"<(?P<target>https?://[^>\s]+)>")
HREF = re.compile(r"""\b(?:href|src)=["'](?P<target>[^"']+)["']""")
HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})\s", re.M)
TAG = re.compile(r"</?(details|summary)\b", re.I)


@dataclass
class Parts:
    """The pieces of one markdown text that a translation must keep."""

    prose: str = ""  # the text outside fenced blocks
    fences: list[tuple[str, list[str]]] = field(default_factory=list)  # (info, lines)


def split(text: str) -> Parts:
    """Separate fenced blocks from the rest; an unclosed fence runs to the end, as in
    CommonMark."""
    parts, prose = Parts(), []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opener = FENCE.match(lines[i])
        if not opener:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence = len(opener["indent"]), opener["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines):
            closer = FENCE.match(lines[i])
            if closer and closer["fence"][0] == fence[0] and len(closer["fence"]) >= len(fence):
                if not closer["info"].strip():
                    break
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i].lstrip())
            i += 1
        i += 1
        parts.fences.append((opener["info"].strip(), body))
        prose.append("")  # a fenced block separates paragraphs
    parts.prose = "\n".join(prose)
    return parts


def code_spans(prose: str) -> set[str]:
    """Inline code spans; a line break inside one counts as a space, as in CommonMark, since
    a translation wraps its lines elsewhere."""
    return {" ".join(m["code"].split()) for m in INLINE_CODE.finditer(prose)}


def _without_code(prose: str) -> str:
    return INLINE_CODE.sub("", prose)


def link_targets(prose: str) -> Counter[str]:
    text = _without_code(prose)
    found: Counter[str] = Counter()
    for pattern in (LINK, REFERENCE, AUTOLINK, HREF):
        found.update(m["target"] for m in pattern.finditer(text))
    return found


def moved_one_folder_down(target: str) -> str:
    """Where an English link target points from notebooks/zh/: paths that leave notebooks/
    need one more `../`; URLs, anchors and links to a sibling chapter stay."""
    return "../" + target if target.startswith("../") else target


def heading_levels(prose: str) -> list[int]:
    return [len(m["level"]) for m in HEADING.finditer(prose)]


def _tags(prose: str) -> Counter[str]:
    return Counter(m.group(0).lower() for m in TAG.finditer(_without_code(prose)))


def _listed(items) -> str:
    return ", ".join(f"`{x}`" if "`" not in x else repr(x) for x in sorted(items))


def problems(msgid: str, msgstr: str) -> list[str]:
    """One phrase per thing the translation `msgstr` lost or changed from `msgid`."""
    english, chinese = split(msgid), split(msgstr)
    found = []
    missing = code_spans(english.prose) - code_spans(chinese.prose)
    extra = code_spans(chinese.prose) - code_spans(english.prose)
    if missing:
        found.append(f"code spans missing from the translation: {_listed(missing)}")
    if extra:
        found.append(f"code spans not in the English: {_listed(extra)}")
    if len(english.fences) != len(chinese.fences):
        found.append(
            f"{len(chinese.fences)} fenced blocks where the English has {len(english.fences)}"
        )
    else:
        for n, ((info, lines), (info2, lines2)) in enumerate(
            zip(english.fences, chinese.fences, strict=True), 1
        ):
            if info != info2:
                found.append(f"fenced block {n} is ```{info2} where the English has ```{info}")
            elif info and lines != lines2:
                found.append(f"fenced block {n} (```{info}) differs from the English code")
            elif not info and len(lines) != len(lines2):
                found.append(
                    f"fenced block {n} has {len(lines2)} lines where the English has {len(lines)}"
                )
    expected = Counter(
        {moved_one_folder_down(t): n for t, n in link_targets(english.prose).items()}
    )
    actual = link_targets(chinese.prose)
    if expected - actual:
        found.append(f"link targets missing: {_listed(expected - actual)}")
    if actual - expected:
        found.append(
            f"link targets not in the English (after ../ for notebooks/zh/): "
            f"{_listed(actual - expected)}"
        )
    levels, levels2 = heading_levels(english.prose), heading_levels(chinese.prose)
    if levels != levels2:
        found.append(f"heading levels {levels2} where the English has {levels}")
    if _tags(english.prose) != _tags(chinese.prose):
        found.append("the <details>/<summary> tags differ from the English")
    return found
