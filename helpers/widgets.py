"""What notebooks import: the live flow diagram and the publish panel.

The pieces live in `helpers.view` (one concern each): `diagram` (the widget and its
firehose thread), `scene` (what the picture says, from the counting state), `layout` (where
everything goes), `svg` and `drawing` (the SVG),
`panel` (the form that calls basic_publish), `pin` (`diagram.pin()`: the live diagram in
JupyterLab's side panel too). See `helpers.view.diagram` for how a chapter uses the diagram
and what it can rely on.
"""

from helpers.view.diagram import STATIC_END, STATIC_START, FlowDiagram
from helpers.view.panel import PublishPanel, parse_headers
from helpers.view.svg import esc, render_svg

__all__ = [
    "STATIC_END",
    "STATIC_START",
    "FlowDiagram",
    "PublishPanel",
    "esc",
    "parse_headers",
    "render_svg",
]
