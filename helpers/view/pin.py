"""A live diagram pinned beside the notebook, in a JupyterLab side panel (`sidecar`).

Why: a chapter creates its diagram once and then runs many cells that the diagram explains.
Inline, the picture scrolls away above the cells that move its dots, and the learner scrolls
back after every cell. Pinned, the same live widget also shows in a panel beside the notebook
that stays in view. The inline copy stays where it is, with its static picture for readers of
the saved notebook (GitHub, nbviewer) and its text for nbval.

What `pin(diagram)` does, by front end (checked in JupyterLab 4.6 with Chromium, and with
nbclient, which nbconvert and nbval use; the others from how they start kernels):

- **JupyterLab 4** (locally and on Binder): a `sidecar.Sidecar` panel opens to the right of
  the notebook, titled after the chapter ("ch00 · diagram"), holding a second view of the
  diagram's widget, so it moves with it. The keyboard stays in the notebook. The learner can
  drag the panel's tab elsewhere, drag its edge to resize it, or close it. Pinning again
  under the same title (the diagram's cell run again, or the chapter's next diagram) opens
  the new panel where the old one is, wherever it was dragged, and closes the old one when
  the cell ends: one panel per title, and a panel the learner closed comes back. Closing the
  diagram leaves "(closed)" in its panel until the cell ends, then closes the panel, unless
  the cell pinned a successor.
- **Not a kernel of a Jupyter server** (nbconvert, nbclient, nbval, papermill, plain Python)
  and **VS Code**: nothing at all. No widget is made, so none is saved with the notebook
  either (nbconvert saves every widget's state, and JupyterLab would open a saved Sidecar as
  a panel as soon as the notebook is opened).
- **Classic Notebook, nbclassic, Notebook 7**: when their server names the session
  (JPY_SESSION_NAME) the Sidecar widget is made, but they have no such panel for it; at most
  the browser's console logs an error. Not tried in a browser.

Known limits in JupyterLab: in the Simple Interface (one document at a time) the panel is
shown instead of the notebook; switch back with the Tabs menu or turn Simple Interface off.
After a kernel restart the old kernel's panel stays, marked disconnected, until closed; the
new kernel's pin() opens another.

`pin()` returns None and prints nothing, so a cell's outputs are the same whichever front end
ran it; only a JupyterLab kernel without the `sidecar` package prints, once, how to get it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets

from helpers.flow.scope import Prefix
from helpers.i18n import _

if TYPE_CHECKING:
    from sidecar import Sidecar

# "split-right": beside the notebook in the main area, half of its width, a tab the learner can
# drag elsewhere. The right sidebar ("right", sidecar's default) is about 250 px wide, which
# shrinks a diagram's labels below reading size until the learner widens it.
ANCHOR = "split-right"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


class Pinnable(Protocol):
    """What a pinned panel needs of a diagram (`FlowDiagram` offers it)."""

    prefix: Prefix
    widget: ipywidgets.DOMWidget
    closed: bool


@dataclass
class _Pinned:
    panel: Sidecar
    diagram: Pinnable


_pinned: dict[str, _Pinned] = {}  # by title: one panel per title
_retired: list[Sidecar] = []  # replaced by a new panel: closed when the cell ends
_lock = threading.Lock()
_hooked: list[object] = []  # the IPython shells whose post_run_cell we listen to
_told_missing = False


def pin(diagram: Pinnable, title: str | None = None) -> None:
    """Show `diagram` in a side panel titled `title` (default: after its prefix); see above."""
    if diagram.closed or not side_panel_possible():
        return
    try:
        from sidecar import Sidecar
    except ImportError:
        _tell_missing()
        return
    title = title or default_title(diagram.prefix)
    with _lock:
        old = _pinned.get(title)
        # Beside the old panel, wherever the learner dragged it (JupyterLab falls back to
        # beside the notebook when the learner closed it); the old one goes when the cell
        # ends, so that it is still there to be found when JupyterLab places the new one.
        panel = Sidecar(title=title, anchor=ANCHOR, ref=old.panel if old else None)
        panel.outputs = (_view_of(diagram.widget, title),)
        _pinned[title] = _Pinned(panel, diagram)
        if old is not None:
            _retired.append(old.panel)
    _close_with_cells()


def pinned(title: str) -> Pinnable | None:
    """The diagram pinned under `title` now, if any (for tests and the curious)."""
    with _lock:
        entry = _pinned.get(title)
    return entry.diagram if entry is not None else None


def side_panel_possible() -> bool:
    """True in a kernel that a Jupyter server started for a front end other than VS Code.

    Why these tests: a Jupyter server (JupyterLab, Notebook) names the session in the kernel's
    environment (JPY_SESSION_NAME); nbconvert, nbclient, nbval and papermill start kernels
    without it, and they have no front end to show a panel. VS Code defines
    `__vsc_ipynb_file__` in the kernel's namespace and has no sidecar front end.
    """
    if not os.environ.get("JPY_SESSION_NAME"):
        return False
    shell = _shell()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return "__vsc_ipynb_file__" not in shell.user_ns


def default_title(prefix: Prefix) -> str:
    """The title for a diagram of `prefix`: "ch04 · diagram" for ch04.… (the first name's
    part before its first dot). One title, so one panel, per chapter, whichever of its
    sections' diagrams it shows."""
    first = prefix[0] if isinstance(prefix, tuple) and prefix else prefix
    name = first.split(".", 1)[0] if isinstance(first, str) else ""  # a regex: no name
    return f"{name} · diagram" if name else "flow diagram"


def close_panels_of_closed_diagrams(result: object = None) -> None:
    """After each cell: close the panels whose diagram was closed, and those replaced.

    At the end of the cell, not at once: a cell that closes a diagram and opens its successor
    (the diagram's cell run again) pins the new one under the same title meanwhile, and
    JupyterLab must still find the old panel to put the new one in its place.
    """
    with _lock:
        gone = [title for title, entry in _pinned.items() if entry.diagram.closed]
        panels = [_pinned.pop(title).panel for title in gone] + _retired
        _retired.clear()
        successors = [entry.panel for entry in _pinned.values() if entry.panel.ref in panels]
    for panel in panels:
        panel.close()
    for panel in successors:
        panel.ref = None  # placed by now; keep no closed widget alive


def _view_of(widget: ipywidgets.DOMWidget, title: str) -> dict[str, Any]:
    """A display_data output holding only a view of `widget` (its repr would carry the
    whole SVG as text/plain, for nobody)."""
    bundle = widget._repr_mimebundle_() or {}
    return {
        "output_type": "display_data",
        "data": {VIEW_MIME: bundle[VIEW_MIME], "text/plain": title},
        "metadata": {},
    }


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _close_with_cells() -> None:
    """Listen to the end of every cell, once per shell."""
    shell = _shell()
    if shell is None or any(hooked is shell for hooked in _hooked):
        return
    shell.events.register("post_run_cell", close_panels_of_closed_diagrams)
    _hooked.append(shell)


def _tell_missing() -> None:
    global _told_missing
    if not _told_missing:
        _told_missing = True
        print(
            _(
                "(diagram.pin(): the sidecar package is missing, so the diagram stays inline "
                "only; `pip install -r requirements.txt` installs it)"
            )
        )
