"""The private node: loopback only, started once and reused, stopped cleanly, clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from helpers import node

REPO = Path(__file__).resolve().parent.parent


EPMD_PORT = 4369


def _listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, read from /proc/net (readable by all)."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # 0A = LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            if family == socket.AF_INET:
                raw = raw[::-1]
            else:  # /proc stores IPv6 as four little-endian 32-bit words
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def test_private_node_listens_on_loopback_only(broker):
    if broker.source != "private node":
        pytest.fail("this test checks the private node; unset AMQP_URL and stop other brokers")
    status = node.status()
    assert status.running and status.pid
    ours = {node.AMQP_PORT, node.MANAGEMENT_PORT, node.DIST_PORT, EPMD_PORT}
    sockets = {(address, port) for address, port in _listening() if port in ours}
    assert {port for _, port in sockets} == ours, f"expected listeners on {sorted(ours)}"
    exposed = [s for s in sockets if not _is_loopback(s[0])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_start_reuses_a_running_node(broker):
    if broker.source != "private node":
        pytest.fail("this test checks the private node")
    pid = node.status().pid
    assert node.start() is False
    assert node.status().pid == pid


def _second_node_env(tmp_path: Path, name: str, base_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AMQP_URL", None)
    env.update(
        TUTORIAL_NODE_NAME=name,
        TUTORIAL_NODE_DIR=str(tmp_path / "node"),
        TUTORIAL_NODE_AMQP_PORT=str(base_port),
        TUTORIAL_NODE_MANAGEMENT_PORT=str(base_port + 1),
        TUTORIAL_NODE_DIST_PORT=str(base_port + 2),
    )
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "helpers", "broker", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_node_starts_from_nothing_is_reused_and_stops(tmp_path):
    """The whole life of a private node, on its own ports so the shared one is untouched."""
    env = _second_node_env(tmp_path, "pika-tutorial-lifecycle@localhost", 5692)
    env["TUTORIAL_NODE_AMQP_PORT"] = "5692"
    try:
        first = _cli(env, "start")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Starting a private RabbitMQ node" in first.stdout
        assert "RabbitMQ is up after" in first.stdout
        second = _cli(env, "start")
        assert second.returncode == 0 and "Starting" not in second.stdout
        status = _cli(env, "status")
        assert "started by helpers: yes" in status.stdout
        assert "RabbitMQ version:   3." in status.stdout
        params = pika.ConnectionParameters("127.0.0.1", 5692, connection_attempts=1)
        with pika.BlockingConnection(params) as connection:
            assert connection.is_open
        assert (tmp_path / "node" / "mnesia").is_dir(), "data must live in the node dir"
    finally:
        stopped = _cli(env, "stop")
    assert stopped.returncode == 0 and "Stopped." in stopped.stdout
    after = _cli(env, "status", timeout=10)
    assert after.returncode == 1
    assert "No RabbitMQ broker is running" in after.stderr
    assert "Traceback" not in after.stderr


def test_a_node_that_cannot_start_shows_its_log(tmp_path, broker):
    """Same node name as the running node: Erlang refuses, and we show why."""
    if broker.source != "private node":
        pytest.fail("this test needs the private node running")
    env = _second_node_env(tmp_path, node.NODE_NAME, 5695)
    result = _cli(env, "start", timeout=100)
    assert result.returncode == 1
    assert "stopped while starting" in result.stderr
    assert "last" in result.stderr and "lines" in result.stderr  # the log excerpt
    assert "Traceback" not in result.stderr


def test_port_taken_by_another_program_is_explained(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = _second_node_env(tmp_path, "pika-tutorial-squat@localhost", 5698)
        env["TUTORIAL_NODE_AMQP_PORT"] = str(port)
        result = _cli(env, "start", timeout=30)
    assert result.returncode == 1
    assert f"Port {port}" in result.stderr and "taken by another program" in result.stderr
