"""Claims about RabbitMQ versions in the chapters stay honest (no broker, under a second).

Behaviour that changed between RabbitMQ releases is stated with the versions it holds for,
and every chapter collects those statements in one box, a markdown cell that starts with the
line `### Version notes`, followed only by bullets of the form

    - **4.3 and newer:** what holds ([release notes](https://...))

whose range is one of the fixed forms "4.3 and newer", "4.0-4.2", "up to 4.2", "3.x",
"3.10" (see RANGE). A bullet may wrap onto indented lines; it names its source: a link, or,
for behaviour no release note states, the words "seen on" and the versions it was seen on.

The Chinese edition (notebooks/zh/, built from locale/zh_CN by scripts/i18n.py) holds the
same box in Chinese: `### 版本说明`, bullets `- **4.3 及更高版本：** ...` with the ranges
"4.3 及更高版本" (X and newer), "4.2 及更早版本" (up to X), "4.0-4.2", "3.x", "3.10", in the
English box's order, and a link or "实测于" (seen on) as the source.

Outside the box, a chapter's markdown never makes a bare claim about "RabbitMQ 4" or
"RabbitMQ 3" (a major version not followed by `.<digit>` or `.x`): either it names the
versions ("RabbitMQ 4.3", "4.0-4.2", "3.x") or the sentence is a general statement listed in
`version_claims_allowed.txt` (one exact fragment per line, under a `#` comment that says why).

Runs over every notebook in notebooks/ and notebooks/zh/, so it also holds chapters other
people write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ALLOWED_FILE = Path(__file__).with_name("version_claims_allowed.txt")


def _chapters(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if re.match(r"\d\d_\w+\.ipynb$", p.name))


@dataclass(frozen=True)
class Edition:
    """How one language writes the box: its heading, its bullets, its ranges, its sources."""

    folder: Path
    heading: str
    bullet: re.Pattern[str]
    source: re.Pattern[str]
    forms: str  # for the failure message

    def chapters(self) -> list[Path]:
        return _chapters(self.folder)


RANGE = r"up to \d+\.\d+|\d+\.(?:\d+|x)(?:-\d+\.\d+| and newer)?"
RANGE_ZH = r"\d+\.\d+ 及更早版本|\d+\.(?:\d+|x)(?:-\d+\.\d+| 及更高版本)?"
ENGLISH = Edition(
    NOTEBOOKS,
    "### Version notes",
    re.compile(rf"^- \*\*(?P<range>{RANGE}):\*\* (?P<text>\S.*)$", re.S),
    re.compile(r"\]\(https?://[^)\s]+\)|\bseen on\b", re.I),
    "4.3 and newer, 4.0-4.2, up to 4.2, 3.x; source: a link or 'seen on <versions>'",
)
CHINESE = Edition(
    NOTEBOOKS / "zh",
    "### 版本说明",
    re.compile(rf"^- \*\*(?P<range>{RANGE_ZH})：\*\* ?(?P<text>\S.*)$", re.S),
    re.compile(r"\]\(https?://[^)\s]+\)|实测于"),
    "4.3 及更高版本, 4.0-4.2, 4.2 及更早版本, 3.x; source: a link or '实测于 <versions>'",
)
EDITIONS = (ENGLISH, CHINESE)
# Kept for the English-only rules below and for other tests that import them.
CHAPTERS = ENGLISH.chapters()
HEADING = ENGLISH.heading
BULLET = ENGLISH.bullet
SOURCE = ENGLISH.source
# "RabbitMQ 4" or "RabbitMQ 3" with no minor version (".3") and no ".x" after it.
BARE_CLAIM = re.compile(r"RabbitMQ\s+(\d+)(?!\d|\.(?:\d|x))")
CASES = [(e, p) for e in EDITIONS for p in e.chapters()]
CASE_IDS = [f"{'zh-' if e is CHINESE else ''}{p.stem}" for e, p in CASES]


def in_english(chinese_range: str) -> str:
    """The English form of a Chinese range: "4.3 及更高版本" is "4.3 and newer"."""
    if chinese_range.endswith(" 及更高版本"):
        return chinese_range.removesuffix(" 及更高版本") + " and newer"
    if chinese_range.endswith(" 及更早版本"):
        return "up to " + chinese_range.removesuffix(" 及更早版本")
    return chinese_range


def _markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def _squash(text: str) -> str:
    return " ".join(text.split())


def _allowed_fragments() -> list[str]:
    """The allow-list's fragments; each must sit under a comment line saying why."""
    fragments, commented = [], False
    for number, line in enumerate(ALLOWED_FILE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            commented = False
        elif line.startswith("#"):
            commented = True
        else:
            assert commented, f"{ALLOWED_FILE.name}:{number}: a fragment needs a # comment above it"
            fragments.append(_squash(line))
    return fragments


def _bullets(box: str) -> list[str]:
    """The bullets of a Version notes box, continuation lines joined; other lines raise."""
    bullets: list[str] = []
    for line in box.splitlines()[1:]:
        if line.startswith("- "):
            bullets.append(line)
        elif line.startswith((" ", "\t")) and line.strip() and bullets:
            bullets[-1] += " " + line.strip()
        elif line.strip():
            raise AssertionError(f"not a bullet: {line!r} (the box holds bullets only)")
    return bullets


def _boxes(edition: Edition, path: Path) -> list[str]:
    return [s for s in _markdown_cells(path) if s.split("\n", 1)[0].rstrip() == edition.heading]


def _name(path: Path) -> str:
    return path.relative_to(NOTEBOOKS).as_posix()


@pytest.mark.parametrize(("edition", "path"), CASES, ids=CASE_IDS)
def test_the_chapter_has_one_version_notes_box(edition: Edition, path: Path):
    boxes = _boxes(edition, path)
    assert len(boxes) == 1, (
        f"{_name(path)}: needs exactly one markdown cell starting with {edition.heading!r} "
        f"(found {len(boxes)}), before its Summary"
    )


@pytest.mark.parametrize(("edition", "path"), CASES, ids=CASE_IDS)
def test_each_version_note_names_its_range_and_its_source(edition: Edition, path: Path):
    for box in _boxes(edition, path):
        bullets = _bullets(box)
        assert bullets, f"{_name(path)}: the {edition.heading!r} box has no bullet"
        for bullet in bullets:
            assert edition.bullet.match(bullet), (
                f"{_name(path)}: a {edition.heading!r} bullet must start `- **<range>:** ` with "
                f"a range in one of the forms {edition.forms}: {bullet!r}"
            )
            assert edition.source.search(bullet), (
                f"{_name(path)}: a {edition.heading!r} bullet names its source ({edition.forms})"
                f": {bullet!r}"
            )


@pytest.mark.parametrize("path", CHINESE.chapters(), ids=lambda p: f"zh-{p.stem}")
def test_the_chinese_box_names_the_english_ranges_in_order(path: Path):
    def ranges(edition: Edition, chapter: Path) -> list[str]:
        bullets = [b for box in _boxes(edition, chapter) for b in _bullets(box)]
        return [m["range"] for m in map(edition.bullet.match, bullets) if m]

    chinese = [in_english(r) for r in ranges(CHINESE, path)]
    english = ranges(ENGLISH, NOTEBOOKS / path.name)
    assert chinese == english, (
        f"{_name(path)}: the {CHINESE.heading!r} box names {chinese} (in English), the English "
        f"chapter's box {english}"
    )


@pytest.mark.parametrize(("edition", "path"), CASES, ids=CASE_IDS)
def test_no_bare_claim_about_rabbitmq_3_or_4(edition: Edition, path: Path):
    allowed = _allowed_fragments()
    bare = []
    for source in _markdown_cells(path):
        text = _squash(source)
        covered = [
            (m.start(), m.end())
            for fragment in allowed
            for m in re.finditer(re.escape(fragment), text)
        ]
        for claim in BARE_CLAIM.finditer(text):
            if not any(start <= claim.start() and claim.end() <= end for start, end in covered):
                bare.append(text[max(0, claim.start() - 50) : claim.end() + 50])
    assert not bare, (
        f"{_name(path)}: name the versions (4.3 and newer, 4.0-4.2, up to 4.2, 3.x) or add the "
        f"sentence to {ALLOWED_FILE.name} with a comment why:\n  " + "\n  ".join(bare)
    )


def test_every_allowed_fragment_is_still_in_a_chapter():
    texts = [_squash(s) for _, path in CASES for s in _markdown_cells(path)]
    stale = [f for f in _allowed_fragments() if not any(f in text for text in texts)]
    assert not stale, f"{ALLOWED_FILE.name}: no chapter says these any more: {stale}"


def test_the_rules_catch_what_they_are_for():
    assert BULLET.match("- **4.3 and newer:** x ([release notes](https://example.org))")
    for good in ("4.0-4.2", "up to 4.2", "3.x", "3.10", "3.11 and newer"):
        assert BULLET.match(f"- **{good}:** text"), good
    for bad in ("RabbitMQ 4", "4", "4.x and later", "since 4.0", "4.0 to 4.2"):
        assert not BULLET.match(f"- **{bad}:** text"), bad
    for good in ("4.3 及更高版本", "4.2 及更早版本", "4.0-4.2", "3.x", "3.10"):
        assert CHINESE.bullet.match(f"- **{good}：** 文字"), good
    for bad in ("4.3 and newer", "4.x 及以后", "自 4.0 起", "4.3 及更高版本:"):
        assert not CHINESE.bullet.match(f"- **{bad}：** 文字"), bad
    assert not CHINESE.bullet.match("- **4.3 及更高版本:** 文字")  # the colon is full width
    assert in_english("4.2 及更早版本") == "up to 4.2"
    assert in_english("4.3 及更高版本") == "4.3 and newer"
    assert CHINESE.source.search("（实测于 4.3.6 和 3.10.8）")
    assert BARE_CLAIM.search("RabbitMQ 4 拒绝它")
    assert BARE_CLAIM.search("RabbitMQ 4 refuses it")
    assert BARE_CLAIM.search("RabbitMQ 4's way")
    assert BARE_CLAIM.search("as on RabbitMQ 3.")
    for qualified in ("RabbitMQ 4.3 refuses it", "RabbitMQ 3.x kept", "RabbitMQ 3.10.8"):
        assert not BARE_CLAIM.search(qualified), qualified
