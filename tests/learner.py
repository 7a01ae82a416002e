"""Act out a learner working through a chapter, on a real kernel and a real broker.

nbval checks what Run All does. A person does more: reads for minutes between sections,
runs cells again, leaves the exercise empty, makes the mistake the chapter is about, stops a
cell that blocks, and clicks Publish after the chapter's cleanup. `run_learner_session`
does all of that with nbclient, one cell at a time, against the learner node: a private
node whose heartbeat is 1 s, so that "a pause of several minutes" (a connection left idle
past two heartbeats, which the broker then drops) takes `PAUSE_S` seconds to act out.

Each chapter gets its own vhost on that node (the kernel sees it as AMQP_URL), so chapters
can run side by side. Chapter 02's restart is skipped there: the node is not the chapter's
own private node (`restart_private_node` says so).

Notebook conventions this relies on (see docs/authoring.md):
- the learner's exercise cell is a code cell tagged `exercise` holding only comments;
- the cell after it, tagged `check`, calls the chapter's `check_exercise(...)`, which shows
  "✅ ..." or "❌ <hint>";
- a markdown cell tagged `solution` holds the solution as a ```python block, inside a
  collapsed <details>: Run All and Shift+Enter never run it; this file does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat
from flow_support import private_vhost
from jupyter_core.paths import jupyter_runtime_dir
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from helpers import Broker
from helpers.broker import private_node_broker
from helpers.node import Node, choose_runtime

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
HEARTBEAT_S = 1
PAUSE_S = 3.5  # the broker dropped an idle connection 3.0 s into a pause (heartbeat 1 s)
CELL_TIMEOUT_S = 60


@dataclass(frozen=True)
class WrongAnswer:
    """Code a learner plausibly writes instead of the solution, and the hint it must get."""

    code: str
    hint: str  # a phrase the check's message must contain (naming the mistake)
    why: str = ""  # what the mistake is, for the test's failure message


@dataclass(frozen=True)
class Interruption:
    """A blocking call the learner starts and stops with the ■ button, before `before`."""

    before: str  # text of the section heading (## ...) before which it happens
    code: str
    after_s: float = 1.5


@dataclass(frozen=True)
class Chapter:
    notebook: str
    wrong_answers: tuple[WrongAnswer, ...]
    interruptions: tuple[Interruption, ...] = ()
    # Extra code run after the chapter (e.g. a second check that nothing lingers).
    finally_code: tuple[str, ...] = field(default=())
    # Longer than any cell of the chapter may take by its own bounds: reached, it is a hang.
    cell_timeout_s: float = CELL_TIMEOUT_S


# -- the learner node ------------------------------------------------------------------------


def learner_node() -> Node:
    """The node the learner sessions use: same RabbitMQ as the suite, heartbeat 1 s."""
    runtime = choose_runtime(progress=None)
    return Node(REPO / ".rabbitmq" / f"learner-{runtime.kind}", runtime, heartbeat=HEARTBEAT_S)


@contextmanager
def chapter_vhost(broker: Broker, chapter: Chapter) -> Iterator[Broker]:
    """A fresh vhost for one chapter's session, deleted afterwards with all it holds. The
    chapter sees it as AMQP_URL: a broker that is not its own private node."""
    with private_vhost(broker, chapter.notebook[:2], kind="learner") as vbroker:
        yield dataclasses.replace(vbroker, source="AMQP_URL", started_by_helpers=False, node=None)


def start_learner_broker() -> Broker:
    node = learner_node()
    node.start()
    return private_node_broker(node)


# -- driving a kernel ------------------------------------------------------------------------


def _text(outputs: list) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)


def _ipc_kernels() -> Config:
    """Kernels that talk over Unix sockets (files) instead of TCP ports.

    Over TCP, jupyter_client picks five free ports and the kernel binds them a moment later;
    on a busy machine an outgoing connection took one in between once ("Address already in
    use": the kernel died before replying to kernel_info). Socket files have no such race.
    They go where jupyter_client keeps connection files, and it deletes them with the kernel.
    """
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(runtime / f"kernel-{uuid.uuid4().hex}-ipc")
    return config


class Session:
    """One kernel running one notebook, cell by cell."""

    def __init__(self, chapter: Chapter, vbroker: Broker):
        self.chapter = chapter
        self.nb = nbformat.read(NOTEBOOKS / chapter.notebook, as_version=4)
        self.client = NotebookClient(
            self.nb,
            config=_ipc_kernels(),
            timeout=chapter.cell_timeout_s,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        url = (
            f"amqp://{quote(vbroker.username, safe='')}:{quote(vbroker.password, safe='')}"
            f"@{vbroker.host}:{vbroker.port}/{quote(vbroker.vhost, safe='')}"
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TUTORIAL_BROKER")},
            "AMQP_URL": url,
            "RABBITMQ_MANAGEMENT_URL": vbroker.management_url,
            # The node's own MQTT and STOMP ports (chapter 09), not the usual 1883 and 61613.
            **{
                name: str(port)
                for name, port in (
                    ("MQTT_PORT", vbroker.mqtt_port),
                    ("STOMP_PORT", vbroker.stomp_port),
                )
                if port
            },
        }
        self.log: list[str] = []

    def cell_label(self, index: int) -> str:
        source = self.nb.cells[index].source.strip().splitlines()
        return f"{self.chapter.notebook} cell {index} ({source[0][:60] if source else 'empty'})"

    def run(self, index: int, allow_error: bool = False) -> str:
        cell = self.nb.cells[index]
        raises = "raises-exception" in cell.metadata.get("tags", []) or (
            "NBVAL_RAISES_EXCEPTION" in cell.source
        )
        try:
            self.client.execute_cell(cell, index)
        except CellExecutionError as exc:
            if not (allow_error or raises):
                raise AssertionError(f"{self.cell_label(index)} failed:\n{exc}") from None
        text = _text(cell.outputs)
        self.log.append(f"[{index}] {text[:200]}")
        return text

    def run_code(self, code: str, allow_error: bool = False) -> str:
        """Run code typed by the learner in a new cell at the end of the notebook."""
        self.nb.cells.append(nbformat.v4.new_code_cell(code))
        return self.run(len(self.nb.cells) - 1, allow_error=allow_error)

    def interrupt(self) -> None:
        """What the ■ button does for an IPython kernel: SIGINT to its process."""
        os.kill(self.client.km.provisioner.process.pid, signal.SIGINT)

    def interrupt_during(self, code: str, after_s: float) -> str:
        """Run blocking code and press ■ after `after_s` seconds."""
        timer = threading.Timer(after_s, self.interrupt)
        timer.start()
        try:
            return self.run_code(code, allow_error=True)
        finally:
            timer.cancel()


def solution_code(nb: nbformat.NotebookNode) -> str:
    """The ```python block of the markdown cell tagged `solution`."""
    cells = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a chapter has exactly one markdown cell tagged 'solution'"
    assert cells[0].cell_type == "markdown", "the solution must not be runnable (markdown)"
    blocks = re.findall(r"```python\n(.*?)```", cells[0].source, re.S)
    assert len(blocks) == 1, "the solution cell holds one ```python block"
    return blocks[0]


def _tagged(nb: nbformat.NotebookNode, tag: str) -> int:
    found = [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]
    assert len(found) == 1, f"a chapter has exactly one cell tagged {tag!r}, found {found}"
    return found[0]


def run_learner_session(chapter: Chapter, broker: Broker) -> list[str]:
    """Work through `chapter` as a learner would; fail with what went wrong. Returns a log."""
    with chapter_vhost(broker, chapter) as vbroker:
        session = Session(chapter, vbroker)
        nb = session.nb
        exercise, check = _tagged(nb, "exercise"), _tagged(nb, "check")
        assert check == exercise + 1, "the check cell comes right after the learner's cell"
        assert not [
            line
            for line in nb.cells[exercise].source.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ], "the learner's exercise cell holds only comments"
        solution = solution_code(nb)
        interruptions = {i.before: i for i in chapter.interruptions}
        used: set[str] = set()
        original = len(nb.cells)
        with session.client.setup_kernel(env=session.env):
            for index in range(original):
                cell = nb.cells[index]
                if cell.cell_type == "markdown":
                    heading = re.match(r"##\s+(.*)", cell.source)
                    if heading:
                        time.sleep(PAUSE_S)  # reading: every idle connection dies meanwhile
                        for before, interruption in interruptions.items():
                            if before in heading.group(1) and before not in used:
                                used.add(before)
                                session.interrupt_during(interruption.code, interruption.after_s)
                    continue
                if index == check:
                    _exercise(session, check, solution)
                    continue
                session.run(index)
                session.run(index)  # every cell can be run twice
            missing = set(interruptions) - used
            assert not missing, f"no section heading matched {missing}"
            _publish_from_every_panel(session, vbroker)
            for code in chapter.finally_code:
                session.run_code(code)
            _nothing_left(vbroker)
    return session.log


def _exercise(session: Session, check: int, solution: str) -> None:
    chapter = session.chapter
    empty = session.run(check)
    assert "❌" in empty, f"{chapter.notebook}: the empty exercise must get a hint, got {empty!r}"
    assert len(chapter.wrong_answers) >= 2, "two typical wrong answers per chapter at least"
    for wrong in chapter.wrong_answers:
        session.run_code(wrong.code, allow_error=True)
        got = session.run(check)
        assert "❌" in got and wrong.hint in got, (
            f"{chapter.notebook}: a wrong answer ({wrong.why or wrong.code[:60]}) should get a "
            f"hint containing {wrong.hint!r}, got {got!r}"
        )
    session.run_code(solution)
    solved = session.run(check)
    assert "✅" in solved, f"{chapter.notebook}: the solution does not pass its check: {solved!r}"
    again = session.run(check)
    assert "✅" in again, f"{chapter.notebook}: checking twice changed the answer: {again!r}"


PANELS = """
import json as _json
from helpers.widgets import PublishPanel as _Panel
_results = [p.publish_from_form() for p in list(globals().values()) if isinstance(p, _Panel)]
print(_json.dumps(_results))
"""


def _publish_from_every_panel(session: Session, vbroker: Broker) -> None:
    """After the chapter's cleanup, every panel answers in one line, with no traceback,
    and leaves no connection behind."""
    results = json.loads(session.run_code(PANELS).strip().splitlines()[-1])
    for text in results:
        assert "\n" not in text and "Traceback" not in text, text
    api = vbroker.management

    def panel_connections() -> list[str]:
        return [
            c["name"]
            for c in api.connections()
            if c.get("vhost") == vbroker.vhost
            and c.get("client_properties", {}).get("connection_name") == "tutorial publish panel"
        ]

    deadline = time.monotonic() + 5
    while panel_connections() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not panel_connections(), "a publish panel left its connection open"


def _nothing_left(vbroker: Broker) -> None:
    """After the cleanup: no connection open in the chapter's vhost (diagrams, cells, workers,
    stopped consumers) and no tracing left on."""
    api = vbroker.management
    deadline = time.monotonic() + 10  # the API lists connections from statistics

    def left() -> list[str]:
        return [
            c.get("client_properties", {}).get("connection_name") or c["name"]
            for c in api.vhost_connections(vbroker.vhost)
        ]

    while left() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not left(), f"connections left open after the cleanup: {left()}"
    assert not api.tracing(vbroker.vhost), "tracing is still on after the cleanup"
