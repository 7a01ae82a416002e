"""Keep the helpers' Chinese catalog in step with the code.

    .venv/bin/python scripts/helpers_messages.py          # update the helpers.po catalog
    .venv/bin/python scripts/helpers_messages.py --check   # exit 1 if it is not up to date

It reads every `_("...")`, `N_("...")` and `ngettext("...", "...", n)` call in helpers/ with
`ast` (so a msgid is exactly the string the code passes at run time, implicit concatenation
included) and rewrites the catalog: a msgid already there keeps its translation; a new one
whose English is close to an entry the code no longer uses takes that translation marked
fuzzy (with the old English as `#| msgid`), so a translator sees what changed; other new ones
come in empty; entries no code uses any more are kept as obsolete (`#~`) until a translator
drops them (`--drop-obsolete`). tests/unit/test_helpers_i18n.py fails while any entry is
empty, fuzzy or obsolete.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "helpers"
CATALOG = ROOT / "locale" / "zh_CN" / "LC_MESSAGES" / "helpers.po"
MARKERS = {"_": 1, "N_": 1, "ngettext": 2}  # function -> how many leading msgid arguments
FUZZY_CUTOFF = 0.8  # difflib ratio above which a changed English keeps its old translation
HEADER = {
    "Project-Id-Version": "rabbitmq-pika-tutorial helpers",
    "Language": "zh_CN",
    "MIME-Version": "1.0",
    "Content-Type": "text/plain; charset=UTF-8",
    "Content-Transfer-Encoding": "8bit",
    "Plural-Forms": "nplurals=1; plural=0;",
}


@dataclass
class Message:
    msgid: str
    places: list[str] = field(default_factory=list)  # "helpers/checks/ch00.py", no line:
    # line numbers would make the catalog stale at every edit of a helper


def extract(root: Path = SOURCES) -> dict[str, Message]:
    """msgid -> where the code uses it, in the order of first use (file by file)."""
    found: dict[str, Message] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        for call in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
            name = call.func.id if isinstance(call.func, ast.Name) else None
            for arg in call.args[: MARKERS.get(name or "", 0)]:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    continue  # _(variable): the constant was marked with N_() where it is made
                if not arg.value:
                    continue
                where = str(path.relative_to(ROOT))
                places = found.setdefault(arg.value, Message(arg.value)).places
                if where not in places:
                    places.append(where)
    return found


def is_brace_format(text: str) -> bool:
    """Whether `text` has str.format fields (then the entry carries python-brace-format)."""
    import string

    try:
        return any(name is not None for _lit, name, _spec, _conv in string.Formatter().parse(text))
    except ValueError:
        return False


def merge(messages: dict[str, Message], old: polib.POFile | None) -> polib.POFile:
    """The new catalog: `messages` in order, translations carried over from `old`."""
    po = polib.POFile(wrapwidth=100)
    po.metadata = dict(old.metadata) if old is not None else {}
    po.metadata.update(HEADER)
    previous = {e.msgid: e for e in old} if old is not None else {}
    previous.update({e.msgid: e for e in (old.obsolete_entries() if old is not None else [])})
    unused = {k: e for k, e in previous.items() if k not in messages and e.msgstr}
    for msgid, message in messages.items():
        entry = polib.POEntry(msgid=msgid, msgstr="", occurrences=[(p, "") for p in message.places])
        if is_brace_format(msgid):
            entry.flags.append("python-brace-format")
        before = previous.get(msgid)
        if before is not None and not before.obsolete:
            entry.msgstr = before.msgstr
            if "fuzzy" in before.flags:
                entry.flags.append("fuzzy")
                entry.previous_msgid = before.previous_msgid
            entry.tcomment = before.tcomment
        elif before is not None:  # obsolete, and used again
            entry.msgstr = before.msgstr
        else:
            close = difflib.get_close_matches(msgid, list(unused), n=1, cutoff=FUZZY_CUTOFF)
            if close:
                entry.msgstr = unused.pop(close[0]).msgstr
                entry.flags.append("fuzzy")
                entry.previous_msgid = close[0]
        po.append(entry)
    for msgid, before in previous.items():
        if msgid not in messages and msgid in unused and before.msgstr:
            po.append(
                polib.POEntry(msgid=msgid, msgstr=before.msgstr, obsolete=True, flags=[])
            )
    return po


def render(po: polib.POFile) -> str:
    header = "# The helpers' messages in Simplified Chinese (see helpers/i18n.py).\n"
    header += "# Made and updated by scripts/helpers_messages.py; words from docs/glossary.zh.md.\n"
    po.header = header.rstrip("\n").replace("# ", "", 1).replace("\n# ", "\n")
    return str(po) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the catalog is stale")
    parser.add_argument("--drop-obsolete", action="store_true", help="forget unused entries")
    args = parser.parse_args(argv)
    old = polib.pofile(str(CATALOG), wrapwidth=100) if CATALOG.exists() else None
    po = merge(extract(), old)
    if args.drop_obsolete:
        for entry in po.obsolete_entries():
            po.remove(entry)
    text = render(po)
    current = CATALOG.read_text(encoding="utf-8") if CATALOG.exists() else ""
    if args.check:
        if text != current:
            print(f"{CATALOG.relative_to(ROOT)} is stale: run scripts/helpers_messages.py")
            return 1
        return 0
    CATALOG.parent.mkdir(parents=True, exist_ok=True)
    CATALOG.write_text(text, encoding="utf-8")
    untranslated = len(po.untranslated_entries())
    fuzzy = len(po.fuzzy_entries())
    obsolete = len(po.obsolete_entries())
    print(
        f"{CATALOG.relative_to(ROOT)}: {len(po) - obsolete} messages, {untranslated} "
        f"untranslated, {fuzzy} fuzzy, {obsolete} obsolete"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
