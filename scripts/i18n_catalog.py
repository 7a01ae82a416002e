"""The translated chapters' core: gettext catalogs kept in step with the English notebooks,
and Chinese notebooks built from them. No broker, no helpers: polib and nbformat only.

The English notebooks are the source. Each chapter has a catalog
`locale/<lang>/LC_MESSAGES/<chapter>.po` with one entry per non-empty markdown cell: msgctxt
is the cell's id (stable when cells move or the text changes), msgid the cell's exact English
source, msgstr its translation. Standard gettext, so any PO editor (Poedit, Lokalize,
Weblate) can open it; polib reads and writes it with wrapwidth=0, so a msgid's lines are
the cell's lines and diffs stay readable.

A translation applies only to the exact English it was made from (as gettext looks entries
up by msgctxt and msgid): an entry that is missing, empty, fuzzy or stale leaves the cell in
English in the built notebook, and `scripts/i18n.py check` names it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import polib

CHAPTER = re.compile(r"\d\d_\w+\.ipynb")
FUZZY = "fuzzy"
WRAP = 0  # never wrap: a msgid keeps the cell's own line breaks
# What a run of the notebook changes; `check` ignores it and `build` keeps it.
EXECUTION_CELL_KEYS = ("outputs", "execution_count")
EXECUTION_CELL_METADATA = ("execution",)
EXECUTION_NOTEBOOK_METADATA = ("widgets", "language_info")
MARKER = ".tutorial-language"  # read by helpers/i18n.py from the kernel's working directory


def edition_dir(root: Path, lang: str) -> Path:
    """notebooks/zh for zh_CN: the folder the learner opens, named by the language alone."""
    return root / "notebooks" / lang.split("_")[0].lower()


def chapters(root: Path, names: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The English chapters, or those whose file name starts with one of `names`
    (`05`, `05_acks`, `05_acks.ipynb`)."""
    found = sorted(p for p in (root / "notebooks").glob("*.ipynb") if CHAPTER.fullmatch(p.name))
    if not names:
        return found
    prefixes = [n.removesuffix(".ipynb") for n in names]
    unknown = [n for n in prefixes if not any(p.name.startswith(n) for p in found)]
    if unknown:
        raise SystemExit(f"no chapter notebooks/{unknown[0]}*.ipynb")
    return [p for p in found if p.name.startswith(tuple(prefixes))]


def catalog_path(root: Path, lang: str, chapter: Path) -> Path:
    return root / "locale" / lang / "LC_MESSAGES" / f"{chapter.stem}.po"


def built_path(root: Path, lang: str, chapter: Path) -> Path:
    return edition_dir(root, lang) / chapter.name


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Written the way Jupyter writes (the English notebooks round-trip byte for byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def markdown_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell id, English source) of every markdown cell with text: the catalog's entries."""
    return [
        (cell.id, cell.source)
        for cell in nb.cells
        if cell.cell_type == "markdown" and cell.source.strip()
    ]


