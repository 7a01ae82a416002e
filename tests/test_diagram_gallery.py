"""The flow diagram's drawing, measured in Chromium on a gallery of real-shaped pictures.

Each picture of tests/gallery.py is placed and drawn (`render_picture`), loaded into Debian's
headless Chromium, and measured with the browser's own text layout (tests/diagram_checks.py):
no two texts over each other, nothing out of its box, every edge label nearer its own edge
than any other and with no stroke through it, caption and legend at body-text size. A PNG of
each is kept in test-artifacts/gallery/ (git-ignored) for a human look.

That the checks can fail is shown on deliberately broken drawings of a gallery picture: two
labels on one spot, a name too long for its box, a label moved beside another edge, a label
on another edge's stroke, a caption in small print. On the former drawing (`render_svg` of
the recorded broker runs) every check found something: counts on their own strokes and
over each other, consumer tags out of their boxes, an 11 px caption.

No skip: if Chromium is missing this fails and says how to install it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from diagram_checks import (
    CHROMIUM,
    CHROMIUM_ARGS,
    measure,
    misattributed,
    on_strokes,
    overflows,
    overlaps,
    problems,
    small_print,
)
from gallery import GALLERY, ch04

from helpers.view.drawing import draw, render_picture
from helpers.view.layout import Placement, place
from helpers.view.text_fit import Fitted

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "gallery"


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ensure_chromium.sh`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


@pytest.mark.parametrize("name", list(GALLERY))
def test_the_gallery_reads_well(page, name):
    picture = GALLERY[name]()
    html = render_picture(picture, animate=False)
    m = measure(page, html)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("div.flowdiagram").screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert len(m["boxes"]) == len(picture.nodes), "every node is drawn"
    assert len(m["edges"]) == len(picture.edges), "every edge is drawn"
    found = problems(m)
    assert not found, f"{name}: " + "; ".join(f"{k}: {v[:6]}" for k, v in found.items())


@pytest.mark.parametrize("name", [n for n in GALLERY if GALLERY[n]().dots])
def test_dots_move_along_their_edges(name):
    picture = GALLERY[name]()
    html = render_picture(picture, animate=True)
    svg = ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    ns = "{http://www.w3.org/2000/svg}"
    dots = [c for c in svg.iter(f"{ns}circle") if "dot" in c.get("class", "")]
    assert len(dots) == len(picture.dots)
    for dot, circle in zip(picture.dots, dots, strict=True):
        motion = circle.find(f"{ns}animateMotion")
        assert motion.get("begin") == f"{-dot.age:.2f}s", "begins as far back as it is old"
        assert motion.get("path").count("M") == 1, "one path along its edges, no jumps"
    static = render_picture(picture, animate=False)
    assert "<circle" not in static and "animateMotion" not in static


# -- the checks can fail ----------------------------------------------------------------------

A = "binding|x:ch04.logs|q:ch04.all"  # the gallery's chapter 4: labels far apart
B = "binding|x:ch04.headers|q:ch04.pdf"


def _broken(change) -> tuple[Placement, str]:
    """Chapter 4 placed as usual, then broken by `change(placement)`, and drawn."""
    p = place(ch04())
    assert not p.unplaced
    change(p)
    return p, draw(p, animate=False)


def _beside(p: Placement, edge: str, gap: float) -> tuple[float, float]:
    """A point `gap` px off the middle of `edge`'s path, square to it."""
    route = p.routes[edge]
    (x, y), (dx, dy) = route.at(route.length() / 2)
    return x - dy * gap, y + dx * gap


def test_the_checker_catches_two_labels_on_one_spot(page):
    def same_spot(p: Placement) -> None:
        a = p.labels[A]
        p.labels[B] = replace(p.labels[B], cx=a.cx + 3, top=a.top + 2)

    _p, html = _broken(same_spot)
    found = overlaps(measure(page, html))
    assert any(A in f and B in f for f in found), found


def test_the_checker_catches_a_name_out_of_its_box(page):
    def too_long(p: Placement) -> None:
        box = p.boxes["q:ch04.kern"]
        p.boxes["q:ch04.kern"] = replace(box, title=Fitted(("ch04.kern." + "x" * 40,)))

    _p, html = _broken(too_long)
    found = overflows(measure(page, html))
    assert any("q:ch04.kern" in f for f in found), found


def test_the_checker_catches_a_label_nearer_another_edge(page):
    def astray(p: Placement) -> None:
        label = p.labels[A]
        x, y = _beside(p, B, label.h / 2 + 10)
        p.labels[A] = replace(label, cx=x, top=y - label.h / 2)

    _p, html = _broken(astray)
    found = misattributed(measure(page, html))
    assert any(f"of {A} is nearer {B}" in f for f in found), found


def test_the_checker_catches_a_label_on_a_stroke(page):
    def on_b(p: Placement) -> None:
        label = p.labels[A]
        x, y = _beside(p, B, 0)
        p.labels[A] = replace(label, cx=x, top=y - label.h / 2)

    _p, html = _broken(on_b)
    found = on_strokes(measure(page, html))
    assert any(f"of {A} lies on {B}" in f for f in found), found


def test_the_checker_catches_small_print(page):
    def smaller(p: Placement) -> None:
        footer = tuple(replace(f, size=10) if f.css == "totals" else f for f in p.footer)
        object.__setattr__(p, "footer", footer)

    _p, html = _broken(smaller)
    found = small_print(measure(page, html))
    assert found and all(f.startswith("totals") for f in found), found
