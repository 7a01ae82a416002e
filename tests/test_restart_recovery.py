"""A broker restart under a live diagram: it says why, reconnects, marks the gap, cleans up.

Issue 19, finding 2. `restart_app` (chapter 02's restart cell, or a restart while a diagram
is open in another tab) drops the connection of the diagram's firehose process. The diagram
must say so in one line at once (not wait 10 s and blame the firehose), reconnect by itself
once the broker answers (a new firehose process, tracing switched on again) so that what is
published afterwards is counted, say that its totals have a gap, and leave no tracing on
after `close()`. On a throwaway node: the shared ones serve other tests meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from conftest import throwaway_node
from helpers.broker import Broker, private_node_broker
from helpers.flow.events import BINDING_MARK, TRACE_EXCHANGE, TRACING_MARK
from helpers.node import Node
from helpers.widgets import FlowDiagram

P = "restart."
GONE_S = 30  # a restart drops the diagram's connection within this
BACK_S = 15  # the diagram has reconnected by itself this long after the broker answers


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with throwaway_node(tmp_path / "node", "restart-recovery") as node:
        yield node


def publish(broker: Broker, body: bytes) -> None:
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        channel.queue_declare(P + "orders", durable=True)
        channel.basic_publish("", P + "orders", body)


def trace_queues(broker: Broker) -> list[str]:
    """The trace queues of the diagrams attached to the vhost (any kernel)."""
    return [
        b["destination"]
        for b in broker.management.bindings_from(TRACE_EXCHANGE, broker.vhost)
        if (b.get("arguments") or {}).get(BINDING_MARK)
    ]


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_restart_is_reported_and_the_diagram_reconnects(node, capsys):
    broker = private_node_broker(node)
    api = broker.management
    publish(broker, b"before the restart")
    diagram = FlowDiagram(broker, prefix=P)
    try:
        publish(broker, b"seen before the restart")
        assert diagram.wait_until_caught_up()
        assert diagram.state.totals()["published"] == 1
        assert "gap" not in diagram.summary(), "no restart, no note: chapters' outputs stay"
        first = diagram.tracer

        restart = threading.Thread(target=node.restart_app)
        restart.start()
        try:
            assert wait_for(lambda: not first.alive, GONE_S), "the restart dropped the diagram"
            capsys.readouterr()
            t0 = time.monotonic()
            away = diagram.wait_until_caught_up()
            took = time.monotonic() - t0
            picture = diagram.html()  # while the broker is still away (it takes seconds)
            summary = diagram.summary()
        finally:
            restart.join()
        said = capsys.readouterr().out.strip().splitlines()

        # While the broker is away: at once, the true reason, in one line.
        assert not away and took < 2, f"{took:.1f} s: {away!r}"
        assert "CONNECTION_FORCED" in away.why and "reconnecting" in away.why
        assert len(said) == 1 and "CONNECTION_FORCED" in said[0] and "reconnecting" in said[0]
        assert "CONNECTION_FORCED" in picture and "reconnecting" in picture
        assert "reconnecting" in summary.splitlines()[-1]
        assert first._process.wait(5) is not None, "the old firehose process has exited"

        # Back: it reconnects by itself, with tracing switched on again for it.
        assert wait_for(lambda: diagram.tracer is not first and diagram.tracer.alive, BACK_S)
        assert api.tracing(broker.vhost)
        assert trace_queues(broker) == [diagram.tracer.queue]
        publish(broker, b"after the restart")
        assert diagram.wait_until_caught_up()
        assert diagram.state.totals()["published"] == 2, "the new message is counted"
        said = capsys.readouterr().out
        assert said.count("counts have a gap") == 1, said
        gap = diagram.summary().splitlines()[-1]
        assert gap.startswith("  counts have a gap: ") and "CONNECTION_FORCED" in gap, gap
        assert "counts have a gap" in diagram.html()
        assert "reconnecting" not in diagram.summary()
    finally:
        diagram.close()
    assert not api.tracing(broker.vhost), "the last diagram switched tracing off"
    assert api.exchange(TRACING_MARK, broker.vhost) is None
    assert trace_queues(broker) == []
