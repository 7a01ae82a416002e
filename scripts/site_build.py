"""`make site`: the static site of the executed chapters, in site/_build/html/<lang>/.

Nothing is executed: Sphinx + myst-nb (site/conf.py) render the committed notebooks with
their outputs, each diagram as the static picture saved with it (no widget manager, no
JavaScript of the site's own). Each edition is staged first in site/_build/src/<lang>/
(scripts/site_stage.py: the README as index.md, docs/, notebooks/, the programs), with its
links pointed at the staged pages.

English is always built, at /en/. The Chinese edition is built at /zh_CN/ when
notebooks/zh/ holds every chapter (README.zh.md and docs/*.zh.md are used where they exist,
the English page otherwise). site/_build/html/index.html sends a visitor to en/.

Usage: .venv/bin/python scripts/site_build.py [--languages en|en,zh_CN|auto]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from site_stage import chapters, stage

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "site"  # conf.py, _ext, _templates, _static: always this checkout's
# Where the chapters and pages come from and where the build goes: a test points both
# elsewhere (a copy with a Chinese edition, a temporary directory); see main().
SOURCE = REPO
BUILD = SITE / "_build"


def languages_available() -> list[str]:
    """English, and Chinese once notebooks/zh/ has every English chapter."""
    english = chapters(SOURCE / "notebooks")
    chinese = chapters(SOURCE / "notebooks" / "zh")
    return ["en", "zh_CN"] if english and set(english) <= set(chinese) else ["en"]


def sphinx(lang: str, src: Path, languages: list[str]) -> None:
    """One edition, warnings as errors (-W), missing references reported (-n), every page
    read again (-E: a changed conf.py value such as nb_ipywidgets_js, or a changed
    extension, does not invalidate Sphinx's saved environment, and a full build takes
    seconds)."""
    env = {**os.environ, "SITE_LANGUAGES": ",".join(languages)}
    env.setdefault("SITE_REPOSITORY", github_repository())
    cmd = [
        sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-n", "-q",
        "-c", str(SITE), "-D", f"language={lang}",
        "-d", str(BUILD / "doctrees" / lang), str(src), str(BUILD / "html" / lang),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, cwd=REPO)


def github_repository() -> str:
    """owner/name of the `origin` remote on GitHub, for the chapters' Binder links; ""."""
    try:
        url = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            capture_output=True, text=True, cwd=REPO, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return ""
    found = re.search(r"github\.com[:/]([\w.-]+/[\w.-]+?)(?:\.git)?$", url)
    return found.group(1) if found else ""


REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Learn RabbitMQ with pika</title>
<meta http-equiv="refresh" content="0; url=en/index.html">
<link rel="canonical" href="en/index.html">
</head><body><p><a href="en/index.html">Learn RabbitMQ with pika</a>{others}</p></body></html>
"""


def main() -> int:
    global SOURCE, BUILD  # one build per process: the paths the functions above stage into
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="auto", help="en, en,zh_CN or auto (default)")
    parser.add_argument("--source", type=Path, default=REPO, help="a checkout (default: this)")
    parser.add_argument("--build-dir", type=Path, default=BUILD, help="default: site/_build")
    args = parser.parse_args()
    SOURCE, BUILD = args.source.resolve(), args.build_dir.resolve()
    HTML = BUILD / "html"
    languages = languages_available() if args.languages == "auto" else args.languages.split(",")
    t0 = time.monotonic()
    editions = {}
    for lang in languages:  # all staged before any is built: the language switch looks
        editions[lang] = stage(SOURCE, lang, BUILD / "src" / lang, tuple(languages))
        for link in editions[lang].dropped:
            print(f"site: {lang}: link kept as text, its target is not part of the site: {link}")
    for lang in languages:
        t = time.monotonic()
        # Every page is written anew (-E), but Sphinx leaves what an earlier build wrote and
        # this one does not (a page or a static file since removed): start from nothing.
        shutil.rmtree(HTML / lang, ignore_errors=True)
        sphinx(lang, BUILD / "src" / lang, languages)
        print(f"site: {lang} built in {time.monotonic() - t:.1f} s")
    for stale in HTML.iterdir() if HTML.is_dir() else []:
        if stale.is_dir() and stale.name not in languages and not stale.name.startswith("."):
            shutil.rmtree(stale)  # an edition no longer built
    others = "".join(f' · <a href="{lang}/index.html">{lang}</a>' for lang in languages[1:])
    (HTML / "index.html").write_text(REDIRECT.format(others=others), encoding="utf-8")
    size = sum(p.stat().st_size for p in HTML.rglob("*") if p.is_file())
    print(
        f"site: {', '.join(languages)} in {HTML}/ "
        f"({size / 1e6:.1f} MB, {time.monotonic() - t0:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
