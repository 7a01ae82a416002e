"""Fixtures shared by the helper tests: this checkout's private node, found (or started) once.

The suite is hermetic: it tests its own private node whatever runs on 127.0.0.1:5672 and
whatever AMQP_URL says. Both are removed from the environment here, so a test that wants
AMQP_URL sets it itself, and subprocesses see neither.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import pytest

from helpers import Broker, find_broker

if TYPE_CHECKING:
    from helpers.management import ManagementClient
    from helpers.node import Node, Ports

for _name in ("AMQP_URL", "TUTORIAL_BROKER", "RABBITMQ_MANAGEMENT_URL"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def broker() -> Broker:
    return find_broker(start=True, progress=print, private_only=True)


@pytest.fixture(scope="session")
def learner_broker() -> Broker:
    """The learner-session node (heartbeat 1 s), started once and shared by the workers."""
    from learner import start_learner_broker

    return start_learner_broker()


# The longest test files go to the workers first, so that none of them starts last and ends
# alone while the other workers idle (scripts/test.sh runs four at a time). Seconds alone:
# learner sessions ch10 100, ch04 63, ch03 58, ch08 55 (the others 30-48); with
# `--maxschedchunk 1` they took 171 s where collection order took 217 s. Other files:
# test_checks_ch10 68, test_site 61, test_alarms 46, test_flow_truth 40 (most take under 15).
LONGEST_FIRST = (
    "test_learner_ch10", "test_learner_ch04", "test_learner_ch03", "test_learner_ch08",
    "test_checks_ch10", "test_site", "test_alarms", "test_flow_truth",
)


def _rank(item: pytest.Item) -> int:
    module = getattr(item, "module", None)
    name = module.__name__ if module is not None else ""
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "learner_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.learner)
    items.sort(key=_rank)  # stable: a file's tests stay together and in order


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


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1, below the kernel's ephemeral range.

    A port the kernel handed out with bind(0) comes from the range it also gives outgoing
    connections, so a busy suite can take it again before a test node binds it (seen:
    `dist_port_already_used`). Ports from 20000-32000 are not handed out that way.
    """
    found: list[int] = []
    while len(found) < n:
        port = random.randrange(20_000, 32_000)
        if port in found:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
    return found


@contextmanager
def throwaway_node(
    directory: Path, name: str, ports: Ports | None = None, **options: Any
) -> Iterator[Node]:
    """A node of its own for a test that breaks a broker (alarms, restarts, interrupts):
    started in `directory` on free loopback ports, stopped afterwards whatever happened."""
    from helpers.node import Node, Ports, choose_runtime

    node = Node(
        directory,
        choose_runtime(progress=None),
        name=f"{name}-{os.getpid()}@localhost",
        ports=ports or Ports(*free_ports(3)),
        **options,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


def classroom_admin(broker: Broker, prefix: str) -> Iterator[ManagementClient]:
    """For a fixture: an admin client with no classroom of `prefix` before or after the test
    (an interrupted run's leftovers are torn down first)."""
    from helpers.classroom import admin_client, teardown

    client = admin_client(broker.management_url, broker.username, broker.password)
    teardown(client, prefix)
    yield client
    teardown(client, prefix)


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    return free_ports(1)[0]
