"""Sphinx configuration of the published site (`make site`, scripts/site_build.py).

One configuration for every language: scripts/site_build.py stages each language's sources
(README as the landing page, the executed chapters, the instructor guide, the error index)
in site/_build/src/<lang>/ and runs `sphinx-build -c site` on it with `-D language=<lang>`.
Nothing is executed here (nb_execution_mode "off"): the pages show the committed outputs,
each diagram as the static picture saved with its own output, so a reader needs no broker
and the page needs no JavaScript to show it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
sys.path.insert(0, str(SITE / "_ext"))

project = "Learn RabbitMQ with pika"
author = "the tutorial's authors"
copyright = "the tutorial's authors"
language = "en"  # the build passes -D language=zh_CN for the Chinese edition

extensions = ["myst_nb", "tutorial_site"]
templates_path = [str(SITE / "_templates")]
html_static_path = [str(SITE / "_static")]
html_css_files = ["site.css"]
exclude_patterns = ["**/.ipynb_checkpoints"]
html_title = "Learn RabbitMQ with pika"
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico, a 404
html_last_updated_fmt = None
html_copy_source = True  # the theme's download button offers the .ipynb from the site itself

# Chapters are read, never run: their committed outputs are the claim they make.
nb_execution_mode = "off"
# No widget manager, no require.js: every widget output in the chapters carries a static
# picture saved when its cell ran, and site/_ext/tutorial_site.py shows that picture (the
# saved widget state is the chapter's END state, so a widget would show later sections'
# counts). Empty, myst-nb adds no script tag for the manager; the extension also drops the
# saved-state script, and fails the build on a widget output with no picture.
nb_ipywidgets_js: dict[str, dict[str, str]] = {}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = [
    # Pygments' IPython traceback lexer stops at the full-width colon of a Chinese hint under
    # a traceback (helpers.explain); Sphinx then highlights it in relaxed mode, which is fine.
    "misc.highlighting_failure",
]

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    # pydata-sphinx-theme looks nothing up online with these off
    "check_switcher": False,
}
# PST logs a console error on pages whose mode is unset; the reader's system choice wins.
html_context = {"default_mode": "auto"}
html_sidebars = {
    "**": [
        "navbar-logo.html",
        "lang-switch.html",
        "search-button-field.html",
        "sbt-sidebar-nav.html",
    ]
}

# The languages this build links to (scripts/site_build.py sets it): "en" or "en,zh_CN".
site_languages = os.environ.get("SITE_LANGUAGES", "en").split(",")
# owner/name on GitHub, for each chapter's Binder link (scripts/site_build.py reads it from
# the git remote, or SITE_REPOSITORY); without it the link points to the landing page's
# Binder section.
site_repository = os.environ.get("SITE_REPOSITORY", "")
