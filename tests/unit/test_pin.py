"""`diagram.pin()` where no side panel can show, and its bookkeeping, in a real kernel.

No broker: a stand-in diagram (an `ipywidgets.HTML` with a prefix) is enough for what
`helpers.view.pin` does. The kernel is started by nbclient, as nbconvert and nbval start
theirs (over Unix sockets: tests/unit runs without a network); once as they do (no Jupyter
server, so no JPY_SESSION_NAME) and once as JupyterLab's server does (with it). The browser
side is tests/test_pin_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from helpers.view.pin import default_title, side_panel_possible

REPO = Path(__file__).resolve().parents[2]
TITLE = "ch99 · diagram"

MAKE = """\
import ipywidgets
from helpers.view.pin import pin, pinned


class StandIn:  # what pin() needs of a FlowDiagram
    def __init__(self, prefix):
        self.prefix, self.widget, self.closed = prefix, ipywidgets.HTML("<svg></svg>"), False


first = StandIn("ch99.")
pin(first)"""
# Running the diagram's cell again: a new diagram under the same title, the old one closed.
AGAIN = """\
import helpers.view.pin as p

first.closed = True
second = StandIn(("ch99.work", "amq.gen-"))
pin(second)
pin(second)
entry = p._pinned.get("ch99 · diagram")  # placed beside its predecessor, both retired:
print(entry is not None and entry.panel.ref is not None, len(p._retired))"""
CHECK_AGAIN = """\
print(pinned("ch99 · diagram") is second, len(p._pinned), len(p._retired),
      entry and entry.panel.ref)"""
CLOSE = "second.closed = True"
CHECK_CLOSED = "print(pinned('ch99 · diagram'), len(p._pinned))"


def _run(server: bool) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[new_code_cell(s) for s in (MAKE, AGAIN, CHECK_AGAIN, CLOSE, CHECK_CLOSED)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    if server:
        env["JPY_SESSION_NAME"] = str(REPO / "notebooks" / "99_pin.ipynb")
    # Over Unix sockets: `make test` runs tests/unit without a network, loopback included.
    with tempfile.TemporaryDirectory(prefix="pin") as sockets:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/k")
        client = NotebookClient(
            nb,
            km=km,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(REPO)}},
        )
        client.execute(env=env)
    return nb


def _panels(nb: nbformat.NotebookNode) -> list[dict]:
    """The Sidecar widgets the kernel created, from the widget state nbclient saved."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [
        m["state"] for m in state.get("state", {}).values() if m["model_name"] == "SidecarModel"
    ]


def _texts(nb: nbformat.NotebookNode) -> list[list[str]]:
    return [
        [o.get("text", json.dumps(o.get("data", {}))) for o in cell.outputs] for cell in nb.cells
    ]


def test_pin_without_a_jupyter_server_does_nothing_and_shows_nothing() -> None:
    """nbval/nbconvert: no output, no widget saved with the notebook (JupyterLab would open
    a saved Sidecar as a panel when the notebook is opened)."""
    nb = _run(server=False)
    assert _texts(nb) == [[], ["False 0\n"], ["False 0 0 None\n"], [], ["None 0\n"]]
    assert _panels(nb) == []


def test_pin_under_a_jupyter_server_makes_one_panel_per_title() -> None:
    """JupyterLab's kernel: the pin cells' outputs are as empty; a Sidecar per pin, titled
    after the chapter, showing a view of the diagram's widget, placed beside the panel it
    replaces; the replaced ones and a closed diagram's are closed when the cell ends."""
    nb = _run(server=True)
    assert _texts(nb) == [[], ["True 2\n"], ["True 1 0 None\n"], [], ["None 0\n"]]
    panels = _panels(nb)
    assert [p["title"] for p in panels] == [TITLE] * 3  # first, second, second again
    assert {p["anchor"] for p in panels} == {"split-right"}
    for panel in panels:
        (output,) = panel["outputs"]
        assert set(output["data"]) == {"application/vnd.jupyter.widget-view+json", "text/plain"}
        assert output["data"]["text/plain"] == TITLE


def test_side_panel_needs_a_kernel_of_a_jupyter_server(monkeypatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "x.ipynb")
    assert not side_panel_possible()  # plain Python: no IPython kernel


def test_default_title_names_the_chapter() -> None:
    assert default_title("ch00.") == TITLE.replace("99", "00")
    assert default_title(("ch06.", "amq.gen-")) == "ch06 · diagram"
    assert default_title("ch03.work") == "ch03 · diagram"
    assert default_title("") == default_title(()) == "flow diagram"
    assert default_title(re.compile("^orders")) == "flow diagram"
