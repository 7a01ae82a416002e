"""Every chapter has all its parts: checked from the files alone, with no broker, in well under
a second.

A chapter `notebooks/NN_name.ipynb` comes with its exercise self-check `helpers/checks/chNN.py`,
its tests `tests/test_checks_chNN.py` and `tests/test_learner_chNN.py` (learner session), one
exercise/check/solution trio (cell
tags), a "Time to learn" line under its Prerequisites, and a row in README.md's table of
chapters; it imports its check module as `from helpers.checks import chNN` (docs/authoring.md,
"Adding chapter NN"). `chapter_problems` and `import_style_problems` name each missing part in
one sentence. The tests run them on this repository, then on copies with one part taken away.

A Chinese chapter `notebooks/zh/NN_name.ipynb` (built by scripts/i18n.py) keeps the trio, has
a "学习时间" line under "## 预备知识", a row in README.zh.md's table linking to it, and the
outline's fixed section titles in their Chinese form (FIXED_TITLES, as docs/glossary.zh.md
has them): `chinese_problems` names what is missing.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHAPTER_NAME = re.compile(r"\d\d_\w+\.ipynb")
# The chapters write "- Time to learn: about 30 minutes." or "Time to learn: about 30 minutes."
TIME_TO_LEARN = re.compile(r"^\s*(?:[-*]\s+)?time to learn:", re.I | re.M)
PREREQUISITES = re.compile(r"^##\s+Prerequisites\s*$(.*?)(?=^#{1,2}\s|\Z)", re.M | re.S)
OLD_IMPORT = re.compile(
    r"^\s*(?:from\s+helpers\.checks\.ch\d+\s+import|import\s+helpers\.checks\.ch\d+)", re.M
)

# The Chinese edition's forms of the same lines (docs/glossary.zh.md).
TIME_TO_LEARN_ZH = re.compile(r"^\s*(?:[-*]\s+)?学习时间[:：]", re.M)
PREREQUISITES_ZH = re.compile(r"^##\s+预备知识\s*$(.*?)(?=^#{1,2}\s|\Z)", re.M | re.S)
# The outline's fixed `##` titles: the English title (or its start, for "## Exercise: ...")
# and the Chinese one that replaces it.
FIXED_TITLES = {
    "Overview": "概览",
    "Prerequisites": "预备知识",
    "Setup": "准备工作",
    "Common pitfalls": "常见陷阱",
    "Exercise": "练习",
    "Summary": "小结",
    "What's next": "下一步",
    "Cleanup": "清理",
    "Clean up": "清理",
}
HEADING_2 = re.compile(r"^## (.+)$", re.M)

# tag: (cell type, what the cell is)
TRIO = {
    "exercise": ("code", "the learner's empty cell, holding only comments"),
    "check": ("code", "the one calling chNN.check_exercise(...), right after the exercise"),
    "solution": ("markdown", "the collapsed <details> solution, after the check"),
}


def chapters(root: Path) -> list[Path]:
    """The numbered chapters in notebooks/ (not its subfolders)."""
    return sorted(
        p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb") if CHAPTER_NAME.fullmatch(p.name)
    )


def _cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _tagged(cells: list[dict], tag: str) -> list[int]:
    return [i for i, cell in enumerate(cells) if tag in _tags(cell)]


def _trio_problems(cells: list[dict]) -> list[str]:
    problems = []
    for tag, (kind, what) in TRIO.items():
        found = _tagged(cells, tag)
        if not found:
            problems.append(f"no cell tagged {tag!r}; tag one {kind} cell {tag!r} ({what})")
        elif len(found) > 1:
            problems.append(
                f"{len(found)} cells tagged {tag!r} (cells {', '.join(map(str, found))}); "
                f"keep the tag on exactly one {kind} cell ({what})"
            )
        elif cells[found[0]]["cell_type"] != kind:
            problems.append(
                f"cell {found[0]}, tagged {tag!r}, is a {cells[found[0]]['cell_type']} cell; "
                f"it must be a {kind} cell ({what})"
            )
    if problems:
        return problems
    [exercise], [check], [solution] = (_tagged(cells, tag) for tag in TRIO)
    if check != exercise + 1:
        problems.append(
            f"the cell tagged 'check' (cell {check}) must come right after the cell tagged "
            f"'exercise' (cell {exercise})"
        )
    elif "check_exercise(" not in _source(cells[check]):
        problems.append(f"its check cell (cell {check}) does not call check_exercise(...)")
    if solution < check:
        problems.append(
            f"the cell tagged 'solution' (cell {solution}) must come after the check cell "
            f"(cell {check})"
        )
    return problems


def _time_to_learn_problem(cells: list[dict], chinese: bool = False) -> str | None:
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    if chinese:
        section = PREREQUISITES_ZH.search(markdown)
        if section is None:
            return "no '## 预备知识' section; add one with a line '- 学习时间：约 N 分钟。'"
        if not TIME_TO_LEARN_ZH.search(section.group(1)):
            return "no '学习时间' line; add '- 学习时间：约 N 分钟。' under '## 预备知识'"
        return None
    section = PREREQUISITES.search(markdown)
    if section is None:
        return (
            "no '## Prerequisites' section; add one with a line '- Time to learn: about N minutes.'"
        )
    if not TIME_TO_LEARN.search(section.group(1)):
        return "no 'Time to learn' line; add '- Time to learn: about N minutes.' to Prerequisites"
    return None


def chapter_problems(root: Path) -> list[str]:
    """One sentence per part a chapter lacks, naming the chapter and what to add."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    problems = []
    for notebook in chapters(root):
        nn, name = notebook.name[:2], f"notebooks/{notebook.name}"
        cells = _cells(notebook)
        if not (root / "helpers" / "checks" / f"ch{nn}.py").is_file():
            problems.append(f"{name}: no helpers/checks/ch{nn}.py (its exercise self-check)")
        if not (root / "tests" / f"test_checks_ch{nn}.py").is_file():
            problems.append(f"{name}: no tests/test_checks_ch{nn}.py (the tests of its check)")
        if not (root / "tests" / f"test_learner_ch{nn}.py").is_file():
            problems.append(f"{name}: no tests/test_learner_ch{nn}.py (its learner-session test)")
        problems += [f"{name}: {problem}" for problem in _trio_problems(cells)]
        time_to_learn = _time_to_learn_problem(cells)
        if time_to_learn:
            problems.append(f"{name}: {time_to_learn}")
        if not re.search(rf"^\| `{re.escape(notebook.stem)}` \|", readme, re.M):
            problems.append(
                f"{name}: no row starting '| `{notebook.stem}` |' in README.md's table of chapters"
            )
    return problems


