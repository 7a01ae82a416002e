"""How long a learner waits for the broker.

Prints `name=value` lines:
- provision_s: building the reference RabbitMQ's root filesystem from nothing (debootstrap
  plus apt inside it), into a throwaway cache directory. Skipped with --skip-provision.
- cold_start_s: a new private node of the reference RabbitMQ, from nothing (fresh data dir)
  to AMQP and management both answering. Own directory, name and ports, so the checkout's
  node is untouched.
- warm_connect_s: a notebook's first broker cell when the node already runs: import pika and
  the helpers, find the broker, open a connection and a channel (in a fresh interpreter).
- cluster_start_s: chapter 10's three-node cluster, from nothing (fresh directories, the
  runtime cached) to the three nodes answering as one cluster; cluster_memory_mb: the three
  Erlang VMs' resident memory right after.
- failover_s: a publisher with confirms (one message every 4 ms, to a quorum queue led by
  node1) and a consumer with manual acks, both connected to node1 with the three nodes in
  their list of hosts; node1 is killed (SIGKILL). failover_s is the time from the kill to the
  next confirm; leader_election_s when the management API first names a new leader;
  confirmed, received, duplicates and lost are counted by message id.
Targets (RabbitMQ 4 issue): cold_start_s <= 6 on 4.3, warm_connect_s <= 0.5; (issue 18)
cluster_start_s <= 20 with about 500 MB for the three nodes.

Run: .venv/bin/python benchmarks/broker_start.py [--skip-provision] [--cluster-only]
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


def cluster_run() -> dict[str, float | int]:
    """Start a fresh cluster in a throwaway directory, kill a leader under traffic, count."""
    import threading

    import pika

    sys.path.insert(0, str(REPO))
    from helpers.demo.ch10 import (
        Book,
        Fault,
        count,
        demo_consumer,
        run_in_thread,
        wait_until_received,
    )
    from helpers.node import choose_runtime
    from helpers.node.cluster import Cluster

    out: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = Cluster(Path(tmp) / "bench-cluster", choose_runtime(progress=None))
        t0 = time.perf_counter()
        cluster.start()
        out["cluster_start_s"] = time.perf_counter() - t0
        try:
            time.sleep(2)  # let the management plugins settle before reading memory
            out["cluster_memory_mb"] = sum(cluster.memory_mb().values())
            broker = cluster.broker()
            hosts = broker.connection_parameters(connection_attempts=3, retry_delay=0.5,
                                                 socket_timeout=2)
            queue = "bench.failover"
            with pika.BlockingConnection(hosts[0]) as connection:
                connection.channel().queue_declare(queue, durable=True,
                                                   arguments={"x-queue-type": "quorum"})
            book, stop = Book(), threading.Event()

            def publish() -> None:
                pending = [f"m-{n:05}" for n in range(1500)]
                attempt = 0
                while pending and not stop.is_set():
                    k = attempt % len(hosts)
                    try:
                        with pika.BlockingConnection(hosts[k:] + hosts[:k]) as connection:
                            channel = connection.channel()
                            channel.confirm_delivery()
                            while pending:
                                channel.basic_publish("", queue, b"x", pika.BasicProperties(
                                    message_id=pending[0], delivery_mode=2))
                                book.confirm(pending.pop(0))
                                time.sleep(0.004)
                    except pika.exceptions.AMQPError as exc:
                        book.dropped("publisher", exc)
                        attempt += 1
                        time.sleep(0.1)

            consumer = run_in_thread(demo_consumer, hosts, queue, book, broker, stop)
            publisher = run_in_thread(publish)
            fault = Fault(broker, queue, after_s=2.0).start(book)
            publisher.join(120)
            wait_until_received(book, 60)
            stop.set()
            consumer.join(10)
            fault.join()
            result = count(book)
            killed_at = fault.killed_at or 0.0
            # From the kill to the first confirm on the publisher's next connection (a confirm
            # that was already on its way when the node died does not count).
            drops = [t for t, who, _ in book.drops if who == "publisher" and t >= killed_at]
            since = drops[0] if drops else killed_at
            after = [t for t, _ in book.confirmed if t > since]
            out["failover_s"] = (after[0] - killed_at) if after else -1
            out["leader_election_s"] = ((fault.elected_at or -1) - (fault.killed_at or 0))
            out["confirmed"] = result.confirmed
            out["received"] = result.received
            out["duplicates"] = result.duplicates
            out["lost"] = len(result.lost)
        finally:
            cluster.stop()
    return out


def main() -> None:
    if "--cluster-only" not in sys.argv:
        if "--skip-provision" not in sys.argv:
            print(f"provision_s={provision_s():.1f}")
        print(f"warm_connect_s={warm_connect_s():.3f}")
        print(f"cold_start_s={cold_start_s():.2f}")
    for name, value in cluster_run().items():
        print(f"{name}={value:.2f}" if isinstance(value, float) else f"{name}={value}")


if __name__ == "__main__":
    main()
