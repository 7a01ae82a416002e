"""Measuring a drawn flow diagram in a real browser, and what must hold of it.

`measure(page, html)` loads the fragment into a Chromium page and reads, with the browser's
own text layout (getBBox, getPointAtLength), every box and the texts in it, every edge's path
(sampled every 2 px) with its labels, and every other text (notes, badges, caption, legend).
The checks then say what a learner would trip over:

1. two texts drawn over each other, or an edge label, note or badge over a box;
2. a text running out of its box (or out of the picture);
3. an edge label nearer to another edge than to its own (it reads as that one's);
4. an edge label with an edge's stroke through it (its own included: a label on its own
   dashed line is unreadable);
5. a caption or legend smaller than the body text.

Each check returns its findings as readable strings; none means it holds. They read the
class names the drawing has always had (g[data-name] boxes, g.edge with path and text), so
they can measure the former drawing (`render_svg`) too.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet towards the network: this machine refuses connections to other hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SLACK = 0.5  # px: rounding in the browser's boxes

MEASURE = """() => {
    const svg = document.querySelector('svg.flow-svg');
    const box = (el) => {
        const b = el.getBBox(); return {x: b.x, y: b.y, w: b.width, h: b.height};
    };
    const words = (t) => [...t.childNodes].filter(n => n.nodeName !== 'title')
        .map(n => n.textContent).join('');
    const text = (t) => ({text: words(t), size: parseFloat(getComputedStyle(t).fontSize),
                          css: t.getAttribute('class') || '', ...box(t)});
    const boxes = [...svg.querySelectorAll('g[data-name]')].map(g => {
        const rect = g.querySelector(':scope > rect.box')
            || g.querySelector(':scope > rect:not(.program):not(.fold)');
        return {name: g.dataset.name, node: g.dataset.node || g.dataset.name, rect: box(rect),
                texts: [...g.querySelectorAll(':scope > text')].map(text)};
    });
    const edges = [...svg.querySelectorAll('g.edge')].map((g, i) => {
        const path = g.querySelector('path');
        const length = path.getTotalLength();
        const points = [];
        for (let d = 0; d <= length; d += 2) {
            const p = path.getPointAtLength(d); points.push([p.x, p.y]);
        }
        return {id: g.dataset.edge || `${g.getAttribute('class')} #${i}`,
                width: parseFloat(path.getAttribute('stroke-width') || '1'), points,
                labels: [...g.querySelectorAll('text')].map(text)};
    });
    const inBoxOrEdge = (t) => t.closest('g[data-name]') || t.closest('g.edge');
    const others = [...svg.querySelectorAll('text')].filter(t => !inBoxOrEdge(t)).map(t => {
        const tag = t.closest('g.blocked-tag');
        const holder = tag ? tag.querySelector('rect') : null;
        return {...text(t), badge: tag ? (tag.dataset.node || '?') : null,
                holder: holder ? box(holder) : null};
    });
    const vb = svg.viewBox.baseVal;
    return {width: vb.width, height: vb.height, boxes, edges, others};
}"""


def measure(page: Any, html: str) -> dict[str, Any]:
    page.set_content(f"<html><body style='margin:0;background:#fff'>{html}</body></html>")
    return page.evaluate(MEASURE)


def _rect(t: dict[str, Any]) -> tuple[float, float, float, float]:
    return (t["x"], t["y"], t["x"] + t["w"], t["y"] + t["h"])


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ax0, ay0, ax1, ay1 = _rect(a)
    bx0, by0, bx1, by1 = _rect(b)
    return min(ax1, bx1) - max(ax0, bx0) > SLACK and min(ay1, by1) - max(ay0, by0) > SLACK


def _inside(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    ix0, iy0, ix1, iy1 = _rect(inner)
    ox0, oy0, ox1, oy1 = _rect(outer)
    return ix0 >= ox0 - SLACK and iy0 >= oy0 - SLACK and ix1 <= ox1 + SLACK and iy1 <= oy1 + SLACK


def _texts(m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, text) of every text drawn: in a box, on an edge, elsewhere."""
    out = [(f"box {b['node']}", t) for b in m["boxes"] for t in b["texts"]]
    out += [(f"edge {e['id']}", t) for e in m["edges"] for t in e["labels"]]
    out += [(f"badge {t['badge']}" if t["badge"] else t["css"] or "text", t) for t in m["others"]]
    return [(w, t) for w, t in out if t["text"].strip() and t["w"] > 0]


