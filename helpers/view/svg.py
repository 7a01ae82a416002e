"""The flow diagram as one HTML fragment: `render_svg(state, now)`.

Two steps, each in a module of its own: what the picture says (`helpers.view.scene`: boxes,
edges, counts, the log, in words) and where and how it is drawn (`helpers.view.layout`
places it, `helpers.view.drawing` writes the SVG and escapes every piece of text with
`esc()`).
"""

from __future__ import annotations

import time

from helpers.flow.state import FlowState
from helpers.view.drawing import esc, render_picture
from helpers.view.scene import picture_of

__all__ = ["esc", "render_picture", "render_svg"]


def render_svg(
    state: FlowState, now: float | None = None, animate: bool = True, show_helpers: bool = True
) -> str:
    """Draw the state at `now` as one self-contained HTML fragment (inline SVG plus a short
    log). With `animate`, messages from the last moments move as dots along the edges the
    broker used, continuing where the previous render left them. `show_helpers=False`
    leaves the tutorial's own connections (checks, the publish panel) out of the picture."""
    now = time.monotonic() if now is None else now
    return render_picture(picture_of(state, now, show_helpers), animate)