def chinese_chapters(root: Path) -> list[Path]:
    """The built Chinese chapters in notebooks/zh/."""
    folder = root / "notebooks" / "zh"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if CHAPTER_NAME.fullmatch(p.name))


def _fixed_title_problems(english: list[dict], chinese: list[dict]) -> list[str]:
    """Each fixed `##` title of the English cell is the fixed Chinese title in the same place
    of the cell with the same id."""
    problems = []
    translated = {c.get("id"): c for c in chinese}
    for cell in english:
        if cell["cell_type"] != "markdown" or cell.get("id") not in translated:
            continue
        titles = HEADING_2.findall(_source(cell))
        titles_zh = HEADING_2.findall(_source(translated[cell["id"]]))
        for n, title in enumerate(titles):
            fixed = next(
                (
                    z
                    for e, z in FIXED_TITLES.items()
                    if title.rstrip() == e or title.startswith(f"{e}:")
                ),
                None,
            )
            if fixed is None:
                continue
            found = titles_zh[n] if n < len(titles_zh) else None
            if found is None or not (found.rstrip() == fixed or found.startswith(f"{fixed}：")):
                problems.append(
                    f"cell {cell['id']}: '## {title}' must become '## {fixed}', found "
                    f"{'## ' + found if found else 'no such heading'!r}"
                )
    return problems


def chinese_problems(root: Path) -> list[str]:
    """One sentence per part a Chinese chapter lacks: the trio, its "学习时间" line, its row in
    README.zh.md (linking to the notebook) and the fixed section titles."""
    readme_path = root / "README.zh.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.exists() else ""
    problems = []
    for notebook in chinese_chapters(root):
        name = f"notebooks/zh/{notebook.name}"
        english = root / "notebooks" / notebook.name
        if not english.is_file():
            problems.append(f"{name}: no English chapter notebooks/{notebook.name} (the source)")
            continue
        cells = _cells(notebook)
        problems += [f"{name}: {problem}" for problem in _trio_problems(cells)]
        time_to_learn = _time_to_learn_problem(cells, chinese=True)
        if time_to_learn:
            problems.append(f"{name}: {time_to_learn}")
        row = rf"^\| \[`{re.escape(notebook.stem)}`\]\({re.escape(name)}\) \|"
        if not re.search(row, readme, re.M):
            problems.append(
                f"{name}: no row starting '| [`{notebook.stem}`]({name}) |' in README.zh.md's "
                "table of chapters"
            )
        problems += [f"{name}: {p}" for p in _fixed_title_problems(_cells(english), cells)]
    return problems


