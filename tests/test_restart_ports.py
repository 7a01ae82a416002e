"""A restart whose MQTT or STOMP port another program takes meanwhile still comes back.

`restart_app` (chapter 02's restart cell) stops RabbitMQ inside the running Erlang VM: for a
few seconds the node's MQTT and STOMP ports are free, and a node starting beside it could
take one (seen in `make test`: chapter 02 on 3.10 failed with `eaddrinuse` on its STOMP
port while other nodes started). The node's AMQP trio is safe (the VM keeps the
distribution port); the protocol listeners move to free ports and the start is tried again.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from pathlib import Path

import pika
import pytest
import stomp

from conftest import throwaway_node
from helpers.node import Node, Ports, choose_runtime
from helpers.node.private import (
    DEFAULT_PORTS,
    DEFAULT_PROTOCOL_PORTS,
    PORT_CHOICES,
    RANDOM_PROTOCOL_PORTS,
)


def _squat(port: int, until: threading.Event, got: list[socket.socket]) -> None:
    """Bind `port` on 127.0.0.1 as soon as it is free, and listen on it until told to stop."""
    while not until.is_set():
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError as exc:
            s.close()
            assert exc.errno == errno.EADDRINUSE, exc
            time.sleep(0.005)
            continue
        got.append(s)
        return


def test_a_restart_moves_a_stolen_stomp_port_and_comes_back(tmp_path: Path):
    with throwaway_node(tmp_path / "node", "restart-ports") as node:
        before = node.ports
        assert before.stomp is not None and before.mqtt is not None
        stop, got = threading.Event(), []
        squatter = threading.Thread(target=_squat, args=(before.stomp, stop, got))
        squatter.start()
        try:
            node.restart_app()
        finally:
            stop.set()
            squatter.join()
        try:
            assert got, "the STOMP port was never free: the restart did not stop the listener"
            after = node.ports
            assert after.stomp != before.stomp, "the listener moved off the taken port"
            assert after.mqtt == before.mqtt, "a port nobody took stays"
            assert (after.amqp, after.management) == (before.amqp, before.management)
            assert (
                f"stomp.listeners.tcp.1 = 127.0.0.1:{after.stomp}"
                in (node.base / "rabbitmq.conf").read_text()
            ), "the next start uses the new port too"

            creds = node.credentials()
            client = stomp.Connection([("127.0.0.1", after.stomp)])
            client.connect(creds.username, creds.password, wait=True)
            assert client.is_connected()
            client.disconnect()
            login = pika.PlainCredentials(creds.username, creds.password)
            params = pika.ConnectionParameters("127.0.0.1", after.amqp, credentials=login)
            with pika.BlockingConnection(params) as connection:
                assert connection.is_open
        finally:
            for s in got:
                s.close()


def test_a_node_on_the_usual_ports_takes_protocol_ports_beside_its_trio(tmp_path: Path):
    """Never "the first free one from 61623 up": that is a restarting neighbour's port."""
    node = Node(tmp_path / "n", choose_runtime(progress=None), name="ports-unit@localhost")
    # A k whose MQTT and STOMP ports are free now (other tests' nodes take low ones).
    k = next(
        k
        for k in range(50, PORT_CHOICES)
        if all(_free(default + k) for default in DEFAULT_PROTOCOL_PORTS.values())
    )
    trio = Ports(*(p + k for p in DEFAULT_PORTS))
    held = []
    try:
        for protocol, default in DEFAULT_PROTOCOL_PORTS.items():
            chosen = getattr(node._with_protocol_ports(trio), protocol)
            assert chosen == default + k
        # With its own ports held by others, it draws at random, away from the neighbours.
        for default in DEFAULT_PROTOCOL_PORTS.values():
            held.append(_hold(default + k))
        ports = node._with_protocol_ports(trio)
        for protocol in DEFAULT_PROTOCOL_PORTS:
            assert RANDOM_PROTOCOL_PORTS[0] <= getattr(ports, protocol) < RANDOM_PROTOCOL_PORTS[1]
    finally:
        for s in held:
            s.close()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _hold(port: int) -> socket.socket:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        pytest.fail(f"port {port} is busy on this machine: the test needs it free")
    s.listen()
    return s
