"""What notebooks import: the live flow diagram and the publish panel.

The pieces live in `helpers.view` (one concern each): `diagram` (the widget and its
firehose thread), `layout` (where boxes go, a pure function of the state), `svg` (drawing),
`panel` (the form that calls basic_publish). See `helpers.view.diagram` for how a chapter
uses the diagram and what it can rely on.
"""

from helpers.view.diagram import STATIC_END, STATIC_START, FlowDiagram
from helpers.view.layout import NODE_H, Layout
from helpers.view.panel import PublishPanel, parse_headers
from helpers.view.svg import esc, render_svg

__all__ = [
    "NODE_H",
    "STATIC_END",
    "STATIC_START",
    "FlowDiagram",
    "Layout",
    "PublishPanel",
    "esc",
    "parse_headers",
    "render_svg",
]
