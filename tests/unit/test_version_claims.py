"""Claims about RabbitMQ versions in the chapters stay honest (no broker, under a second).

Behaviour that changed between RabbitMQ releases is stated with the versions it holds for,
and every chapter collects those statements in one box, a markdown cell that starts with the
line `### Version notes`, followed only by bullets of the form

    - **4.3 and newer:** what holds ([release notes](https://...))

whose range is one of the fixed forms "4.3 and newer", "4.0-4.2", "up to 4.2", "3.x",
"3.10" (see RANGE). A bullet may wrap onto indented lines; it names its source: a link, or,
for behaviour no release note states, the words "seen on" and the versions it was seen on.

Outside the box, a chapter's markdown never makes a bare claim about "RabbitMQ 4" or
"RabbitMQ 3" (a major version not followed by `.<digit>` or `.x`): either it names the
versions ("RabbitMQ 4.3", "4.0-4.2", "3.x") or the sentence is a general statement listed in
`version_claims_allowed.txt` (one exact fragment per line, under a `#` comment that says why).

Runs over every notebook in notebooks/, so it also holds chapters other people write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ALLOWED_FILE = Path(__file__).with_name("version_claims_allowed.txt")

CHAPTERS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if re.match(r"\d\d_\w+\.ipynb$", p.name))
HEADING = "### Version notes"
RANGE = r"up to \d+\.\d+|\d+\.(?:\d+|x)(?:-\d+\.\d+| and newer)?"
BULLET = re.compile(rf"^- \*\*(?P<range>{RANGE}):\*\* (?P<text>\S.*)$", re.S)
SOURCE = re.compile(r"\]\(https?://[^)\s]+\)|\bseen on\b", re.I)
# "RabbitMQ 4" or "RabbitMQ 3" with no minor version (".3") and no ".x" after it.
BARE_CLAIM = re.compile(r"RabbitMQ\s+(\d+)(?!\d|\.(?:\d|x))")


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


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_the_chapter_has_one_version_notes_box(path):
    boxes = [s for s in _markdown_cells(path) if s.split("\n", 1)[0].rstrip() == HEADING]
    assert len(boxes) == 1, (
        f"{path.name}: needs exactly one markdown cell starting with {HEADING!r} "
        f"(found {len(boxes)}), before its Summary"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_each_version_note_names_its_range_and_its_source(path):
    for box in (s for s in _markdown_cells(path) if s.split("\n", 1)[0].rstrip() == HEADING):
        bullets = _bullets(box)
        assert bullets, f"{path.name}: the Version notes box has no bullet"
        for bullet in bullets:
            assert BULLET.match(bullet), (
                f"{path.name}: a Version notes bullet must start `- **<range>:** ` with a range "
                f"such as 4.3 and newer, 4.0-4.2, up to 4.2, 3.x: {bullet!r}"
            )
            assert SOURCE.search(bullet), (
                f"{path.name}: a Version notes bullet names its source (a link to the release "
                f"notes, or 'seen on <versions>'): {bullet!r}"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_bare_claim_about_rabbitmq_3_or_4(path):
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
        f"{path.name}: name the versions (4.3 and newer, 4.0-4.2, up to 4.2, 3.x) or add the "
        f"sentence to {ALLOWED_FILE.name} with a comment why:\n  " + "\n  ".join(bare)
    )


def test_every_allowed_fragment_is_still_in_a_chapter():
    texts = [_squash(s) for path in CHAPTERS for s in _markdown_cells(path)]
    stale = [f for f in _allowed_fragments() if not any(f in text for text in texts)]
    assert not stale, f"{ALLOWED_FILE.name}: no chapter says these any more: {stale}"


def test_the_rules_catch_what_they_are_for():
    assert BULLET.match("- **4.3 and newer:** x ([release notes](https://example.org))")
    for good in ("4.0-4.2", "up to 4.2", "3.x", "3.10", "3.11 and newer"):
        assert BULLET.match(f"- **{good}:** text"), good
    for bad in ("RabbitMQ 4", "4", "4.x and later", "since 4.0", "4.0 to 4.2"):
        assert not BULLET.match(f"- **{bad}:** text"), bad
    assert BARE_CLAIM.search("RabbitMQ 4 refuses it")
    assert BARE_CLAIM.search("RabbitMQ 4's way")
    assert BARE_CLAIM.search("as on RabbitMQ 3.")
    for qualified in ("RabbitMQ 4.3 refuses it", "RabbitMQ 3.x kept", "RabbitMQ 3.10.8"):
        assert not BARE_CLAIM.search(qualified), qualified
