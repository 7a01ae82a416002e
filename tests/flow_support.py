"""Shared set-up for the flow-diagram tests: a private vhost on the real broker.

Each test module gets its own vhost (`flowdev-...`), so tracing it never slows anybody else
down and nothing another test publishes shows up in the diagram. The vhost is deleted after
the module, with everything in it.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel

from helpers import Broker


@contextmanager
def private_vhost(broker: Broker, tag: str, kind: str = "flowdev") -> Iterator[Broker]:
    """Create a fresh vhost the test user may use; yield a Broker pointing at it."""
    api = broker.management
    vhost = f"{kind}-{tag}-{uuid.uuid4().hex[:8]}"
    api.create_vhost(vhost)
    try:
        api.set_permissions(vhost, broker.username)
        yield dataclasses.replace(broker, vhost=vhost)
    finally:
        api.delete_vhost(vhost)


def connect(broker: Broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        broker.connection_parameters(connection_attempts=1, socket_timeout=5)
    )


def connect_named(broker: Broker, name: str) -> pika.BlockingConnection:
    """A connection under the name a program's code would give it (`connection_name`)."""
    return pika.BlockingConnection(
        broker.connection_parameters(client_properties={"connection_name": name})
    )


def emptied_channel(vbroker: Broker, prefix: str) -> Iterator[BlockingChannel]:
    """A channel for one test; afterwards every `prefix` queue and exchange is deleted.

    Use as the body of a pytest fixture (`yield from emptied_channel(vbroker, P)`), so the
    module's vhost is empty again for the next test.
    """
    connection = connect(vbroker)
    channel = connection.channel()
    yield channel
    for q in vbroker.management.queues(vbroker.vhost):
        if q["name"].startswith(prefix):
            channel.queue_delete(q["name"])
    for x in vbroker.management.exchanges(vbroker.vhost):
        if x["name"].startswith(prefix):
            channel.exchange_delete(x["name"])
    connection.close()  # and with it the exclusive queues


def static_svg(html: str) -> str:
    """The SVG document inside the static picture's data: URI."""
    match = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, "the static picture is an <img> with an SVG data: URI"
    return base64.b64decode(match.group(1)).decode()


# The vhost's message_stats field behind each counter the diagram keeps.
VHOST_STATS = {"published": "publish", "delivered": "deliver_get", "unroutable": "drop_unroutable"}


def settled_counters(broker: Broker, tracer, expected: dict[str, int]) -> dict[str, int]:
    """The vhost's counters named in `expected`, less the diagram's own traffic (its sync
    markers, and the trace and event messages delivered to it), once they have caught up.

    The management API aggregates them with a delay, longer on a loaded machine: two equal
    readings 1.2 s apart once still missed three publishes of closed connections. So this
    reads until they equal `expected` (the diagram's totals, or what the clients did), or else
    (from the sixth reading on, or after 20 s) until the last three agree. The caller
    compares: a wrong count still fails, only later.
    """
    readings: list[dict[str, int]] = []
    deadline = time.monotonic() + 20
    while True:
        stats = (broker.management.vhost(broker.vhost) or {}).get("message_stats") or {}
        own = {"published": tracer.markers_sent, "delivered": tracer.received}
        counters = {k: int(stats.get(VHOST_STATS[k]) or 0) - own.get(k, 0) for k in expected}
        readings.append(counters)
        still = len(readings) >= 6 and readings[-3] == readings[-2] == counters
        if counters == expected or still or time.monotonic() > deadline:
            return counters
        time.sleep(1.2)
