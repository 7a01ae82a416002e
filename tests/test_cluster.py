"""The three-node cluster of chapter 10 (helpers/node/cluster.py), on the suite's RabbitMQ.

It runs in a directory of its own (`.rabbitmq/test-<kind>-cluster`), which the tests of
chapter 10's check share one module at a time (a lock file), since they kill its nodes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pika
from cluster_fixture import cluster_under_test  # noqa: F401 - the fixture

from helpers.flow.events import TRACING_MARK

REPO = Path(__file__).resolve().parent.parent


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hexport = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_three_nodes_one_cluster(cluster_under_test):  # noqa: F811
    cluster = cluster_under_test.cluster
    assert cluster.members() == ["node1", "node2", "node3"]
    assert [n.short for n in cluster.ready()] == ["node1", "node2", "node3"]
    # The same administrator everywhere: what a node knows, the cluster knows.
    for node in cluster.nodes:
        assert [u["name"] for u in cluster.api(node).users()] == [cluster_under_test.username]


def test_a_second_start_finds_it_running(cluster_under_test):  # noqa: F811
    t0 = time.monotonic()
    assert cluster_under_test.cluster.start() is False
    assert time.monotonic() - t0 < 3


def test_every_listener_is_on_loopback(cluster_under_test):  # noqa: F811
    for node in cluster_under_test.cluster.nodes:
        for port in (node.ports.amqp, node.ports.management, node.ports.dist):
            addresses = _listening(port)
            assert addresses, f"{node.short}: nothing listens on {port}"
            assert set(addresses) <= {"0100007F", "00000000000000000000000001000000"}, (
                node.short, port, addresses)
    assert not any(a.strip("0") == "" for a in _listening(4369)), "epmd listens on 0.0.0.0"


def test_definitions_are_shared_and_tracing_is_per_node(cluster_under_test):  # noqa: F811
    hosts = cluster_under_test.connection_parameters()
    with pika.BlockingConnection(hosts[0]) as connection:
        connection.channel().queue_declare("test.cluster.shared", durable=True)
    try:
        with pika.BlockingConnection(hosts[2]) as connection:
            connection.channel().queue_declare("test.cluster.shared", passive=True)
        cluster = cluster_under_test.cluster
        cluster.api("node2").set_tracing("/", True)
        assert cluster.tracing("/") == {"node1": False, "node2": True, "node3": False}
        assert cluster.set_tracing("/", False) == ["node1", "node2", "node3"]
        assert not any(cluster.tracing("/").values())
    finally:
        with pika.BlockingConnection(hosts) as connection:
            connection.channel().queue_delete("test.cluster.shared")


def test_a_diagram_sees_every_node(cluster_under_test):  # noqa: F811
    """Tracing is per node: the diagram switches it on all three, so a message published
    through node2 and consumed through node3, on a queue led by node1, is counted."""
    from helpers.view.diagram import FlowDiagram

    cluster = cluster_under_test.cluster
    hosts = cluster_under_test.connection_parameters()
    queue = "test.cluster.traced"
    with pika.BlockingConnection(hosts[0]) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    diagram = FlowDiagram(cluster_under_test, prefix="test.cluster.")
    try:
        assert cluster_under_test.queue_state(queue).leader == "node1"
        assert cluster.tracing("/") == {"node1": True, "node2": True, "node3": True}
        hosts[1].client_properties = {"connection_name": "test.cluster.publisher"}
        hosts[2].client_properties = {"connection_name": "test.cluster.consumer"}
        with pika.BlockingConnection(hosts[1]) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            for i in range(3):
                channel.basic_publish("", queue, f"message {i}".encode())
        with pika.BlockingConnection(hosts[2]) as connection:
            channel = connection.channel()
            got = [channel.basic_get(queue, auto_ack=True)[2] for _ in range(3)]
        assert got == [b"message 0", b"message 1", b"message 2"]
        assert diagram.wait_until_caught_up().ok
        assert diagram.state.totals() == {
            "published": 3, "routed": 3, "unroutable": 0, "delivered": 3, "redelivered": 0}
    finally:
        diagram.close()
        with pika.BlockingConnection(hosts[0]) as connection:
            connection.channel().queue_delete(queue)
    assert cluster.tracing("/") == {"node1": False, "node2": False, "node3": False}
    assert cluster.api().exchange(TRACING_MARK, "/") is None


def test_the_leader_moves_when_its_node_is_killed(cluster_under_test):  # noqa: F811
    hosts = cluster_under_test.connection_parameters(connection_attempts=2, retry_delay=0.2)
    with pika.BlockingConnection(hosts[0]) as connection:
        channel = connection.channel()
        channel.queue_delete("test.cluster.quorum")
        channel.queue_declare("test.cluster.quorum", durable=True,
                              arguments={"x-queue-type": "quorum"})
    cluster = cluster_under_test.cluster
    try:
        assert cluster_under_test.queue_state("test.cluster.quorum").leader == "node1"
        cluster.kill("node1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = cluster_under_test.queue_state("test.cluster.quorum")
            if state.leader in ("node2", "node3"):
                break
            time.sleep(0.1)
        assert state.leader in ("node2", "node3")
        assert state.online == ["node2", "node3"]
        with pika.BlockingConnection(hosts) as connection:  # pika skips the dead node
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("", "test.cluster.quorum", b"after the failover")
    finally:
        cluster.start_nodes(["node1"])
        with pika.BlockingConnection(hosts) as connection:
            connection.channel().queue_delete("test.cluster.quorum")


def test_memory_budget(cluster_under_test):  # noqa: F811
    memory = cluster_under_test.cluster.memory_mb()
    assert len(memory) == 3
    assert sum(memory.values()) < 600, memory  # about 430 MB measured on 4.3.6


def test_cli_status(cluster_under_test):  # noqa: F811
    import os

    env = {**os.environ, "TUTORIAL_CLUSTER_DIR": str(cluster_under_test.cluster.base)}
    out = subprocess.run([sys.executable, "-m", "helpers", "cluster", "status"], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "members:  node1, node2, node3" in out.stdout
    assert "password" in out.stdout and cluster_under_test.password not in out.stdout


def test_short_names(cluster_under_test):  # noqa: F811
    cluster = cluster_under_test.cluster
    full = cluster.node("node1").name
    assert cluster.short(full) == "node1"
    assert cluster.short("elsewhere@host") == "elsewhere@host"
