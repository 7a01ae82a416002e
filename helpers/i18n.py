"""The helpers' own words in the learner's language: English, or Simplified Chinese.

The Chinese edition's notebooks live in notebooks/zh/, beside a file `.tutorial-language`
holding `zh_CN`. A Jupyter kernel (and nbval, which runs one) starts in the notebook's own
directory, so that file chooses the language of every hint, legend and error sentence the
helpers print there, with no code in the notebook. `TUTORIAL_LANGUAGE` overrides it (a test,
or a learner who wants the other language).

Why gettext-style `_()` over a dict of keys: the English sentence stays in the code where it
is used, readable, and is also the msgid, so a missing translation falls back to it and the
English notebooks' committed outputs never depend on the catalog. The catalog is
locale/zh_CN/LC_MESSAGES/helpers.po, read with polib at first use (no compiled .mo to keep
in step); `scripts/helpers_messages.py` extracts the msgids from the code.

Messages with placeholders use str.format's named fields in the msgid
(`_("There is no queue named {queue!r}").format(queue=queue)`): the translation may put them
in another order, which Chinese sentences need.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

ENGLISH = "en"
CHINESE = "zh_CN"
LANGUAGES = (ENGLISH, CHINESE)
ENV = "TUTORIAL_LANGUAGE"
MARKER = ".tutorial-language"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "helpers"

_ALIASES = {"zh": CHINESE, "zh_cn": CHINESE, "zh-cn": CHINESE, "zh_hans": CHINESE, "en": ENGLISH}


def _normalise(value: str) -> str:
    """"zh_CN", "zh", "zh-CN" -> "zh_CN"; anything unknown -> English (the fallback)."""
    return _ALIASES.get(value.strip().lower(), ENGLISH)


@lru_cache(maxsize=32)
def _from_marker(cwd: str, mtime: float) -> str:
    """The language named by `.tutorial-language` in `cwd` (cached per directory and file
    version, so a call costs one stat)."""
    try:
        return _normalise((Path(cwd) / MARKER).read_text(encoding="utf-8"))
    except OSError:
        return ENGLISH


def language() -> str:
    """"en" or "zh_CN": `TUTORIAL_LANGUAGE` if set, else the `.tutorial-language` file in the
    current directory, else English. Read at every call, so a test can switch it."""
    env = os.environ.get(ENV)
    if env:
        return _normalise(env)
    cwd = os.getcwd()
    try:
        mtime = (Path(cwd) / MARKER).stat().st_mtime
    except OSError:
        return ENGLISH
    return _from_marker(cwd, mtime)


@lru_cache(maxsize=4)
def catalog(lang: str) -> dict[str, str]:
    """msgid -> msgstr of `lang`'s helpers catalog: translated, non-fuzzy entries only, so
    an untranslated or doubtful message falls back to English."""
    if lang == ENGLISH:
        return {}
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    import polib  # only the Chinese edition needs it

    return {
        e.msgid: e.msgstr
        for e in polib.pofile(str(path))
        if e.msgstr and not e.obsolete and "fuzzy" not in e.flags
    }


def _(message: str) -> str:
    """`message` in the learner's language (the English `message` when there is no
    translation). Format its named fields after translating."""
    lang = language()
    if lang == ENGLISH:
        return message
    return catalog(lang).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural English form by `n`, translated. Chinese has one form, so its
    catalog translates each English form on its own."""
    return _(singular if n == 1 else plural)


def chinese() -> bool:
    """Whether the helpers speak Chinese now (the font stack and text widths depend on it)."""
    return language() == CHINESE


def N_(message: str) -> str:  # noqa: N802  gettext's name for "mark only"
    """Mark `message` for the catalog without translating it: for constants defined at import
    time, translated with `_()` where they are used (the language may change after import)."""
    return message
