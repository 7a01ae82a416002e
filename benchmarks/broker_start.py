"""How long a learner waits for the broker.

Prints `name=value` lines; the last one is the headline.
- cold_start_s: a new private node, from nothing (fresh data dir) to AMQP and management both
  answering. Started on its own ports and node name so a running tutorial node is untouched.
- warm_connect_s: a notebook's first broker cell when the node already runs: import pika and
  the helpers, find the broker, open a connection and a channel (in a fresh interpreter).
Targets (issue #2): cold_start_s <= 12, warm_connect_s <= 0.5.

Run: .venv/bin/python benchmarks/broker_start.py
"""

from __future__ import annotations

import os
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


def _cli(env: dict[str, str], action: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "helpers", "broker", action],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=180,
    )


def cold_start_s() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        env = dict(os.environ)
        env.pop("AMQP_URL", None)
        env.update(
            TUTORIAL_NODE_NAME="pika-tutorial-bench@localhost",
            TUTORIAL_NODE_DIR=tmp,
            TUTORIAL_NODE_AMQP_PORT="5702",
            TUTORIAL_NODE_MANAGEMENT_PORT="15702",
            TUTORIAL_NODE_DIST_PORT="25702",
        )
        t0 = time.perf_counter()
        try:
            _cli(env, "start")  # returns once AMQP and management both answer
            return time.perf_counter() - t0
        finally:
            _cli(env, "stop")


def warm_connect_s(runs: int = 5) -> float:
    subprocess.run(
        [sys.executable, "-m", "helpers", "broker", "start"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=180,
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CELL],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    warm = warm_connect_s()
    print(f"warm_connect_s={warm:.3f}")
    cold = cold_start_s()
    print(f"cold_start_s={cold:.2f}")


if __name__ == "__main__":
    main()