def import_style_problems(root: Path) -> list[str]:
    """Each chapter imports its check module one way: `from helpers.checks import chNN`, then
    calls `chNN.check_exercise(...)` in its check cell."""
    problems = []
    for notebook in chapters(root):
        nn, name = notebook.name[:2], f"notebooks/{notebook.name}"
        cells = _cells(notebook)
        for index, cell in enumerate(cells):
            if cell["cell_type"] == "code" and OLD_IMPORT.search(_source(cell)):
                problems.append(
                    f"{name}: cell {index} imports from a check module directly; write "
                    f"`from helpers.checks import ch{nn}` and use ch{nn}.<name>"
                )
        checks = _tagged(cells, "check")
        if len(checks) != 1:
            continue  # chapter_problems names that
        [check] = checks
        if f"ch{nn}.check_exercise(" not in _source(cells[check]):
            problems.append(
                f"{name}: its check cell (cell {check}) does not call ch{nn}.check_exercise(...)"
            )
        imports = re.compile(rf"^from helpers\.checks import ch{nn}\s*$", re.M)
        if not any(
            c["cell_type"] == "code" and imports.search(_source(c)) for c in cells[: check + 1]
        ):
            problems.append(
                f"{name}: no `from helpers.checks import ch{nn}` in its check cell or before it"
            )
    return problems


def test_every_chapter_has_all_its_parts():
    assert chapters(ROOT), "no chapters found in notebooks/"
    problems = chapter_problems(ROOT)
    assert not problems, "chapters lack parts (docs/authoring.md, 'Adding chapter NN'):\n" + (
        "\n".join(problems)
    )


def test_every_chinese_chapter_has_all_its_parts():
    problems = chinese_problems(ROOT)
    assert not problems, "Chinese chapters lack parts (docs/authoring.md, 'Translations'):\n" + (
        "\n".join(problems)
    )


def test_every_chapter_imports_its_check_one_way():
    problems = import_style_problems(ROOT)
    assert not problems, "\n".join(problems)


# Taking parts away from a copy of what chapter_problems reads.


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    for notebook in chapters(ROOT):
        shutil.copy(notebook, tmp_path / "notebooks")
    shutil.copy(ROOT / "README.md", tmp_path)
    if (ROOT / "README.zh.md").exists():
        shutil.copy(ROOT / "README.zh.md", tmp_path)
    if chinese_chapters(ROOT):
        shutil.copytree(ROOT / "notebooks" / "zh", tmp_path / "notebooks" / "zh")
    shutil.copytree(
        ROOT / "helpers" / "checks",
        tmp_path / "helpers" / "checks",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tmp_path / "tests").mkdir()
    for test in (ROOT / "tests").glob("test_[lc]*_ch*.py"):
        shutil.copy(test, tmp_path / "tests")
    return tmp_path


def _notebook(root: Path, prefix: str) -> Path:
    [notebook] = (root / "notebooks").glob(f"{prefix}_*.ipynb")
    return notebook


def _edit_cells(root: Path, prefix: str, edit: Callable[[list[dict]], None]) -> None:
    notebook = _notebook(root, prefix)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    edit(nb["cells"])
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")


def _no_check_module(root: Path) -> None:
    (root / "helpers" / "checks" / "ch03.py").unlink(missing_ok=True)


def _no_check_test(root: Path) -> None:
    (root / "tests" / "test_checks_ch06.py").unlink(missing_ok=True)


def _no_learner_test(root: Path) -> None:
    (root / "tests" / "test_learner_ch04.py").unlink(missing_ok=True)


def _no_readme_row(root: Path) -> None:
    readme = root / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
    readme.write_text("".join(x for x in lines if not x.startswith("| `05_acks` |")))


def _no_time_to_learn(root: Path) -> None:
    def edit(cells: list[dict]) -> None:
        for cell in cells:
            if cell["cell_type"] == "markdown":
                cell["source"] = [x for x in cell["source"] if "Time to learn" not in x]

    _edit_cells(root, "00", edit)


