"""Translations of the chapters: extract, build and check (polib + nbformat, no broker).

    .venv/bin/python scripts/i18n.py extract [--lang zh_CN] [chapters...]
    .venv/bin/python scripts/i18n.py build   [--lang zh_CN] [--no-keep-outputs] [chapters...]
    .venv/bin/python scripts/i18n.py check   [--lang zh_CN] [chapters...]

`extract` brings locale/<lang>/LC_MESSAGES/NN_name.po in step with notebooks/NN_name.ipynb
(new cells get empty entries, changed ones turn fuzzy with the old English kept as
`#| msgid`, removed ones obsolete). `build` writes notebooks/<lang>/NN_name.ipynb (zh for
zh_CN): the English notebook with its markdown translated, keeping the outputs of an earlier
executed build where the code is unchanged, and the marker file `.tutorial-language` that
tells the helpers, from the kernel's working directory, to speak the edition's language.
`check` prints one line per problem and exits 1 if there is any: a translation missing,
fuzzy, stale (the English changed since it was translated) or inconsistent with its English
(code, links, headings), a catalog entry for a cell that is gone, and a committed notebook
that differs from what `build` makes (outputs aside: the Chinese notebooks are executed).
`make translations` runs extract and build; `make test` runs check. Chapters are named by
prefix: `05`, `05_acks`. `build` skips a chapter with no translated cell yet (it would be the
English notebook again); in a partly translated one, untranslated cells stay English.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import i18n_catalog as cat
import i18n_markdown

ROOT = Path(__file__).resolve().parent.parent
LANG = "zh_CN"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def extract(root: Path, lang: str, names: list[str]) -> int:
    for chapter in cat.chapters(root, names):
        path = cat.catalog_path(root, lang, chapter)
        catalog = cat.read_catalog(path, lang, chapter)
        before = path.read_text(encoding="utf-8") if path.exists() else None
        changes = cat.sync(catalog, cat.read_notebook(chapter))
        if str(catalog) + "\n" != before:  # polib's save() ends the file with a newline
            cat.write_catalog(catalog, path)
        print(f"{_rel(path, root)}: {changes}")
    return 0


def build(root: Path, lang: str, names: list[str], keep_outputs: bool = True) -> int:
    for chapter in cat.chapters(root, names):
        english = cat.read_notebook(chapter)
        catalog = cat.read_catalog(cat.catalog_path(root, lang, chapter), lang, chapter)
        cells = cat.markdown_cells(english)
        entries = {e.msgctxt: e for e in catalog if not e.obsolete}
        done = sum(cat.usable(entries.get(i), s) for i, s in cells)
        target = cat.built_path(root, lang, chapter)
        if not done:
            print(f"{_rel(target, root)}: skipped, nothing translated yet")
            continue
        previous = cat.read_notebook(target) if keep_outputs and target.exists() else None
        cat.write_notebook(cat.build(english, catalog, lang, chapter, previous), target)
        marker = target.parent / cat.MARKER
        if not marker.exists() or marker.read_text(encoding="utf-8").strip() != lang:
            marker.write_text(lang + "\n", encoding="utf-8")
        left = f", {len(cells) - done} cells still in English" if done < len(cells) else ""
        print(f"{_rel(target, root)}: {done}/{len(cells)} markdown cells translated{left}")
    return 0


def catalog_problems(root: Path, lang: str, chapter: Path) -> list[str]:
    """The catalog against the English notebook as it is now (no extract needed first)."""
    english = cat.read_notebook(chapter)
    path = cat.catalog_path(root, lang, chapter)
    if not path.exists():
        return [f"no catalog {_rel(path, root)} (run: make translations)"]
    catalog = cat.read_catalog(path, lang, chapter)
    entries = {e.msgctxt: e for e in catalog if not e.obsolete}
    found = []
    cells = cat.markdown_cells(english)
    for cell_id, source in cells:
        entry = entries.get(cell_id)
        if entry is None or not entry.msgstr:
            found.append(f"cell {cell_id}: translation missing")
            continue
        if cat.FUZZY in entry.flags:
            found.append(
                f"cell {cell_id}: translation fuzzy (the English changed: update it against "
                f"the previous msgid, then remove the fuzzy flag)"
            )
        elif entry.msgid != source:
            found.append(
                f"cell {cell_id}: translation stale (English changed since it was translated;"
                f" run make translations, then update it)"
            )
        found += [f"cell {cell_id}: {p}" for p in i18n_markdown.problems(source, entry.msgstr)]
    current = {cell_id for cell_id, _ in cells}
    found += [
        f"cell {e.msgctxt}: catalog entry for a cell that no longer exists (run make translations)"
        for e in entries.values()
        if e.msgctxt not in current
    ]
    return found


def built_problems(root: Path, lang: str, chapter: Path) -> list[str]:
    """The committed notebook against what `build` makes now, outputs aside."""
    target = cat.built_path(root, lang, chapter)
    if not target.exists():
        return ["not built (run: make translations)"]
    english = cat.read_notebook(chapter)
    catalog = cat.read_catalog(cat.catalog_path(root, lang, chapter), lang, chapter)
    expected = cat.build(english, catalog, lang, chapter)
    found = []
    for difference in cat.differences(expected, cat.read_notebook(target)):
        cell, what = ("", difference)
        if difference.startswith("cell "):
            cell, what = difference.split(": ", 1)
        where = f"{cell}: " if cell else ""
        found.append(f"{where}built notebook differs: {what} (run: make translations)")
    marker = target.parent / cat.MARKER
    if not marker.exists() or marker.read_text(encoding="utf-8").strip() != lang:
        found.append(f"{_rel(marker, root)} must hold {lang!r} (run: make translations)")
    return found


def problems(root: Path, lang: str, names: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every problem, one line each, starting with the Chinese notebook's path."""
    lines = []
    for chapter in cat.chapters(root, list(names)):
        name = _rel(cat.built_path(root, lang, chapter), root)
        for problem in catalog_problems(root, lang, chapter) + built_problems(root, lang, chapter):
            # "<notebook> cell <id>: <problem>" or "<notebook>: <problem>"
            lines.append(f"{name}{'' if problem.startswith('cell ') else ':'} {problem}")
    return lines


def check(root: Path, lang: str, names: list[str]) -> int:
    found = problems(root, lang, names)
    for line in found:
        print(line)
    count = len(cat.chapters(root, names))
    print(f"translations ({lang}): {count} chapters, {len(found)} problems", file=sys.stderr)
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("extract", "build", "check"))
    parser.add_argument("chapters", nargs="*", help="chapter prefixes (05, 05_acks); all if none")
    parser.add_argument("--lang", default=LANG, help="catalog language (default: %(default)s)")
    parser.add_argument(
        "--keep-outputs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build: keep the outputs of an executed notebook where the code is unchanged",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests
    args = parser.parse_intermixed_args(argv)
    root = args.root.resolve()
    if args.command == "extract":
        return extract(root, args.lang, args.chapters)
    if args.command == "build":
        return build(root, args.lang, args.chapters, args.keep_outputs)
    return check(root, args.lang, args.chapters)


if __name__ == "__main__":
    sys.exit(main())
