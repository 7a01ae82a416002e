"""The IPython hook: a pika error the index knows gets the index's line under its traceback.

Each test runs cells in a fresh `InteractiveShell` in a subprocess (the shell is a
singleton, and the hook lives on it), against the real broker; one test runs a real Jupyter
kernel, which is what a chapter runs in. The hook is registered when the helpers are imported,
as a chapter's first cell does (`from helpers import find_broker`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import error_index

REPO = Path(__file__).resolve().parent.parent
P = f"errhook.{os.getpid()}."
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PRELUDE = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.colors = "nocolor"
def cell(source):
    print("<<<cell>>>", flush=True)
    result = shell.run_cell(source)
    print("<<<error:", type(result.error_in_exec).__name__, flush=True)
"""

FIRST_CELL = """
cell('''
import pika
from helpers import find_broker
broker = find_broker(progress=None)
params = pika.ConnectionParameters(
    host=broker.host, port=broker.port, virtual_host=broker.vhost,
    credentials=pika.PlainCredentials(broker.username, broker.password))
''')
"""


def run_cells(script: str, broker) -> list[tuple[list[str], str]]:
    """Run `script` (PRELUDE's `cell(...)` calls) in a new interpreter against `broker`;
    each cell's output lines (colours removed, blank lines dropped) and the name of the
    exception it raised ("NoneType" when none)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TUTORIAL_BROKER": "private",
        "AMQP_URL": "",
    }
    if broker is not None and broker.node is not None:
        env["TUTORIAL_RABBITMQ"] = broker.node.runtime.kind
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    cells = []
    for chunk in out.stdout.split("<<<cell>>>\n")[1:]:
        body, _, error = chunk.rpartition("<<<error: ")
        lines = [ANSI.sub("", line) for line in body.splitlines() if line.strip()]
        cells.append((lines, error.strip()))
    return cells


@pytest.fixture
def queue(broker):
    name = P + "tasks"
    yield name
    import pika

    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        connection.channel().queue_delete(name)


def test_a_redeclared_queue_keeps_its_traceback_and_gets_the_index_line(broker, queue):
    cells = run_cells(
        FIRST_CELL
        + f"""
cell('''
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_declare("{queue}", durable=True)
''')
cell('''
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_declare("{queue}")  # the re-run that forgot durable=True
''')
""",
        broker,
    )
    (first, none), (declared, ok), (lines, error) = cells
    assert (first, none, declared, ok) == ([], "NoneType", [], "NoneType")
    assert error == "ChannelClosedByBroker"
    assert any("Traceback" in line for line in lines), lines  # the usual traceback
    assert any('channel.queue_declare("' in line for line in lines), lines  # the learner's line
    assert lines[-2].startswith("ChannelClosedByBroker: (406, \"PRECONDITION_FAILED - "), lines
    entry = error_index.entry("406-inequivalent")
    assert lines[-1].startswith(entry.label + ": "), lines
    assert "(inequivalent arg 'durable')" in lines[-1] and lines[-1].endswith("(chapter 02)")
    assert entry.fix in lines[-1]


def test_the_error_is_the_last_error_as_ipython_keeps_it(broker, queue):
    """`sys.last_value` is the failed cell's error, as after any other error: chapter 07's
    check reads it (a 541 whose hook forgot it was judged by an earlier 406), and `%debug`
    finds it there."""
    cells = run_cells(
        FIRST_CELL
        + f"""
cell('raise KeyError("an earlier error")')
cell('''
with pika.BlockingConnection(params) as connection:
    connection.channel().queue_declare("{queue}", durable=True)
with pika.BlockingConnection(params) as connection:
    connection.channel().queue_declare("{queue}")
''')
cell('import sys\\nprint("last:", type(sys.last_value).__name__, sys.last_value.reply_code)')
""",
        broker,
    )
    (_first, _none), (_key, key_error), (lines, error), (printed, none) = cells
    assert (key_error, error, none) == ("KeyError", "ChannelClosedByBroker", "NoneType")
    assert lines[-1].endswith("(chapter 02)"), lines  # the hook drew it
    assert printed == ["last: ChannelClosedByBroker 406"], printed


def test_what_the_index_does_not_know_is_shown_as_before(broker):
    cells = run_cells(
        """
