"""How long a learner waits for the broker.

Prints `name=value` lines:
- provision_s: building the reference RabbitMQ's root filesystem from nothing (debootstrap
  plus apt inside it), into a throwaway cache directory. Skipped with --skip-provision.
- cold_start_s: a new private node of the reference RabbitMQ, from nothing (fresh data dir)
  to AMQP and management both answering. Own directory, name and ports, so the checkout's
  node is untouched.
- warm_connect_s: a notebook's first broker cell when the node already runs: import pika and
  the helpers, find the broker, open a connection and a channel (in a fresh interpreter).
Targets (RabbitMQ 4 issue): cold_start_s <= 6 on 4.3, warm_connect_s <= 0.5.

Run: .venv/bin/python benchmarks/broker_start.py [--skip-provision]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FIRST_CELL = """
import time
t0 = time.perf_counter()
import pika
from helpers import find_broker
broker = find_broker()
credentials = pika.PlainCredentials(broker.username, broker.password)
params = pika.ConnectionParameters(host=broker.host, port=broker.port,
                                   virtual_host=broker.vhost, credentials=credentials)
connection = pika.BlockingConnection(params)
channel = connection.channel()
elapsed = time.perf_counter() - t0
connection.close()
print(elapsed)
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )


def provision_s() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-rootfs-") as tmp:
        env = {**os.environ, "TUTORIAL_CACHE_DIR": tmp}
        t0 = time.perf_counter()
        try:
            _cli(env, "rabbitmq", "provision")
            return time.perf_counter() - t0
        finally:
            _cli(env, "rabbitmq", "remove")


def cold_start_s() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        amqp, management, dist = _free_ports(3)
        env = {
            **os.environ,
            "TUTORIAL_BROKER": "private",
            "TUTORIAL_RABBITMQ": "reference",
            "TUTORIAL_NODE_DIR": tmp,
            "TUTORIAL_NODE_AMQP_PORT": str(amqp),
            "TUTORIAL_NODE_MANAGEMENT_PORT": str(management),
            "TUTORIAL_NODE_DIST_PORT": str(dist),
        }
        t0 = time.perf_counter()
        try:
            _cli(env, "broker", "start")  # returns once AMQP and management both answer
            return time.perf_counter() - t0
        finally:
            _cli(env, "broker", "stop")


def warm_connect_s(runs: int = 5) -> float:
    env = {**os.environ, "TUTORIAL_BROKER": "private"}
    _cli(env, "broker", "start")
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CELL],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    if "--skip-provision" not in sys.argv:
        print(f"provision_s={provision_s():.1f}")
    print(f"warm_connect_s={warm_connect_s():.3f}")
    print(f"cold_start_s={cold_start_s():.2f}")


if __name__ == "__main__":
    main()