def overlaps(m: dict[str, Any]) -> list[str]:
    """Check 1: no two texts over each other; no edge label, note or badge over a box."""
    found = []
    texts = _texts(m)
    for (wa, a), (wb, b) in combinations(texts, 2):
        if _overlap(a, b):
            found.append(f"{wa} {a['text']!r} over {wb} {b['text']!r}")
    for where, t in texts:
        if where.startswith("box "):
            continue
        for b in m["boxes"]:
            if where == f"badge {b['node']}":
                continue  # a badge sits on its own box's edge
            if _overlap(t, b["rect"]):
                found.append(f"{where} {t['text']!r} over box {b['node']}")
    return found


def overflows(m: dict[str, Any]) -> list[str]:
    """Check 2: every text inside its box (a badge's inside its tag), and in the picture."""
    found = []
    for b in m["boxes"]:
        for t in b["texts"]:
            if t["text"].strip() and not _inside(t, b["rect"]):
                found.append(f"{t['text']!r} runs out of box {b['node']}")
    for t in m["others"]:
        if t["holder"] and not _inside(t, t["holder"]):
            found.append(f"badge {t['text']!r} runs out of its tag")
    picture = {"x": 0, "y": 0, "w": m["width"], "h": m["height"]}
    for where, t in _texts(m):
        if not _inside(t, picture):
            found.append(f"{where} {t['text']!r} runs out of the picture")
    return found


def _distance(points: list[list[float]], p: tuple[float, float]) -> float:
    return min((math.hypot(x - p[0], y - p[1]) for x, y in points), default=math.inf)


def misattributed(m: dict[str, Any]) -> list[str]:
    """Check 3: every edge label nearer its own edge's path than any other edge's."""
    found = []
    for e in m["edges"]:
        for t in e["labels"]:
            c = (t["x"] + t["w"] / 2, t["y"] + t["h"] / 2)
            own = _distance(e["points"], c)
            near = min(
                ((_distance(o["points"], c), o["id"]) for o in m["edges"] if o is not e),
                default=(math.inf, ""),
            )
            if near[0] <= own:
                found.append(f"label {t['text']!r} of {e['id']} is nearer {near[1]}")
    return found


def on_strokes(m: dict[str, Any]) -> list[str]:
    """Check 4: no edge's stroke through an edge label (its own edge's included)."""
    found = []
    for e in m["edges"]:
        for t in e["labels"]:
            for other in m["edges"]:
                half = other["width"] / 2
                x0, y0 = t["x"] - half, t["y"] - half
                x1, y1 = t["x"] + t["w"] + half, t["y"] + t["h"] + half
                if any(x0 < x < x1 and y0 < y < y1 for x, y in other["points"]):
                    whose = "its own edge" if other is e else other["id"]
                    found.append(f"label {t['text']!r} of {e['id']} lies on {whose}")
    return found


def small_print(m: dict[str, Any]) -> list[str]:
    """Check 5: the caption and legend at body-text size (12 px or more)."""
    return [
        f"{t['css']} {t['text'][:30]!r} at {t['size']} px"
        for t in m["others"]
        if t["css"] in ("totals", "legend") and t["size"] < 12
    ]


CHECKS = {
    "overlap": overlaps,
    "overflow": overflows,
    "attribution": misattributed,
    "on stroke": on_strokes,
    "small print": small_print,
}


def problems(m: dict[str, Any]) -> dict[str, list[str]]:
    """Every check's findings, only the checks that found something."""
    return {name: found for name, check in CHECKS.items() if (found := check(m))}
