"""Fixtures shared by the helper tests: the real broker, found (or started) once."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pika
import pytest

from helpers import Broker, find_broker


@pytest.fixture(scope="session")
def broker() -> Broker:
    return find_broker(start=True, progress=print)


@pytest.fixture
def params(broker: Broker) -> pika.ConnectionParameters:
    return broker.connection_parameters(
        connection_attempts=1,
        socket_timeout=2,
    )


@pytest.fixture
def connection(params: pika.ConnectionParameters) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(params)
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