def read_catalog(path: Path, lang: str, chapter: Path) -> polib.POFile:
    """The chapter's catalog, or a new empty one (header only) if it does not exist yet."""
    if path.exists():
        return polib.pofile(str(path), wrapwidth=WRAP)
    catalog = polib.POFile(wrapwidth=WRAP)
    catalog.metadata = {
        "Project-Id-Version": f"rabbitmq-pika-tutorial {chapter.stem}",
        "Language": lang,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return catalog


def write_catalog(catalog: polib.POFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog.wrapwidth = WRAP
    catalog.save(str(path))


@dataclass
class Synced:
    """What `sync` changed in one catalog."""

    added: int = 0
    fuzzy: int = 0
    obsolete: int = 0

    def __str__(self) -> str:
        return f"{self.added} new, {self.fuzzy} marked fuzzy, {self.obsolete} made obsolete"


def sync(catalog: polib.POFile, nb: nbformat.NotebookNode) -> Synced:
    """Bring `catalog` in step with the English notebook, in the notebook's order (msgmerge's
    rules): a new cell gets an empty entry; a cell whose English changed keeps its translation,
    marked fuzzy, with the English it was made from as previous msgid (`#| msgid`); the entry
    of a cell that no longer exists becomes obsolete (`#~`), unless a cell with the same
    English took its place under a new id, which then inherits the translation."""
    changes = Synced()
    live = {e.msgctxt: e for e in catalog if not e.obsolete}
    old = [e for e in catalog if e.obsolete]
    entries = []
    for cell_id, source in markdown_cells(nb):
        entry = live.pop(cell_id, None)
        if entry is None:
            entry = polib.POEntry(msgctxt=cell_id, msgid=source, msgstr="")
            changes.added += 1
        elif entry.msgid != source:
            if entry.msgstr:
                if FUZZY not in entry.flags:  # keep the English the translation was made from
                    entry.previous_msgid = entry.msgid
                    entry.flags.append(FUZZY)
                changes.fuzzy += 1
            entry.msgid = source
        entries.append(entry)
    gone = list(live.values())
    for entry in entries:  # a cell re-created under a new id, same English
        twin = next((g for g in gone + old if g.msgid == entry.msgid and g.msgstr), None)
        if not entry.msgstr and twin is not None:
            entry.msgstr, entry.flags = twin.msgstr, list(twin.flags)
            entry.previous_msgid = twin.previous_msgid
            if twin in gone:
                gone.remove(twin)
    for entry in gone:
        entry.obsolete = True
        changes.obsolete += 1
    current = {e.msgctxt for e in entries}
    catalog[:] = entries + gone + [e for e in old if e.msgctxt not in current]
    return changes


def usable(entry: polib.POEntry | None, source: str) -> bool:
    """A translation is used only for the exact English it was made from, and not fuzzy."""
    return bool(
        entry is not None and entry.msgstr and FUZZY not in entry.flags and entry.msgid == source
    )


def build(
    english: nbformat.NotebookNode,
    catalog: polib.POFile,
    lang: str,
    chapter: Path,
    previous: nbformat.NotebookNode | None = None,
) -> nbformat.NotebookNode:
    """A copy of the English notebook with each markdown cell's text replaced by its
    translation (cells without a usable one stay English). Code, cell ids, tags, outputs,
    widget state and pictures are the English ones; with `previous` (the notebook built and
    executed before), a code cell whose source is unchanged keeps that run's outputs, since
    the Chinese edition's helpers print Chinese."""
    nb = copy.deepcopy(english)
    entries = {e.msgctxt: e for e in catalog if not e.obsolete}
    for cell in nb.cells:
        entry = entries.get(cell.id)
        if cell.cell_type == "markdown" and usable(entry, cell.source):
            cell.source = entry.msgstr
    nb.metadata["tutorial"] = {"language": lang, "source": f"notebooks/{chapter.name}"}
    if previous is not None:
        _keep_outputs(nb, previous)
    return nb


def _keep_outputs(nb: nbformat.NotebookNode, previous: nbformat.NotebookNode) -> None:
    ran = {c.id: c for c in previous.cells if c.cell_type == "code"}
    kept = 0
    for cell in nb.cells:
        old = ran.get(cell.id)
        if cell.cell_type == "code" and old is not None and old.source == cell.source:
            for key in EXECUTION_CELL_KEYS:
                cell[key] = copy.deepcopy(old.get(key, cell[key]))
            for key in EXECUTION_CELL_METADATA:
                cell.metadata.pop(key, None)
                if key in old.metadata:
                    cell.metadata[key] = copy.deepcopy(old.metadata[key])
            kept += 1
    if kept:  # widget views in the kept outputs refer to the previous run's widget state
        for key in EXECUTION_NOTEBOOK_METADATA:
            nb.metadata.pop(key, None)
            if key in previous.metadata:
                nb.metadata[key] = copy.deepcopy(previous.metadata[key])


def _without_execution(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for key in EXECUTION_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            for key in EXECUTION_CELL_KEYS:
                cell.pop(key, None)
            for key in EXECUTION_CELL_METADATA:
                cell.metadata.pop(key, None)
    return nb


def differences(expected: nbformat.NotebookNode, committed: nbformat.NotebookNode) -> list[str]:
    """How a committed notebook differs from what `build` makes, leaving out what running it
    changes (outputs, execution counts and timings, widget state, language_info): one phrase
    per difference, prefixed with "cell <id>: " where it concerns one cell."""
    want, have = _without_execution(expected), _without_execution(committed)
    found = []
    if (want.nbformat, want.nbformat_minor) != (have.nbformat, have.nbformat_minor):
        found.append(f"nbformat {have.nbformat}.{have.nbformat_minor}")
    for key in sorted(set(want.metadata) | set(have.metadata)):
        if want.metadata.get(key) != have.metadata.get(key):
            found.append(f"notebook metadata {key!r}")
    ids = [(c.id, c.cell_type) for c in want.cells]
    ids2 = [(c.id, c.cell_type) for c in have.cells]
    if ids != ids2:
        index = next(
            i for i in range(max(len(ids), len(ids2))) if ids[i : i + 1] != ids2[i : i + 1]
        )
        wanted = "{1} cell {0}".format(*ids[index]) if index < len(ids) else "no cell"
        got = "{1} cell {0}".format(*ids2[index]) if index < len(ids2) else "no cell"
        return [*found, f"cell #{index}: {wanted} expected, {got} found (added, removed or moved)"]
    for cell, cell2 in zip(want.cells, have.cells, strict=True):
        if cell.source != cell2.source:
            what = "code" if cell.cell_type == "code" else "markdown text"
            found.append(f"cell {cell.id}: {what} differs")
        if cell.metadata != cell2.metadata:
            found.append(f"cell {cell.id}: cell metadata differs")
        if cell.get("attachments") != cell2.get("attachments"):
            found.append(f"cell {cell.id}: attachments differ")
    return found
