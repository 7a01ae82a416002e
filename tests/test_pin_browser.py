"""`diagram.pin()` in a real browser: JupyterLab 4 + Debian's Chromium, driven by Playwright.

The harness is tests/test_browser.py's (a JupyterLab server on 127.0.0.1 with a free port and
a random token; the kernel reaches a private vhost through AMQP_URL). The notebook is
tests/pin_notebook.ipynb: it declares an exchange and a queue, creates a diagram, pins it,
publishes, then has several screens of reading before a cell that publishes again, and a
cell that closes the diagram.

The test checks what a learner relies on: the side panel shows the diagram's SVG; with the
notebook scrolled so that the diagram's own cell is out of view, a later publish shows up
in the panel; running the diagram's cell again keeps one panel, not two; closing the diagram
closes the panel. With a `pin()` that does nothing, it fails at its first check (no panel).
A screenshot is kept in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flow_support import private_vhost
from test_browser import ARTIFACTS, REPO, _chromium, _jupyterlab, kernel_env

from helpers import Broker

PANEL = ".jupyterlab-sidecar"  # the class sidecar gives its panel in JupyterLab's shell
PANEL_SVG = f"{PANEL} .flowdiagram svg.flow-svg"
TOTALS = f"{PANEL_SVG} text.totals"
# The notebook's panel (the shell's current widget may be the side panel once it opened).
NOTEBOOK = (
    "[...window.jupyterapp.shell.widgets('main')]"
    ".find(w => w.sessionContext && w.content && w.content.model)"
)


@pytest.fixture
def pin_lab(broker: Broker, tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on a copy of the pin notebook; yields the notebook's URL."""
    with private_vhost(broker, "pin") as vb:
        shutil.copy(REPO / "tests" / "pin_notebook.ipynb", tmp_path / "pin.ipynb")
        with _jupyterlab(tmp_path, kernel_env(vb)) as (base, token):
            yield f"{base}/lab/tree/pin.ipynb?token={token}"


def _cell_index(page, text: str) -> int:
    """The index of the first cell whose source contains `text`."""
    return page.evaluate(
        f"""text => [...{NOTEBOOK}.content.model.cells]
                  .findIndex(c => c.sharedModel.getSource().includes(text))""",
        text,
    )


def _run_cell(page, index: int, timeout_ms: int = 30_000) -> None:
    """Select cell `index` and run it as Shift+Enter would; return once the kernel has
    answered (the command's promise) and is idle again."""
    page.evaluate(
        f"""async i => {{
            const nb = {NOTEBOOK};
            window.jupyterapp.shell.activateById(nb.id);
            nb.content.activeCellIndex = i;
            await window.jupyterapp.commands.execute('notebook:run-cell');
        }}""",
        index,
    )
    page.wait_for_function(
        f"() => {NOTEBOOK}.sessionContext.session.kernel.status === 'idle'", timeout=timeout_ms
    )


def _totals(page) -> list[str]:
    return page.locator(TOTALS).evaluate_all("els => els.map(e => e.textContent)")


def test_pinned_diagram_stays_in_view_and_updates(pin_lab: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(pin_lab)
            page.wait_for_function(
                f"""() => {{
                    const w = window.jupyterapp && {NOTEBOOK};
                    const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
                    return k && k.status === 'idle';
                }}""",
                timeout=30_000,
            )
            setup, pinning = _cell_index(page, "declared"), _cell_index(page, "diagram.pin()")
            first, later = _cell_index(page, 'b"first"'), _cell_index(page, 'b"second"')
            closing = _cell_index(page, "diagram.close()")
            for index in (setup, pinning, first):
                _run_cell(page, index)

            # The panel: one, beside the notebook, holding the live diagram's SVG.
            try:
                page.wait_for_selector(PANEL_SVG, timeout=20_000)
            except PlaywrightTimeout:
                pytest.fail("no side panel with the diagram's SVG: diagram.pin() showed nothing")
            assert page.locator(PANEL).count() == 1
            panel, notebook = (
                _box(page, PANEL),
                page.evaluate(
                    f"() => {{ const r = {NOTEBOOK}.node.getBoundingClientRect();"
                    " return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
                ),
            )
            assert panel["x"] >= notebook["x"] + notebook["width"] - 1, (panel, notebook)
            assert panel["width"] > 300, "wide enough to read"
            page.wait_for_function(
                f"""() => [...document.querySelectorAll('{TOTALS}')]
                      .some(t => t.textContent.includes('published 1'))""",
                timeout=20_000,
            )
            names = page.locator(f"{PANEL_SVG} g.queue").evaluate_all(
                "els => els.map(e => e.getAttribute('data-name'))"
            )
            assert names == ["pinned.all"]

            # Scroll to the last cells: the diagram's own cell is out of view.
            page.evaluate(
                f"async i => {{ await {NOTEBOOK}.content.scrollToItem(i, 'end'); }}", closing
            )
            page.wait_for_timeout(500)
            _run_cell(page, later)
            page.wait_for_function(
                f"""() => [...document.querySelectorAll('{TOTALS}')]
                      .some(t => t.textContent.includes('published 3'))""",
                timeout=20_000,
            )
            assert not _inline_diagram_in_view(page), "the notebook must be scrolled past it"
            assert _in_view(page, PANEL_SVG), "the pinned diagram must be on the screen"
            page.screenshot(path=str(ARTIFACTS / "pinned_diagram.png"))

            # Running the diagram's cell again: still one panel, showing the new diagram.
            _run_cell(page, pinning)
            page.wait_for_function(
                f"""() => document.querySelectorAll('{PANEL}').length === 1
                      && [...document.querySelectorAll('{TOTALS}')]
                           .every(t => !t.textContent.includes('published 3'))""",
                timeout=20_000,
            )

            # Closing the diagram closes its panel.
            _run_cell(page, closing)
            page.wait_for_function(
                f"() => document.querySelectorAll('{PANEL}').length === 0", timeout=10_000
            )
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "pinned_diagram_failed.png"))
            raise
        finally:
            browser.close()


def _box(page, selector: str) -> dict[str, float]:
    return page.locator(selector).first.bounding_box()


def _in_view(page, selector: str) -> bool:
    """True when the element's box overlaps the browser's window."""
    return page.evaluate(
        """sel => {
            const el = document.querySelector(sel);
            if (!el) return false;
            const r = el.getBoundingClientRect();
            return r.width > 0 && r.bottom > 0 && r.right > 0
                && r.top < window.innerHeight && r.left < window.innerWidth;
        }""",
        selector,
    )


def _inline_diagram_in_view(page) -> bool:
    """True when the diagram in the notebook's own output shows inside the notebook's
    scrolled area (JupyterLab may also have taken it out of the page: then it is not)."""
    return page.evaluate(
        f"""() => {{
            const nb = {NOTEBOOK}.content.node;
            const box = nb.getBoundingClientRect();
            return [...nb.querySelectorAll('.jp-OutputArea-output .flowdiagram svg')]
                .filter(el => !el.closest('{PANEL}'))
                .some(el => {{
                    const r = el.getBoundingClientRect();
                    return r.height > 0 && r.bottom > box.top && r.top < box.bottom;
                }});
        }}"""
    )
