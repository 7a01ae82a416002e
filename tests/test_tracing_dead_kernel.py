"""A kernel that dies with a diagram open must not leave tracing on for good.

The "kernel" here is a real Python process that opens a FlowDiagram on a private vhost and is
then killed with SIGKILL, as a crashed or restarted Jupyter kernel is: alone, or with its
whole process group (what JupyterLab's restart does after a grace period). Either way its
firehose process, which runs in a session of its own, sees its input close and cleans up
within seconds. Only when the firehose process is killed too (the OOM killer, a machine-wide
kill) is tracing left on, and then the next diagram cleans up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from flow_support import private_vhost

from helpers import Broker
from helpers.flow.events import TRACING_MARK
from helpers.flow.tracing import diagram_trace_queues, reset_stale_tracing
from helpers.widgets import FlowDiagram

REPO = Path(__file__).resolve().parent.parent

KERNEL = """
import dataclasses, sys, time
from helpers import find_broker
from helpers.widgets import FlowDiagram
broker = dataclasses.replace(find_broker(start=False, progress=None, private_only=True),
                             vhost=sys.argv[1])
diagram = FlowDiagram(broker, prefix="deadkernel.")
print("diagram open", diagram.tracer._process.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "deadkernel") as b:
        yield b


CLEANUP_S = 5  # a dead kernel's firehose process has switched tracing off by then


def _start_kernel(vbroker: Broker, code: str = KERNEL) -> tuple[subprocess.Popen, int]:
    """A kernel with a diagram open, in a process group of its own (as Jupyter starts one),
    and the pid of its firehose process."""
    kernel = subprocess.Popen(
        [sys.executable, "-c", code, vbroker.vhost],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said, firehose = kernel.stdout.readline().rsplit(" ", 1)
    assert said == "diagram open"
    assert vbroker.management.tracing(vbroker.vhost)
    return kernel, int(firehose)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: its parent, the killed kernel, cannot reap it until init does.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _assert_its_firehose_process_cleaned_up(vbroker: Broker, firehose: int) -> None:
    api = vbroker.management
    deadline = time.monotonic() + CLEANUP_S
    while api.tracing(vbroker.vhost) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not api.tracing(vbroker.vhost), "its firehose process switched tracing off"
    assert api.exchange(TRACING_MARK, vbroker.vhost) is None
    assert diagram_trace_queues(api, vbroker.vhost) == []
    while not _gone(firehose) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(firehose), "the firehose process outlived its kernel"


def test_a_killed_kernel_leaves_no_tracing_on(vbroker):
    kernel, firehose = _start_kernel(vbroker)
    os.kill(kernel.pid, signal.SIGKILL)  # the kernel alone
    kernel.wait()
    _assert_its_firehose_process_cleaned_up(vbroker, firehose)


def test_a_killed_process_group_leaves_no_tracing_on(vbroker):
    """JupyterLab's restart kills the kernel's whole process group; the firehose process is
    not in it, so it lives on long enough to clean up, and then exits."""
    kernel, firehose = _start_kernel(vbroker)
    os.killpg(kernel.pid, signal.SIGKILL)
    kernel.wait()
    _assert_its_firehose_process_cleaned_up(vbroker, firehose)


FORKING_KERNEL = KERNEL.replace(
    'print("diagram open"',
    # A child forked without exec (multiprocessing's default on Linux) keeps a copy of the
    # pipe to the firehose process open: its input does not close when the kernel dies.
    'import os\nif os.fork() == 0:\n    time.sleep(600)\n    os._exit(0)\nprint("diagram open"',
)


def test_a_killed_kernel_whose_fork_holds_the_pipe_leaves_no_tracing_on(vbroker):
    kernel, firehose = _start_kernel(vbroker, FORKING_KERNEL)
    try:
        os.kill(kernel.pid, signal.SIGKILL)  # the kernel alone; its fork lives on
        kernel.wait()
        _assert_its_firehose_process_cleaned_up(vbroker, firehose)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kernel.pid, signal.SIGKILL)  # the fork


def test_a_kernel_killed_while_messages_flow_leaves_no_tracing_on(vbroker):
    """Its firehose process still has events to report to a pipe nobody reads any more."""
    kernel, firehose = _start_kernel(vbroker)
    stop = threading.Event()

    def publish() -> None:
        with pika.BlockingConnection(vbroker.connection_parameters()) as connection:
            channel = connection.channel()
            while not stop.is_set():
                channel.basic_publish("amq.direct", "deadkernel.nowhere", b"x")
                connection.process_data_events(0.001)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        time.sleep(0.5)
        os.kill(kernel.pid, signal.SIGKILL)  # the kernel alone, events still coming
        kernel.wait()
        time.sleep(1)
    finally:
        stop.set()
        publisher.join()
    _assert_its_firehose_process_cleaned_up(vbroker, firehose)


def _kill_a_kernel_with_a_diagram_open(vbroker: Broker) -> None:
    """Kill the kernel and its firehose process at once (the OOM killer, a machine-wide
    kill): nobody is left to switch tracing off."""
    kernel, firehose = _start_kernel(vbroker)
    os.kill(firehose, signal.SIGKILL)  # first, so that it cannot begin to clean up
    os.killpg(kernel.pid, signal.SIGKILL)
    kernel.wait()
    api = vbroker.management
    deadline = time.monotonic() + 10  # the broker drops the exclusive trace queue with it
    while diagram_trace_queues(api, vbroker.vhost) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert diagram_trace_queues(api, vbroker.vhost) == []
    assert api.tracing(vbroker.vhost), "nobody was left to switch it off"
    assert api.exchange(TRACING_MARK, vbroker.vhost) is not None


def test_next_diagram_switches_off_what_a_dead_kernel_left_on(vbroker):
    _kill_a_kernel_with_a_diagram_open(vbroker)
    diagram = FlowDiagram(vbroker, prefix="deadkernel.")
    assert vbroker.management.tracing(vbroker.vhost)
    diagram.close()
    api = vbroker.management
    assert not api.tracing(vbroker.vhost), "tracing was off before the dead kernel's diagram"
    assert api.exchange(TRACING_MARK, vbroker.vhost) is None


def test_reset_stale_tracing_switches_it_off_at_once(vbroker):
    _kill_a_kernel_with_a_diagram_open(vbroker)
    api = vbroker.management
    assert reset_stale_tracing(api, vbroker.vhost) is True
    assert not api.tracing(vbroker.vhost)
    assert api.exchange(TRACING_MARK, vbroker.vhost) is None
    assert reset_stale_tracing(api, vbroker.vhost) is False


def test_tracing_that_was_on_before_stays_on(vbroker):
    api = vbroker.management
    api.set_tracing(vbroker.vhost, True)  # as a classroom vhost has it
    diagram = FlowDiagram(vbroker, prefix="deadkernel.")
    assert api.exchange(TRACING_MARK, vbroker.vhost) is None
    diagram.close()
    assert api.tracing(vbroker.vhost)
    assert reset_stale_tracing(api, vbroker.vhost) is False
    assert api.tracing(vbroker.vhost)
