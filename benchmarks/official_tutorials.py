"""Run RabbitMQ's official Python tutorials 1-6 with a flow diagram attached; compare totals.

The diagram promises to show what the broker did for any program, not only the chapters'.
This runs the official tutorials (https://github.com/rabbitmq/rabbitmq-tutorials, directory
`python/`), unmodified but for the port, against a throwaway private node, and prints the
diagram's totals next to the broker's own counters (the vhost's message_stats, less the
diagram's own sync markers and trace deliveries). Exit status 1 when they differ.

The tutorials log in as guest/guest on localhost, so the throwaway node gets that user; it
listens on 127.0.0.1 only and is deleted at the end.

Run: .venv/bin/python benchmarks/official_tutorials.py PATH/TO/rabbitmq-tutorials/python
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.broker import private_node_broker  # noqa: E402
from helpers.node import Node, choose_runtime  # noqa: E402
from helpers.widgets import FlowDiagram  # noqa: E402

SCRIPTS = (
    "send.py", "receive.py", "new_task.py", "worker.py", "emit_log.py", "receive_logs.py",
    "emit_log_direct.py", "receive_logs_direct.py", "emit_log_topic.py",
    "receive_logs_topic.py", "rpc_server.py", "rpc_client.py",
)  # fmt: skip
SETTLE_S = 1.5  # for a consumer started in the background to be subscribed


def copy_with_port(source: Path, target: Path, port: int) -> None:
    """The tutorials as published, pointed at our node's port instead of 5672."""
    for name in SCRIPTS:
        text = (source / name).read_text()
        text, found = re.subn(r"host=(['\"])localhost\1", f"host='localhost', port={port}", text)
        if not found:
            raise SystemExit(f"{name}: no host='localhost' to point at port {port}")
        (target / name).write_text(text)


class Programs:
    """The tutorials' processes: consumers in the background, senders run to the end."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.background: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        self.background.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=self.cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=self.cwd, capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        for p in self.background:
            p.terminate()
        for p in self.background:
            p.wait()


def tutorials(programs: Programs) -> None:
    """Tutorials 1-6 in order, each consumer subscribed before its producer sends."""
    programs.start("receive.py")
    time.sleep(SETTLE_S)
    for _ in range(3):
        programs.run("send.py")
    programs.start("worker.py")
    programs.start("worker.py")
    time.sleep(SETTLE_S)
    for i in range(4):
        programs.run("new_task.py", f"task {i}")
    programs.start("receive_logs.py")
    programs.start("receive_logs.py")
    time.sleep(SETTLE_S)
    for i in range(3):
        programs.run("emit_log.py", f"log {i}")
    programs.start("receive_logs_direct.py", "error")
    programs.start("receive_logs_direct.py", "info", "warning")
    time.sleep(SETTLE_S)
    for severity in ("error", "info", "debug"):  # "debug": nobody listens, unroutable
        programs.run("emit_log_direct.py", severity, f"{severity} message")
    programs.start("receive_logs_topic.py", "#")
    programs.start("receive_logs_topic.py", "kern.*")
    time.sleep(SETTLE_S)
    for key in ("kern.critical", "anonymous.info"):
        programs.run("emit_log_topic.py", key, "hello")
    programs.start("rpc_server.py")
    time.sleep(SETTLE_S)
    for _ in range(3):  # a connection and a server-named reply queue per call
        print(programs.run("rpc_client.py").strip().splitlines()[-1])


def broker_counters(api, diagram: FlowDiagram) -> dict[str, int]:
    """The vhost's counters less the diagram's own traffic, once they hold still."""
    previous: dict[str, int] | None = None
    for _ in range(10):
        stats = api.get("vhosts/%2F").get("message_stats") or {}
        counters = {
            "published": int(stats.get("publish", 0)) - diagram.tracer.markers_sent,
            "delivered": int(stats.get("deliver_get", 0)) - diagram.tracer.received,
            "unroutable": int(stats.get("drop_unroutable", 0)),
        }
        if counters == previous:
            break
        previous = counters
        time.sleep(1.2)
    return counters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the tutorials' python/ directory")
    source = parser.parse_args().source
    work = Path(tempfile.mkdtemp(prefix="official-tutorials-"))
    node = Node(work / "node", choose_runtime(progress=None), name="official-tutorials@localhost")
    programs = Programs(work / "python")
    (work / "python").mkdir()
    try:
        node.start(print)  # on the first free ports from 5682 on
        copy_with_port(source, work / "python", node.ports.amqp)
        broker = private_node_broker(node)
        api = broker.management
        api.put_user("guest", "guest", ["administrator"])
        api.set_permissions("/", "guest")
        with FlowDiagram(broker, prefix="") as diagram:
            tutorials(programs)
            caught = diagram.wait_until_caught_up(timeout=10)
            totals = diagram.state.totals()
            broker_says = broker_counters(api, diagram)
            print(diagram.summary())
    finally:
        programs.stop()
        node.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"caught_up={bool(caught)}")
    same = True
    for key, value in broker_says.items():
        print(f"{key}: diagram={totals[key]} broker={value}")
        same = same and totals[key] == value
    print("totals equal the broker's counters" if same else "TOTALS DIFFER")
    return 0 if same and caught else 1


if __name__ == "__main__":
    sys.exit(main())
