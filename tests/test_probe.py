"""probe_amqp tells a broker, a dead port and some other program apart, quickly."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

from helpers.probe import PortState, port_is_free, probe_amqp


def test_broker_port_is_amqp(broker):
    assert probe_amqp(broker.host, broker.port) is PortState.AMQP


def test_closed_port(free_port):
    assert probe_amqp("127.0.0.1", free_port) is PortState.CLOSED
    assert port_is_free("127.0.0.1", free_port)


def test_http_port_is_other(broker):
    http_port = urlsplit(broker.management_url).port
    assert probe_amqp("127.0.0.1", http_port) is PortState.OTHER
    assert not port_is_free("127.0.0.1", http_port)


def test_silent_server_is_silent_within_the_timeout():
    """A program that accepts and never answers must not hang the probe."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        t0 = time.monotonic()
        state = probe_amqp("127.0.0.1", server.getsockname()[1], timeout=0.5)
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert state is PortState.SILENT  # a busy broker may still answer: the caller decides
    assert elapsed < 3
