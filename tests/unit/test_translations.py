"""The Chinese edition stays a translation of the English chapters (no broker, a few seconds).

The English notebooks are the source; locale/zh_CN/LC_MESSAGES/NN_name.po holds one
translated entry per markdown cell and scripts/i18n.py builds notebooks/zh/ from both
(docs/authoring.md, "Translations"). These tests fail, naming the chapter and the cell, when a
translation is missing, fuzzy, stale or drops code, or when a committed Chinese notebook is
not what the script builds. The last ones change a scratch copy of the repository and check
that the script notices.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import i18n  # noqa: E402  (scripts/i18n.py, found through the line above)
import i18n_catalog as cat  # noqa: E402
import i18n_markdown  # noqa: E402

LANG = "zh_CN"
CHAPTERS = cat.chapters(ROOT)
IDS = [p.stem for p in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_every_markdown_cell_has_a_current_consistent_translation(chapter: Path):
    problems = i18n.catalog_problems(ROOT, LANG, chapter)
    assert not problems, f"notebooks/zh/{chapter.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_the_committed_chinese_notebook_is_what_the_script_builds(chapter: Path):
    problems = i18n.built_problems(ROOT, LANG, chapter)
    assert not problems, f"notebooks/zh/{chapter.name}:\n" + "\n".join(problems)


# A scratch copy of the repository: the English notebooks and the catalogs.


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    for chapter in CHAPTERS:
        shutil.copy(chapter, tmp_path / "notebooks")
    shutil.copytree(ROOT / "locale", tmp_path / "locale")
    return tmp_path


CHAPTER = "05_acks"


def _catalog(root: Path) -> tuple[Path, polib.POFile]:
    path = root / "locale" / LANG / "LC_MESSAGES" / f"{CHAPTER}.po"
    return path, polib.pofile(str(path), wrapwidth=0)


def _translate_all(root: Path) -> polib.POFile:
    """Give every cell of the chapter a stand-in translation that keeps its code and headings,
    so the tests do not depend on how far the real translation is."""
    path, catalog = _catalog(root)
    for entry in catalog:
        entry.msgstr = entry.msgid.replace("](../", "](../../") + "\n\n（译文）"
        entry.flags = [f for f in entry.flags if f != cat.FUZZY]
    catalog.save(str(path))
    return catalog


def _notebook(root: Path) -> tuple[Path, nbformat.NotebookNode]:
    path = root / "notebooks" / f"{CHAPTER}.ipynb"
    return path, nbformat.read(path, as_version=4)


def _check(root: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = i18n.main(["--root", str(root), "check", CHAPTER])
    return rc, capsys.readouterr().out.splitlines()


def _markdown_cell(nb: nbformat.NotebookNode, n: int = 3) -> nbformat.NotebookNode:
    return [c for c in nb.cells if c.cell_type == "markdown" and c.source.strip()][n]


def test_a_translated_and_built_chapter_passes(scratch: Path, capsys):
    _translate_all(scratch)
    assert i18n.main(["--root", str(scratch), "build", CHAPTER]) == 0
    assert (scratch / "notebooks" / "zh" / ".tutorial-language").read_text().strip() == LANG
    rc, lines = _check(scratch, capsys)
    assert (rc, lines) == (0, [])
    built = nbformat.read(scratch / "notebooks" / "zh" / f"{CHAPTER}.ipynb", as_version=4)
    english = _notebook(scratch)[1]
    assert [c.id for c in built.cells] == [c.id for c in english.cells]
    for cell, original in zip(built.cells, english.cells, strict=True):
        if cell.cell_type == "code":
            assert cell == original  # code, outputs, tags as executed
        elif original.source.strip():
            assert cell.source.endswith("（译文）")
    assert built.metadata["tutorial"]["language"] == LANG
    assert built.metadata["widgets"] == english.metadata["widgets"]


def test_a_changed_english_cell_is_named_stale_then_fuzzy_after_extract(scratch: Path, capsys):
    catalog = _translate_all(scratch)
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    path, nb = _notebook(scratch)
    cell = _markdown_cell(nb)
    old_english, translation = cell.source, catalog.find(cell.source, msgctxt=cell.id).msgstr
    cell.source = old_english.replace(" the ", " THE ", 1)
    assert cell.source != old_english
    nbformat.write(nb, path)

    rc, lines = _check(scratch, capsys)
    prefix = f"notebooks/zh/{CHAPTER}.ipynb cell {cell.id}: "
    assert rc == 1
    assert (
        f"{prefix}translation stale (English changed since it was translated; run make "
        "translations, then update it)" in lines
    ), lines
    # and the built notebook now lacks the new English text (a translation applies only to the
    # English it was made from); nothing else is named
    assert all(line.startswith(prefix) for line in lines), lines

    capsys.readouterr()
    assert i18n.main(["--root", str(scratch), "extract", CHAPTER]) == 0
    assert "1 marked fuzzy" in capsys.readouterr().out
    entry = _catalog(scratch)[1].find(cell.source, msgctxt=cell.id)
    assert entry is not None and cat.FUZZY in entry.flags
    assert entry.previous_msgid == old_english
    assert entry.msgstr == translation
    assert "#| msgid" in _catalog(scratch)[0].read_text(encoding="utf-8")
    rc, lines = _check(scratch, capsys)
    assert rc == 1 and any(line.startswith(f"{prefix}translation fuzzy") for line in lines), lines
    assert not any("stale" in line for line in lines), lines


def test_a_missing_translation_is_named(scratch: Path, capsys):
    catalog = _translate_all(scratch)
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    path, catalog = _catalog(scratch)
    entry = catalog[4]
    entry.msgstr = ""
    catalog.save(str(path))
    rc, lines = _check(scratch, capsys)
    assert rc == 1
    assert f"notebooks/zh/{CHAPTER}.ipynb cell {entry.msgctxt}: translation missing" in lines
    assert any("built notebook differs" in line and entry.msgctxt in line for line in lines)


def test_a_translation_that_drops_code_is_named(scratch: Path, capsys):
    _translate_all(scratch)
    path, catalog = _catalog(scratch)
    entry = next(e for e in catalog if "`" in e.msgid and "```" not in e.msgid)
    span = i18n_markdown.code_spans(entry.msgid).pop()
    entry.msgstr = entry.msgstr.replace(f"`{span}`", "它")
    catalog.save(str(path))
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    rc, lines = _check(scratch, capsys)
    assert rc == 1
    assert any(entry.msgctxt in line and "code spans missing" in line for line in lines), lines


def test_a_removed_cell_becomes_obsolete_and_a_new_one_gets_an_entry(scratch: Path, capsys):
    _translate_all(scratch)
    path, nb = _notebook(scratch)
    removed = _markdown_cell(nb, 2)
    nb.cells.remove(removed)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("A new cell.", id="newcell1"))
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(" \n", id="blank001"))  # not an entry
    nbformat.write(nb, path)
    rc, lines = _check(scratch, capsys)
    assert (
        f"notebooks/zh/{CHAPTER}.ipynb cell {removed.id}: catalog entry for a cell that no "
        "longer exists (run make translations)" in lines
    ), lines
    assert f"notebooks/zh/{CHAPTER}.ipynb cell newcell1: translation missing" in lines, lines
    i18n.main(["--root", str(scratch), "extract", CHAPTER])
    catalog = _catalog(scratch)[1]
    assert [e.msgctxt for e in catalog if not e.obsolete] == [
        i for i, _ in cat.markdown_cells(nb)
    ]  # the notebook's order
    assert [e.msgctxt for e in catalog.obsolete_entries()] == [removed.id]
    assert "blank001" not in {e.msgctxt for e in catalog}


def test_build_keeps_the_outputs_of_an_executed_chinese_notebook(scratch: Path, capsys):
    _translate_all(scratch)
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    built = scratch / "notebooks" / "zh" / f"{CHAPTER}.ipynb"
    nb = nbformat.read(built, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.outputs]
    ran = nbformat.v4.new_output("stream", name="stdout", text="中文输出\n")
    for cell in code:  # as if executed with the helpers speaking Chinese
        cell.outputs = [ran]
    nb.metadata["language_info"]["version"] = "3.99.0"
    nbformat.write(nb, built)
    assert _check(scratch, capsys) == (0, [])  # outputs are not compared

    path, english = _notebook(scratch)
    changed = next(c for c in english.cells if c.id == code[1].id)
    changed.source += "\n"
    nbformat.write(english, path)
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    rebuilt = {c.id: c for c in nbformat.read(built, as_version=4).cells}
    assert rebuilt[code[0].id].outputs == [ran]  # same code: the executed output stays
    assert rebuilt[changed.id].outputs == changed.outputs  # new code: the English output
    i18n.main(["--root", str(scratch), "build", "--no-keep-outputs", CHAPTER])
    again = {c.id: c for c in nbformat.read(built, as_version=4).cells}
    assert again[code[0].id].outputs != [ran]


def test_a_committed_notebook_with_other_code_is_named(scratch: Path, capsys):
    _translate_all(scratch)
    i18n.main(["--root", str(scratch), "build", CHAPTER])
    built = scratch / "notebooks" / "zh" / f"{CHAPTER}.ipynb"
    nb = nbformat.read(built, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.source += "\nprint('edited by hand')"
    nbformat.write(nb, built)
    rc, lines = _check(scratch, capsys)
    assert (rc, lines) == (
        1,
        [
            f"notebooks/zh/{CHAPTER}.ipynb cell {cell.id}: built notebook differs: code differs "
            "(run: make translations)"
        ],
    )


# The consistency rules on their own.


@pytest.mark.parametrize(
    ("english", "chinese", "named"),
    [
        ("Call `basic_ack` now.", "现在调用 ack。", "code spans missing"),
        ("Call it.", "调用 `basic_nack`。", "code spans not in the English"),
        ("```python\nx = 1\n```", "```python\nx = 2\n```", "fenced block 1 (```python) differs"),
        ("```\na\nb\n```", "```\n甲\n```", "fenced block 1 has 1 lines"),
        ("Text\n```bash\nls\n```", "文字", "0 fenced blocks where the English has 1"),
        ("See [x](../examples/send.py).", "见 [x](../examples/send.py)。", "link targets missing"),
        ("See [x](https://a.example/).", "见 x。", "link targets missing"),
        ("## A\n\n### B", "## 甲\n\n## 乙", "heading levels"),
        ("<details><summary>S</summary>\n\nx\n</details>", "答案：x", "<details>"),
    ],
)
def test_a_translation_that_loses_something_is_named(english: str, chinese: str, named: str):
    found = i18n_markdown.problems(english, chinese)
    assert any(named in problem for problem in found), found


def test_a_faithful_translation_has_no_problem():
    english = (
        "## Publish\n\nCall `channel.basic_publish(...)`, see [chapter 01](01_connection.ipynb)"
        " and [`send.py`](../examples/send.py) or <https://www.rabbitmq.com/docs>.\n\n"
        "```python\nchannel.basic_publish(\n    exchange='', routing_key='q', body=b'x')\n```\n"
        "- a list with a picture:\n\n  ```\n  producer -> queue\n  ```\n"
    )
    chinese = (
        "## 发布\n\n调用 `channel.basic_publish(...)`，见[第 01 章](01_connection.ipynb)、"
        "[`send.py`](../../examples/send.py) 和 <https://www.rabbitmq.com/docs>。\n\n"
        "```python\nchannel.basic_publish(\n    exchange='', routing_key='q', body=b'x')\n```\n"
        "- 一个带图的列表：\n\n  ```\n  生产者 -> 队列\n  ```\n"
    )
    assert i18n_markdown.problems(english, chinese) == []