def _two_exercises(root: Path) -> None:
    def edit(cells: list[dict]) -> None:
        first_code = next(c for c in cells if c["cell_type"] == "code")
        first_code["metadata"].setdefault("tags", []).append("exercise")

    _edit_cells(root, "07", edit)


def _no_solution_tag(root: Path) -> None:
    def edit(cells: list[dict]) -> None:
        for cell in cells:
            cell["metadata"]["tags"] = [t for t in _tags(cell) if t != "solution"]

    _edit_cells(root, "01", edit)


@pytest.mark.parametrize(
    ("strip", "chapter", "named"),
    [
        (_no_check_module, "03_consumer", "no helpers/checks/ch03.py"),
        (_no_check_test, "06_rpc", "no tests/test_checks_ch06.py"),
        (_no_learner_test, "04_exchanges", "no tests/test_learner_ch04.py"),
        (_no_readme_row, "05_acks", "no row starting '| `05_acks` |' in README.md"),
        (_no_time_to_learn, "00_concepts", "no 'Time to learn' line"),
        (_two_exercises, "07_queue_types", "2 cells tagged 'exercise'"),
        (_no_solution_tag, "01_connection", "no cell tagged 'solution'"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_missing_part_is_named(copy: Path, strip, chapter: str, named: str):
    before = set(chapter_problems(copy))  # empty, unless the real chapters lack a part
    strip(copy)
    after = chapter_problems(copy)
    found = [p for p in after if p.startswith(f"notebooks/{chapter}.ipynb: ") and named in p]
    assert len(found) == 1, after
    assert set(after) - before <= set(found), after  # and nothing else is named


def test_the_old_import_style_is_named(copy: Path):
    def edit(cells: list[dict]) -> None:
        for cell in cells:
            source = _source(cell).replace(
                "from helpers.checks import ch02\n", "from helpers.checks.ch02 import ORDERS\n"
            )
            cell["source"] = source.replace("ch02.check_exercise(", "check_exercise(")

    _edit_cells(copy, "02", edit)
    problems = import_style_problems(copy)
    assert any("02_producer.ipynb: cell" in p and "directly" in p for p in problems), problems
    assert any("does not call ch02.check_exercise" in p for p in problems), problems


# The same for the Chinese edition, on a copy of a built chapter.


def _zh_edit(root: Path, prefix: str, edit: Callable[[list[dict]], None]) -> str:
    [notebook] = (root / "notebooks" / "zh").glob(f"{prefix}_*.ipynb")
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    edit(nb["cells"])
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    return f"notebooks/zh/{notebook.name}"


def _replace_in_markdown(old: str, new: str) -> Callable[[list[dict]], None]:
    def edit(cells: list[dict]) -> None:
        for cell in cells:
            if cell["cell_type"] == "markdown":
                cell["source"] = _source(cell).replace(old, new)

    return edit


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (_replace_in_markdown("学习时间", "所需时间"), "no '学习时间' line"),
        (_replace_in_markdown("## 小结", "## 总结"), "'## Summary' must become '## 小结'"),
        (_replace_in_markdown("## 预备知识", "## 准备"), "no '## 预备知识' section"),
    ],
    ids=["no-time-to-learn", "other-summary-title", "no-prerequisites"],
)
def test_a_missing_part_of_a_chinese_chapter_is_named(copy: Path, edit, named: str):
    if not chinese_chapters(copy):
        pytest.fail("no Chinese chapter built in notebooks/zh/ (run: make translations)")
    prefix = chinese_chapters(copy)[0].name[:2]
    before = set(chinese_problems(copy))
    name = _zh_edit(copy, prefix, edit)
    after = chinese_problems(copy)
    found = [p for p in after if p.startswith(f"{name}: ") and named in p]
    assert found, after
    assert all(p.startswith(f"{name}: ") for p in set(after) - before), after


def test_a_chinese_chapter_without_its_readme_row_is_named(copy: Path):
    if not chinese_chapters(copy):
        pytest.fail("no Chinese chapter built in notebooks/zh/ (run: make translations)")
    stem = chinese_chapters(copy)[0].stem
    readme = copy / "README.zh.md"
    lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
    readme.write_text("".join(x for x in lines if not x.startswith(f"| [`{stem}`]")))
    assert any(
        p.startswith(f"notebooks/zh/{stem}.ipynb: no row") for p in chinese_problems(copy)
    ), chinese_problems(copy)
