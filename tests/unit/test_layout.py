"""Placing and drawing a Picture (helpers.view.layout, helpers.view.drawing) without a
browser: every node placed, no two boxes or estimated label rectangles over each other, the
same picture drawn the same way, names from elsewhere escaped, long names shortened in the
middle with the whole on hover. tests/test_diagram_gallery.py measures the same pictures in
Chromium."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from itertools import combinations

import pytest
from gallery import GALLERY, TAG, ch00, ch06, ch08, hostile

from helpers.view.drawing import render_picture
from helpers.view.edges import AROUND, REPLY
from helpers.view.layout import Placement, label_text, place
from helpers.view.picture import PROGRAMS, Picture
from helpers.view.route import rects_overlap
from helpers.view.text_fit import ELLIPSIS, fit, shorten_middle, text_width

SVG = "{http://www.w3.org/2000/svg}"
NAMES = list(GALLERY)


def _svg(html: str) -> ET.Element:
    return ET.fromstring(html[html.index("<svg") : html.index("</svg>") + len("</svg>")])


def _extent(p: Placement, node_id: str) -> tuple[float, float, float, float]:
    """A box with what it needs above it (its note, its badge)."""
    b = p.boxes[node_id]
    return (b.x, b.y - b.above, b.x + b.w, b.y + b.h)


@pytest.mark.parametrize("name", NAMES)
def test_every_node_has_a_box_and_no_two_boxes_overlap(name):
    picture = GALLERY[name]()
    p = place(picture)
    assert set(p.boxes) == {n.id for n in picture.nodes}
    assert set(p.routes) == {e.id for e in picture.edges}
    for a, b in combinations(p.boxes, 2):
        assert not rects_overlap(_extent(p, a), _extent(p, b)), f"{a} and {b} overlap"
    for node in p.boxes:
        x0, y0, x1, y1 = _extent(p, node)
        assert 0 <= x0 and x1 <= p.width and 0 <= y0 and y1 <= p.height, node
    for route in p.routes.values():
        assert all(0 <= x <= p.width and 0 <= y <= p.height for x, y in route.points)


@pytest.mark.parametrize("name", NAMES)
def test_label_rectangles_overlap_nothing(name):
    p = place(GALLERY[name]())
    assert not p.unplaced, "every label found a free spot"
    labels = list(p.labels.values())
    for a, b in combinations(labels, 2):
        assert not rects_overlap(a.rect, b.rect), f"{a.lines} over {b.lines}"
    for label in labels:
        for box in p.boxes.values():
            for r in (box.rect, box.note_rect(), box.badge_rect()):
                assert r is None or not rects_overlap(label.rect, r), (label.lines, box.node.id)
        assert 0 <= label.rect[0] and label.rect[2] <= p.width
        assert 0 <= label.rect[1] and label.rect[3] <= p.height


@pytest.mark.parametrize("name", NAMES)
def test_the_same_picture_is_drawn_the_same(name):
    picture = GALLERY[name]()
    assert render_picture(picture) == render_picture(picture)
    # Whatever order the picture lists its nodes and edges in: the same places.
    shuffled = replace(picture, nodes=picture.nodes[::-1], edges=picture.edges[::-1])
    a, b = place(picture), place(shuffled)
    assert {k: (v.x, v.y, v.w, v.h) for k, v in a.boxes.items()} == {
        k: (v.x, v.y, v.w, v.h) for k, v in b.boxes.items()
    }
    assert {k: v.rect for k, v in a.labels.items()} == {k: v.rect for k, v in b.labels.items()}
    assert (a.width, a.height) == (b.width, b.height)


def test_names_from_elsewhere_are_text_not_markup():
    html = render_picture(hostile())
    for markup in ("<script", "<b>", "<i>", "<img", "</text><text>"):
        assert markup not in html, markup
    svg = _svg(html)  # well-formed
    drawn = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert any("<script>alert('x')</script>" in t for t in drawn), drawn
    assert any("q</text><text>" in t for t in drawn)
    assert any('<key & "quote"' in t for t in drawn)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the note under the picture
    assert "log &lt;script&gt;1&lt;/script&gt; &amp; &#x27;x&#x27;" in html
    hovers = ["".join(t.itertext()) for t in svg.iter(f"{SVG}title")]
    assert "<script>alert('x')</script>" in hovers


def test_a_long_consumer_tag_is_shortened_in_the_middle_with_the_whole_on_hover():
    html = render_picture(ch00())
    svg = _svg(html)
    box = next(g for g in svg.iter(f"{SVG}g") if g.get("data-node") == "p:ch00.notebook")
    rows = ["".join(t.itertext()) for t in box.findall(f"{SVG}text")]
    tag_row = next(r for r in rows if r.startswith("consumer ctag1.4f3a"))
    assert ELLIPSIS in tag_row and tag_row.endswith(TAG[-4:]), tag_row
    assert TAG in box.find(f"{SVG}title").text, "the whole tag on hover"
    assert "no prefetch limit · auto ack" in rows, "nothing cut at its end"


def test_binding_keys_are_whole():
    svg = _svg(render_picture(ch06()))
    labels = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text") if t.get("class") == "label"]
    assert "ch06.requests · 6" in labels and "ch06.exercise.requests" in labels, labels


def test_deliveries_back_to_a_program_go_around_the_boxes():
    p = place(ch06())
    around = [e for e, w in p.ways.items() if w == AROUND]
    assert sorted(around) == [
        "deliver|q:ch06.replies|p:ch06.rpc client",
        "deliver|q:ch06.requests|p:ch06.rpc server",
    ]
    lowest_box = max(b.y + b.h for b in p.boxes.values())
    for edge_id in around:
        route = p.routes[edge_id]
        assert max(y for _x, y in route.points) > lowest_box, "below every box"
        target = p.boxes[edge_id.rpartition("|")[2]]
        assert route.points[-1] == (target.x, route.points[-1][1]), "into its left side"
        assert min(x for x, _y in route.points) < target.x, "from the gutter"
    # Nested: the one to the higher box runs outside the other.
    outer, inner = (p.routes[e] for e in around)  # to the client (above), to the server
    assert max(y for _x, y in outer.points) > max(y for _x, y in inner.points)
    assert min(x for x, _y in outer.points) < min(x for x, _y in inner.points)
    reply = next(e for e, w in p.ways.items() if w == REPLY)
    assert p.labels[reply].lines == ("reply · 3",), "the count is said once"


def test_the_retry_ladder_names_dead_letters_once_in_the_legend():
    picture = ch08()
    p = place(picture)
    assert p.keyed == {"deadletter": "dead letters"}
    dead = [e for e in picture.edges if e.kind == "deadletter"]
    assert len(dead) == 4 and all(e.id not in p.labels for e in dead), "no count, no label"
    assert [f.text for f in p.footer if f.key] == ["dead letters"]
    html = render_picture(picture)
    drawn = ["".join(t.itertext()) for t in _svg(html).iter(f"{SVG}text")]
    assert drawn.count("dead letters") == 1, drawn
    assert 'class="legend-key" data-kind="deadletter"' in html


def test_what_the_boxes_say_about_their_program():
    html = render_picture(GALLERY["celery"]())
    assert re.search(r'<g class="blocked-tag" data-state="blocked"', html)
    assert 'class="queue folded"' in html
    faded = render_picture(ch08())
    check = re.search(r'<g class="consumer helper"[^>]*>.*?</g>', faded).group(0)
    assert 'opacity="0.5"' in check and ">ch08.check_exercise<" in check
    live = re.search(r'<g class="producer"[^>]*>.*?</g>', faded).group(0)
    assert "opacity" not in live
    stripes = re.findall(r'class="program"[^>]*fill="(#[0-9a-f]{6})"', faded)
    assert len(stripes) == 3 and len(set(stripes)) == 3, "one colour per program"


def test_caption_and_legend_are_body_text():
    p = place(ch00())
    sizes = {f.css: f.size for f in p.footer}
    assert sizes["totals"] >= 12 and sizes["legend"] >= 12
    assert all(text_width(f.text, f.size) <= p.width - 2 * 16 + 1 for f in p.footer)


def test_an_empty_picture_says_why():
    html = render_picture(GALLERY["empty"]())
    assert "nothing named ch04.… yet" in html and 'class="totals"' in html


def test_label_text_says_words_and_count_once():
    e = ch06().edges
    reply = next(x for x in e if x.kind == "reply")
    binding = next(x for x in e if x.id == "binding|x:|q:ch06.requests")
    assert label_text(reply, {}) == "reply · 3"
    assert label_text(binding, {}) == "ch06.requests · 6"


def test_a_picture_without_edges_or_with_stray_edges_is_placed():
    picture = ch00()
    bare = Picture(nodes=picture.nodes, caption="x")
    assert place(bare).boxes and not place(bare).routes
    stray = replace(picture, edges=(*picture.edges, replace(picture.edges[0], id="x", target="?")))
    assert "x" not in place(stray).routes, "an edge to a node not drawn is left out"
    one = Picture(nodes=tuple(n for n in picture.nodes if n.column == PROGRAMS))
    assert place(one).width >= 600


# -- text -------------------------------------------------------------------------------------


def test_shortening_keeps_both_ends():
    short = shorten_middle(TAG, 120, 12)
    head, _, tail = short.partition(ELLIPSIS)
    assert TAG.startswith(head) and TAG.endswith(tail) and len(head) > len(tail) > 0
    assert text_width(short, 12) <= 120
    assert shorten_middle("short", 120, 12) == "short"


def test_fitting_wraps_at_spaces_and_never_starts_a_line_with_a_separator():
    fitted = fit("published 9 · routed 14 · unroutable 1 · delivered 9", 150, 12, max_lines=4)
    assert not fitted.cut and all(text_width(line, 12) <= 150 for line in fitted.lines)
    assert not any(line.startswith("·") for line in fitted.lines), fitted.lines
    one = fit("consumer " + TAG, 220, 12)
    assert len(one.lines) == 1 and one.lines[0].startswith("consumer ctag1.") and one.cut


def test_widths_are_dejavu_sans():
    assert text_width("W", 10) == pytest.approx(9.89)
    assert text_width("i", 10) == pytest.approx(2.78)
    assert text_width("W", 10, bold=True) > text_width("W", 10)
    assert text_width("漢", 10) >= 10, "a character not in the table counts wide"
