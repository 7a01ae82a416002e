"""The error index, without a broker: docs/errors.md is current, entries are sound, and the
sentences chapter 01 prints in its committed outputs still come out word for word."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pika.exceptions as pe

from helpers import error_index, explain
from helpers.error_index import ENTRIES, find_entry

REPO = Path(__file__).resolve().parents[2]


def errors_doc():
    spec = importlib.util.spec_from_file_location("errors_doc", REPO / "scripts" / "errors_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_errors_md_is_what_the_script_writes_now():
    written = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    assert written == errors_doc().render(), (
        "docs/errors.md is stale: run .venv/bin/python scripts/errors_doc.py"
    )


def test_every_entry_is_complete_and_names_an_existing_chapter():
    keys = [entry.key for entry in ENTRIES]
    assert len(keys) == len(set(keys)), keys
    for entry in ENTRIES:
        assert entry.meaning and entry.fix and entry.when and entry.label, entry.key
        assert list((REPO / "notebooks").glob(f"{entry.chapter}_*.ipynb")), entry
        assert not entry.fix.endswith("."), entry.key  # sentence() adds the full stop
        assert "\n" not in entry.one_line(), entry.key


def test_the_errors_of_the_issue_each_have_an_entry():
    wanted = {
        "541-deprecated": "07",
        "406-inequivalent": "02",
        "404-not-found": "04",
        "403-access-refused": "04",
        "312-no-route": "02",
        "320-connection-forced": "08",
        "stream-lost": "01",
        "nack": "02",
        "406-ack-timeout": "05",
        "blocked": "02",
    }
    assert {key: error_index.entry(key).chapter for key in wanted} == wanted


def test_a_406_is_told_apart_by_its_text():
    def closed(text: str) -> pe.ChannelClosedByBroker:
        return pe.ChannelClosedByBroker(406, "PRECONDITION_FAILED - " + text)

    inequivalent = closed("inequivalent arg 'durable' for queue 'q' in vhost '/': received")
    assert find_entry(inequivalent).key == "406-inequivalent"
    late = closed("delivery acknowledgement on channel 1 timed out. Timeout value used: 500 ms")
    assert find_entry(late).key == "406-ack-timeout"
    assert find_entry(closed("unknown delivery tag 1")).key == "406-unknown-tag"
    other = closed("fast reply consumer does not exist")
    assert find_entry(other) is None
    assert explain(other).startswith("The broker closed the channel (406 PRECONDITION_FAILED")


def test_the_541_entry_names_the_versions():
    fix = error_index.entry("541-deprecated").fix
    assert "4.3 and newer" in fix and "4.0-4.2" in fix and "durable=True" in fix
    timeout = error_index.entry("406-ack-timeout").fix
    assert "up to 4.2" in timeout and "4.3 and newer" in timeout


def test_chapter_01s_committed_explanations_are_unchanged():
    """Chapter 01 prints explain()'s sentences for connection errors; nbval compares them."""
    notebook = json.loads((REPO / "notebooks" / "01_connection.ipynb").read_text())
    printed = [
        line.split("explain: ", 1)[1].rstrip("\n")
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        for line in output.get("text", [])
        if "explain: " in line
    ]
    assert len(printed) >= 5, printed
    for sentence in printed:
        matching = [
            e
            for e in ENTRIES
            if sentence == e.sentence()
            or ("{detail}" in e.meaning and sentence.startswith(e.headline() + " ("))
        ]
        assert matching, f"no entry writes {sentence!r} any more"
        assert all(not e.explain_names_chapter for e in matching), sentence
