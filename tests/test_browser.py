"""The flow diagram in a real browser: JupyterLab 4 + Debian's Chromium, driven by Playwright.

A JupyterLab server starts on 127.0.0.1 (a free port, a random token) with a copy of
tests/browser_notebook.ipynb, whose kernel reaches a private vhost through AMQP_URL. Chromium
opens the notebook, runs every cell, and the test checks that the diagram's SVG (exchange,
queues, bindings, totals) was rendered by the stock widget manager, with no lab build. A
screenshot is kept in test-artifacts/ (git-ignored).

No skip: if Chromium is missing this fails and says how to install it (`make test` does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

import pytest
import requests
from diagram_checks import CHROMIUM, CHROMIUM_ARGS
from flow_support import private_vhost

from helpers import Broker

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _jupyterlab(root: Path, env: dict[str, str]) -> Iterator[str]:
    """A JupyterLab server on `root` (127.0.0.1, a free port, a random token): its base URL
    with `?token=` left for the caller to add, as (base, token)."""
    port, token = _free_port(), token_hex(16)
    env = {**env, "JUPYTER_CONFIG_DIR": str(root / ".config")}  # no user settings leak in
    log_path = root / ".lab.log"
    log = open(log_path, "wb")  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"{base}/api/status", params={"token": token}, timeout=1)
                if r.ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def kernel_env(vb: Broker) -> dict[str, str]:
    """The environment of a lab whose kernels reach the vhost broker `vb` through AMQP_URL."""
    user, password = quote(vb.username, safe=""), quote(vb.password, safe="")
    return dict(
        os.environ,
        AMQP_URL=f"amqp://{user}:{password}@{vb.host}:{vb.port}/{quote(vb.vhost, safe='')}",
        RABBITMQ_MANAGEMENT_URL=vb.management_url,
    )


@pytest.fixture
def lab(broker: Broker, tmp_path: Path) -> Iterator[tuple[str, Broker]]:
    """A JupyterLab server on a copy of the test notebook; yields (url, vhost broker)."""
    with private_vhost(broker, "browser") as vb:
        shutil.copy(REPO / "tests" / "browser_notebook.ipynb", tmp_path / "flow.ipynb")
        with _jupyterlab(tmp_path, kernel_env(vb)) as (base, token):
            yield f"{base}/lab/tree/flow.ipynb?token={token}", vb


def _chromium(p):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium); "
            "`make test` installs it when it can."
        )
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# The committed chapters whose pictures a newcomer sees first (each has flow diagrams).
UNTRUSTED = ["00_concepts.ipynb", "04_exchanges.ipynb"]


def test_committed_diagrams_show_in_an_untrusted_notebook(tmp_path: Path):
    """A newcomer opens a chapter without running it: JupyterLab does not trust it, so it
    sanitizes the outputs' HTML. The diagrams must still show as pictures, not text."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    for name in UNTRUSTED:
        shutil.copy(REPO / "notebooks" / name, tmp_path / name)
    ARTIFACTS.mkdir(exist_ok=True)
    # A newcomer's Jupyter has never signed these notebooks; this machine's may have (running
    # a notebook signs it in the user's data directory), so the server gets an empty one.
    env = dict(os.environ, JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"))
    with _jupyterlab(tmp_path, env) as (base, token), sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for name in UNTRUSTED:
                page.goto(f"{base}/lab/tree/{name}?token={token}")
                page.wait_for_selector(".jp-Notebook-cell", timeout=30_000)
                pictures = ".jp-OutputArea-output img.flow-static"
                page.wait_for_selector(pictures, state="attached", timeout=20_000)
                widths = page.evaluate(  # decode every picture: a broken one rejects
                    f"""() => Promise.all([...document.querySelectorAll('{pictures}')]
                          .map(i => i.decode().then(() => i.naturalWidth)))"""
                )
                assert widths and min(widths) > 100, f"{name}: pictures {widths}"
                page.evaluate(  # bring the first diagram into view for the screenshot
                    """async () => {
                        const nb = window.jupyterapp.shell.currentWidget.content;
                        const cells = [...nb.model.cells];
                        const i = cells.findIndex(c => JSON.stringify(c.toJSON().outputs || [])
                            .includes('flow-static'));
                        await nb.scrollToItem(i, 'start');
                    }"""
                )
                page.wait_for_timeout(500)
                shown = len(widths)
                committed = (REPO / "notebooks" / name).read_text().count("flow-static")
                assert shown >= 1 and committed >= 1, name
                # Nothing of an inline SVG leaked out as text (its labels, run together).
                soup = page.locator(".jp-OutputArea-output svg.flow-svg").count()
                assert soup == 0, f"{name}: inline SVG in an untrusted output"
                # JupyterLab settles a notebook's trust after it shows it (seen once: still
                # true right after opening, under load): wait for it, a few seconds at most.
                untrusted = (
                    "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(0)"
                    ".trusted === false"
                )
                try:
                    page.wait_for_function(untrusted, timeout=10_000)
                except PlaywrightTimeout:
                    pytest.fail(f"{name}: the copy must be opened untrusted")
                page.screenshot(path=str(ARTIFACTS / f"untrusted_{name}.png"))
        finally:
            browser.close()


def test_flow_diagram_renders_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, vb = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                timeout=30_000,
            )
            page.wait_for_selector(".jp-Notebook-cell", timeout=20_000)
            # The kernel must be up before running, else run-all may race its start.
            page.wait_for_function(
                """() => {
                    const w = window.jupyterapp.shell.currentWidget;
                    const k = w && w.sessionContext && w.sessionContext.session
                        && w.sessionContext.session.kernel;
                    return k && k.status === 'idle';
                }""",
                timeout=30_000,
            )
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            svg = ".jp-OutputArea-output .flowdiagram svg"
            page.wait_for_selector(f"{svg} g.queue", timeout=30_000)
            page.wait_for_function(
                f"""() => [...document.querySelectorAll('{svg} text.totals')]
                      .some(t => t.textContent.includes('published 2'))""",
                timeout=20_000,
            )
            page.wait_for_function(  # print(diagram) ran: the summary text
                """() => [...document.querySelectorAll('.jp-OutputArea-output pre')]
                      .some(p => p.textContent.includes('published=2 routed=3'))""",
                timeout=10_000,
            )
            page.wait_for_selector("button:has-text('Publish')", timeout=10_000)
            assert page.locator(f"{svg} g.exchange").count() >= 1
            names = page.locator(f"{svg} g.queue").evaluate_all(
                "els => els.map(e => e.getAttribute('data-name'))"
            )
            assert sorted(set(names)) == ["flowdev.all", "flowdev.errors"]
            assert page.locator(f"{svg} g.edge.binding").count() >= 2
            log = page.locator(".jp-OutputArea-output .flow-log").first.inner_text()
            assert "<img src=x onerror=alert(1)>" in log, "the body is shown as text"
            assert page.locator(".jp-OutputArea-output .flowdiagram img").count() == 0
            page.locator(".jp-OutputArea-output .flowdiagram").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "flow_diagram.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "flow_diagram_failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    # The kernel's diagram is still live until the server stops; tracing is on meanwhile.
    assert vb.management.tracing(vb.vhost)
