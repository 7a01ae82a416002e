"""The saved outputs of the committed chapters were made on a node that already ran.

When a chapter is executed with no node running, its first cell starts one and prints "Starting
a private RabbitMQ node on ...". Saved, those lines become the output nbval expects, so every
later run (where the node does run) fails that cell. Such a notebook must be executed again
with the node started first. Checked from the files alone, in English and in the Chinese words
of locale/zh_CN/LC_MESSAGES/helpers.po.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb")
)
# helpers/node/private.py's progress lines while it starts a node (their leading words).
START_MESSAGES = (
    "Starting a private RabbitMQ node on {host}:{port}: {runtime}...",
    "RabbitMQ is up after {seconds:.1f} s.",
)


def _pattern(message: str) -> re.Pattern[str]:
    """`message` with each {placeholder} matching any text."""
    parts = re.split(r"\{[^}]*\}", message)
    return re.compile(".*?".join(re.escape(part) for part in parts))


def _start_line_patterns() -> list[re.Pattern[str]]:
    """A pattern per start message, in English and in Chinese."""
    catalog = polib.pofile(str(ROOT / "locale" / "zh_CN" / "LC_MESSAGES" / "helpers.po"))
    translated = {entry.msgid: entry.msgstr for entry in catalog if entry.msgstr}
    patterns = []
    for message in START_MESSAGES:
        assert message in translated, f"helpers.po has no translation of {message!r}"
        patterns += [_pattern(message), _pattern(translated[message])]
    return patterns


PATTERNS = _start_line_patterns()


def start_lines(notebook: dict) -> list[str]:
    """The saved output lines of `notebook` that a node's start printed."""
    found = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            found += [line for line in text.splitlines() if any(p.search(line) for p in PATTERNS)]
    return found


def test_there_are_chapters_in_both_languages():
    assert any(p.parent.name == "zh" for p in CHAPTERS)
    assert any(p.parent.name == "notebooks" for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_saved_output_shows_a_node_starting(path: Path):
    lines = start_lines(json.loads(path.read_text(encoding="utf-8")))
    assert not lines, (
        f"{path.relative_to(ROOT)} was executed while no node ran, and saved its start: "
        f"{lines[0]!r}. Start the node first, then execute the notebook again."
    )


@pytest.mark.parametrize(
    "line",
    [
        "Starting a private RabbitMQ node on 127.0.0.1:5682: RabbitMQ 4.3.6 from ...",
        "正在 127.0.0.1:5686 上启动私有 RabbitMQ 节点：RabbitMQ 4.3.6……",
        "RabbitMQ 在 3.5 秒后启动完毕。",
    ],
)
def test_a_start_line_is_found(line: str):
    notebook = {"cells": [{"cell_type": "code", "outputs": [{"text": [line + "\n", "ok\n"]}]}]}
    assert start_lines(notebook) == [line]
