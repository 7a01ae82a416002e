"""One edition's sources for Sphinx, laid out as in the repository (scripts/site_build.py).

site/_build/src/<lang>/ gets index.md (the README), docs/*.md, notebooks/*.ipynb, examples/
and helpers/demo/ (the programs the chapters link to, offered as downloads). The Chinese
edition takes README.zh.md, docs/*.zh.md and notebooks/zh/*.ipynb, and the English page
where no translation exists (the error index).

The repository's files stay as GitHub shows them; the staged copies are changed so that
Sphinx can check every link (`-W -n`):

- every relative link is resolved against the file's place in the repository and pointed
  at the staged page (`notebooks/zh/04_exchanges.ipynb` -> `notebooks/04_exchanges.ipynb`,
  `glossary.zh.md` -> `glossary.md`); a link to another edition's page (README.zh.md from
  the English README, instructor-guide.md from the Chinese guide) goes to that edition;
  a link to anything the site does not hold (a directory, docs/authoring.md) keeps its
  text and loses its link, and is listed;
- an image from another host (the README's Binder badge) becomes its alt text, so no page
  requests anything from another host;
- `<a id="x"></a>` before a heading (docs/errors.md) becomes a MyST target `(x)=`, so
  `[...](#x)` is checked.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

CHAPTER = re.compile(r"\d\d_\w+\.ipynb")
LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
EXTERNAL_IMAGE = re.compile(r"!\[([^\]]*)\]\(https?://[^)]*\)")
HTML_ANCHOR = re.compile(r'^<a id="([^"]+)"></a>\s*$', re.MULTILINE)
# The pages beside the chapters, in navigation order (those that exist in the repository).
PAGES = ("docs/instructor-guide.md", "docs/errors.md", "docs/glossary.md", "examples/README.md")
CAPTIONS = {
    "en": ("Chapters", "For teachers, and when something fails"),
    "zh_CN": ("章节", "教师指南、错误索引与术语表"),
}


def chapters(directory: Path) -> list[str]:
    """The chapter notebooks' file names in `directory`, in chapter order."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if CHAPTER.fullmatch(p.name))


def zh_name(rel: str) -> str:
    """docs/x.md -> docs/x.zh.md; README.md -> README.zh.md; notebooks/x -> notebooks/zh/x."""
    if rel.startswith("notebooks/"):
        return "notebooks/zh/" + rel.removeprefix("notebooks/")
    return rel.removesuffix(".md") + ".zh.md"


@dataclass
class Edition:
    """Which repository file becomes which staged file, for one language."""

    source: Path
    lang: str
    languages: tuple[str, ...] = ("en",)  # the editions built beside it
    staged: dict[str, str] = field(default_factory=dict)  # repository path -> staged path
    others: dict[str, dict[str, str]] = field(default_factory=dict)  # the same, per edition
    dropped: list[str] = field(default_factory=list)  # links kept as text only

    def __post_init__(self) -> None:
        self.staged = self._layout(self.lang)
        self.others = {lang: self._layout(lang) for lang in self.languages if lang != self.lang}

    def _layout(self, lang: str) -> dict[str, str]:
        out: dict[str, str] = {}

        def add(rel: str, staged: str) -> None:
            chinese = zh_name(rel)
            if lang == "zh_CN" and (self.source / chinese).exists():
                out[chinese] = staged
            elif (self.source / rel).exists():
                out[rel] = staged

        if lang == "zh_CN":
            for name in chapters(self.source / "notebooks" / "zh"):
                out[f"notebooks/zh/{name}"] = f"notebooks/{name}"
        else:
            for name in chapters(self.source / "notebooks"):
                out[f"notebooks/{name}"] = f"notebooks/{name}"
        add("README.md", "index.md")
        for page in PAGES:
            add(page, page)
        for program in [
            *self.source.glob("examples/*.py"),
            *self.source.glob("helpers/demo/ch*.py"),
        ]:
            rel = str(program.relative_to(self.source))
            out[rel] = rel
        return out

    def chapters(self) -> list[str]:
        return [s.removesuffix(".ipynb") for s in self.staged.values() if s.endswith(".ipynb")]

    def pages(self) -> list[str]:
        return [p.removesuffix(".md") for p in PAGES if p in self.staged.values()]

    def markdown(self, text: str, rel: str) -> str:
        """`text` of the repository file `rel`, ready for its staged place."""
        text = EXTERNAL_IMAGE.sub(r"\1", text)
        text = HTML_ANCHOR.sub(r"(\1)=", text)
        return LINK.sub(lambda m: self._link(m, rel), text)

    def _link(self, match: re.Match[str], rel: str) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
            return match.group(0)  # another site, mailto:, or this page
        path, hashmark, fragment = target.partition("#")
        here = posixpath.dirname(rel)
        resolved = posixpath.normpath(posixpath.join(here, path)).rstrip("/")
        staged_here = posixpath.dirname(self.staged[rel])
        if resolved in self.staged:
            new = posixpath.relpath(self.staged[resolved], staged_here or ".")
            return f"[{label}]({new}{hashmark}{fragment})"
        for lang, layout in self.others.items():
            if resolved in layout:  # a page of another edition (README.zh.md, from English)
                doc = layout[resolved].rsplit(".", 1)[0]
                up = "../" * (self.staged[rel].count("/") + 1)
                return f'<a href="{up}{lang}/{doc}.html{hashmark}{fragment}">{label}</a>'
        self.dropped.append(f"{rel}: {target}")
        return label

    def notebook(self, raw: str, rel: str) -> str:
        """The notebook's JSON with its markdown cells' links staged (outputs untouched)."""
        nb = json.loads(raw)
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                staged = self.markdown(text, rel)
                if staged != text:
                    cell["source"] = staged
        return json.dumps(nb, ensure_ascii=False, indent=1)


def toctree(caption: str, entries: list[str]) -> str:
    body = "\n".join(entries)
    return f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{body}\n```\n"


def write_if_changed(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)


def stage(source: Path, lang: str, src: Path, languages: tuple[str, ...] = ("en",)) -> Edition:
    """Write the edition into `src` (what an earlier staging left there and this one does
    not write is removed); returns it, with the links it dropped."""
    edition = Edition(source, lang, languages)
    written: set[Path] = set()
    for rel, staged in edition.staged.items():
        raw = (source / rel).read_bytes()
        if staged.endswith(".ipynb"):
            raw = edition.notebook(raw.decode("utf-8"), rel).encode()
        elif staged.endswith(".md"):
            text = edition.markdown(raw.decode("utf-8"), rel)
            if staged == "index.md":
                chapters_caption, more_caption = CAPTIONS.get(lang, CAPTIONS["en"])
                text += toctree(chapters_caption, edition.chapters())
                text += toctree(more_caption, edition.pages())
            raw = text.encode()
        write_if_changed(src / staged, raw)
        written.add(src / staged)
    for path in sorted(src.rglob("*"), reverse=True):
        if path.is_file() and path not in written:
            path.unlink()
    return edition
