"""What the site adds to Sphinx + myst-nb: each output's own picture, chapter headers, languages.

- **Static pictures, no widget manager.** A diagram's output holds the widget view and the
  static SVG (`text/html`) drawn when that cell ran. The widget would be drawn from the
  notebook's saved widget state, which is the state at the END of the chapter (one model,
  shown in several cells, updated by later cells), so an early section would show counts
  from later ones; the SVG is that section's own picture. So the widget view is dropped
  from every output that has a static picture (`text/html` or an image), publish panels
  included (their `text/html` is a note: a form cannot publish without a kernel), and a
  page left with no widget view loses myst-nb's saved-state script too (site/conf.py loads
  no widget manager). A widget view with no static picture fails the build (a warning
  under -W): the site could not draw it.
- **Chapter header**: "Time to learn" and where to run the chapter, under its title.
- **Language switch**: links to the same page in the other editions built beside this one.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.search.zh import SearchChinese
from sphinx.util import logging as sphinx_logging

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LOGGER = sphinx_logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
LAB_URL = "http://127.0.0.1:8888/lab/tree/"  # `make lab` serves notebooks/ there
TIME_TO_LEARN = re.compile(r"Time to learn: about (\d+) minutes")

# The words the site itself adds, per edition (the chapters bring their own).
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "time": "Time to learn: about {minutes} minutes.",
        "run": "Run this chapter:",
        "lab": "in JupyterLab",
        "lab_hint": "after make lab",
        "binder": "on Binder",
        "binder_hint": "see the landing page",
        "download": "download the notebook",
        "language": "Language",
    },
    "zh_CN": {
        "time": "学习时间：约 {minutes} 分钟。",
        "run": "运行本章：",
        "lab": "在 JupyterLab 中",
        "lab_hint": "先运行 make lab",
        "binder": "在 Binder 上",
        "binder_hint": "见首页",
        "download": "下载 notebook",
        "language": "语言",
    },
}
LANGUAGE_NAMES = {"en": "English", "zh_CN": "简体中文"}


def words(app: Sphinx) -> dict[str, str]:
    """The site's words in this build's language (English where it has none)."""
    return WORDS.get(app.config.language or "en", WORDS["en"])


def static_pictures(app: Sphinx, doctree: nodes.document) -> None:
    """Each output's own static picture instead of its widget view; without widget views
    left, the page gets no saved widget state (nor the manager's scripts) from myst-nb.

    Runs on `doctree-read`, after myst-nb has parsed the notebook and noted the page's
    scripts in the environment, before anything is written.
    """
    needs_widgets = False
    for bundle in list(doctree.findall(nodes.container)):
        if bundle.get("nb_element") != "mime_bundle":
            continue
        by_type = {child.get("mime_type"): child for child in bundle.children}
        if WIDGET_VIEW not in by_type:
            continue
        if any(t == "text/html" or str(t).startswith("image/") for t in by_type):
            bundle.remove(by_type[WIDGET_VIEW])
        else:
            needs_widgets = True
            LOGGER.warning(
                "a widget output with no static picture (text/html or an image): the site "
                "loads no widget manager, so it would show nothing",
                location=bundle,
            )
    if not needs_widgets:
        js_files = getattr(app.env, "nb_metadata", {}).get(app.env.docname, {}).get("js_files")
        for key in [k for k in js_files or {} if k.startswith("ipywidgets_")]:
            del js_files[key]  # "ipywidgets_state" and the manager's "ipywidgets_<n>"


def chapter_header(app: Sphinx, doctree: nodes.document) -> None:
    """Under a chapter's title: its time to learn and where to run it."""
    docname = app.env.docname
    if not re.fullmatch(r"notebooks/\d\d_\w+", docname):
        return
    name = docname.split("/", 1)[1]
    w = words(app)
    parts: list[str] = []
    minutes = _minutes(name)
    if minutes:
        parts.append(f'<span class="time-to-learn">{w["time"].format(minutes=minutes)}</span>')
    lab_path = ("zh/" if app.config.language == "zh_CN" else "") + name + ".ipynb"
    links = [
        f'<a class="launch-lab" href="{LAB_URL}{quote(lab_path)}">{w["lab"]}</a> '
        f'<span class="hint">({w["lab_hint"]})</span>'
    ]
    repo = app.config.site_repository
    nb_path = ("notebooks/zh/" if app.config.language == "zh_CN" else "notebooks/") + name
    if repo:
        binder = f"https://mybinder.org/v2/gh/{quote(repo)}/HEAD?urlpath=" + quote(
            f"lab/tree/{nb_path}.ipynb", safe=""
        )
        links.append(f'<a class="launch-binder" href="{binder}">{w["binder"]}</a>')
    else:
        links.append(
            f'<a class="launch-binder" href="../index.html">{w["binder"]}</a> '
            f'<span class="hint">({w["binder_hint"]})</span>'
        )
    links.append(
        f'<a class="download-notebook" href="../_sources/{docname}.ipynb">{w["download"]}</a>'
    )
    parts.append(f'<span class="launch">{w["run"]} ' + " · ".join(links) + "</span>")
    banner = nodes.raw(
        "", '<div class="chapter-header">' + "<br/>".join(parts) + "</div>", format="html"
    )
    for section in doctree.findall(nodes.section):
        title = next(iter(section.findall(nodes.title)), None)
        if title is not None:
            section.insert(section.index(title) + 1, banner)
            return


def _minutes(name: str) -> str | None:
    """The chapter's "Time to learn" from the English notebook (the Chinese edition has the
    same chapters and the same timings, said in other words)."""
    path = REPO / "notebooks" / f"{name}.ipynb"
    if not path.exists():
        return None
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            found = TIME_TO_LEARN.search("".join(cell["source"]))
            if found:
                return found.group(1)
    return None


def language_links(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """`site_language_links` for _templates/lang-switch.html: this page in every edition,
    or that edition's landing page where it has no such page (the glossary is Chinese only).

    scripts/site_build.py stages every edition in site/_build/src/<lang>/ before it builds
    any, so the staged sources say which pages the other editions have.
    """
    here = app.config.language or "en"
    up = "../" * (pagename.count("/") + 1)  # from this page to the directory of the editions
    staged = Path(app.srcdir).parent
    links = []
    for code in app.config.site_languages:
        src = staged / code
        has_page = doctree is None or any(
            (src / f"{pagename}{suffix}").exists() for suffix in (".md", ".ipynb")
        )
        target = pagename if code == here or has_page else "index"
        links.append(
            {
                "code": code,
                "name": LANGUAGE_NAMES.get(code, code),
                "href": f"{up}{code}/{target}.html",
                "current": code == here,
            }
        )
    context["site_language_label"] = words(app)["language"]
    context["site_language_links"] = links


class SearchChineseWithItsStemmer(SearchChinese):
    """Chinese search whose page script names the stemmer it ships.

    Sphinx 9.0.x writes `window.Stemmer = ChineseStemmer;` into language_data.js but ships
    the English stemmer for Chinese, so every page of the Chinese edition throws a
    ReferenceError and search finds nothing (sphinx-doc/sphinx#14229, fixed upstream by
    #14416, not yet released in 9.0.4). The class name is taken from `language_name`.
    """

    language_name = "English"


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("site_languages", ["en"], "html")
    app.add_config_value("site_repository", "", "html")
    app.add_search_language(SearchChineseWithItsStemmer)
    logging.getLogger("jieba").setLevel(logging.WARNING)  # its dictionary-loading chatter
    app.connect("doctree-read", static_pictures)
    app.connect("doctree-read", chapter_header)
    app.connect("html-page-context", language_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