cell('print("no error, no change")')
cell('raise ValueError("Port could not be cast to integer value")')
cell('import pika.exceptions\\nraise pika.exceptions.DuplicateConsumerTag("ctag")')
cell('from helpers import BrokerUnavailable\\nraise BrokerUnavailable("Start the broker.")')
cell('import pika.exceptions\\nraise pika.exceptions.ConnectionBlockedTimeout("expired")')
"""
        + FIRST_CELL
        + """
cell('raise pika.exceptions.ConnectionBlockedTimeout("expired")')
cell('print("no error, no change")')
""",
        broker,
    )
    printed, value_error, unknown, tutorial, blocked, _first, blocked_after, printed_after = cells
    assert printed == printed_after == (["no error, no change"], "NoneType")
    # A learner's own ValueError that reads like pika's: no line (the hook asks who raised it).
    assert value_error[0][-1] == "ValueError: Port could not be cast to integer value"
    assert not any("chapter" in line for line in value_error[0])
    assert unknown[0][-1] == "DuplicateConsumerTag: ctag" and unknown[1] == "DuplicateConsumerTag"
    assert tutorial == (["BrokerUnavailable: Start the broker."], "BrokerUnavailable")
    # One line, before find_broker (this hook alone) and after (helpers.alarms' on top of it).
    for lines, error in (blocked, blocked_after):
        assert error == "ConnectionBlockedTimeout"
        assert len(lines) == 1, lines
        assert lines[0].startswith("ConnectionBlockedTimeout: The broker blocked this"), lines


def test_importing_twice_adds_one_line_and_one_handler(broker):
    cells = run_cells(
        FIRST_CELL
        + """
cell('''
import importlib
import helpers
importlib.reload(helpers)
from helpers.errors import install_error_hook
assert install_error_hook() and install_error_hook()
print(len(get_ipython().custom_exceptions))
''')
cell('''
with pika.BlockingConnection(params) as connection:
    connection.channel().basic_publish("errhook.no-such-exchange", "", b"x")
    connection.channel().queue_declare("errhook.x", passive=True)
''')
""",
        broker,
    )
    (_, _), (count, ok), (lines, error) = cells
    assert ok == "NoneType" and count == ["4"]  # AMQPError, ValueError, IndexError; blocked
    assert error in ("ChannelClosedByBroker",), lines
    assert sum("(chapter 04)" in line for line in lines) == 1, lines
    assert lines[-1].startswith("404 NOT_FOUND: The exchange or queue does not exist (no queue")


def test_in_a_jupyter_kernel_the_line_is_part_of_the_error_output(broker, queue):
    """What a notebook saves: the error output's traceback ends with the line; its ename and
    evalue (what nbval could compare) are pika's, unchanged."""
    jupyter_client = pytest.importorskip("jupyter_client")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUTORIAL_BROKER": "private", "AMQP_URL": ""}
    if broker.node is not None:
        env["TUTORIAL_RABBITMQ"] = broker.node.runtime.kind
    manager, client = jupyter_client.manager.start_new_kernel(
        kernel_name="python3", env=env, cwd=str(REPO)
    )
    try:
        outputs: list[dict] = []

        def run(source: str) -> None:
            client.execute_interactive(
                source, timeout=30, output_hook=lambda msg: outputs.append(msg)
            )

        run(textwrap.dedent(FIRST_CELL.split("'''")[1]))
        run(
            "with pika.BlockingConnection(params) as connection:\n"
            f"    connection.channel().queue_declare({queue!r}, durable=True)\n"
            "    connection.channel().queue_declare(" + repr(queue) + ")\n"
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["ename"] == "ChannelClosedByBroker"
    assert error["evalue"].startswith('(406, "PRECONDITION_FAILED - inequivalent arg')
    last = ANSI.sub("", error["traceback"][-1])
    assert last.startswith("406 PRECONDITION_FAILED (inequivalent arg): "), last
    assert last.endswith("(chapter 02)"), last
    assert len(error["traceback"]) > 3  # the usual traceback is still there
