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
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

import pytest
import requests
from flow_support import private_vhost

from helpers import Broker

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(broker: Broker, tmp_path: Path) -> Iterator[tuple[str, Broker]]:
    """A JupyterLab server on a copy of the test notebook; yields (url, vhost broker)."""
    with private_vhost(broker, "browser") as vb:
        shutil.copy(REPO / "tests" / "browser_notebook.ipynb", tmp_path / "flow.ipynb")
        port, token = _free_port(), token_hex(16)
        env = dict(os.environ)
        user, password = quote(vb.username, safe=""), quote(vb.password, safe="")
        env["AMQP_URL"] = f"amqp://{user}:{password}@{vb.host}:{vb.port}/{quote(vb.vhost, safe='')}"
        env["RABBITMQ_MANAGEMENT_URL"] = vb.management_url
        env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")  # no user settings leak in
        log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
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
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
                time.sleep(0.2)
            yield f"{base}/lab/tree/flow.ipynb?token={token}", vb
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def test_flow_diagram_renders_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, vb = lab
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium); "
            "`make test` installs it when it can."
        )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
