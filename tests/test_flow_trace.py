"""The firehose consumer: tracing switched on and off with a broker-side reference count,
nothing left behind, and parsing of real trace messages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flow_support import connect, private_vhost

from helpers import Broker
from helpers.flow.tracer import Tracer
from helpers.flow.tracing import diagram_trace_queues
from helpers.view.text import body_preview
from helpers.widgets import FlowDiagram


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "trace") as b:
        yield b


def _queues(b: Broker) -> list[str]:
    return [q["name"] for q in b.management.queues(b.vhost)]


def test_tracing_on_while_live_and_off_after_the_last_close(vbroker):
    api = vbroker.management
    assert not api.tracing(vbroker.vhost)
    first = FlowDiagram(vbroker, prefix="flowdev.")
    second = FlowDiagram(vbroker, prefix="flowdev.other.")  # (the same prefix replaces it)
    try:
        assert api.tracing(vbroker.vhost)
        assert len(diagram_trace_queues(api, vbroker.vhost)) == 2
        first.close()
        assert api.tracing(vbroker.vhost), "another diagram still needs the firehose"
    finally:
        first.close()
        second.close()
    assert not api.tracing(vbroker.vhost)
    assert _queues(vbroker) == [], "the trace queues are gone"
    assert diagram_trace_queues(api, vbroker.vhost) == []


def test_tracing_that_was_on_before_stays_on(vbroker):
    api = vbroker.management
    api.set_tracing(vbroker.vhost, True)
    with FlowDiagram(vbroker, prefix="flowdev.") as d:
        assert d.tracer.was_on
    assert api.tracing(vbroker.vhost)


def test_settle_returns_after_our_events_and_skips_its_own_markers(vbroker):
    seen = []
    tracer = Tracer(vbroker, seen.extend).start()
    try:
        connection = connect(vbroker)
        ch = connection.channel()
        ch.queue_declare("flowdev.t", exclusive=True)
        for i in range(20):
            ch.basic_publish("", "flowdev.t", str(i).encode())
        assert tracer.settle()
        assert [e.body for e in seen] == [str(i).encode() for i in range(20)]
        assert all(e.kind == "publish" and e.routed_queues == ("flowdev.t",) for e in seen)
        assert tracer.sync() and len(seen) == 20, "sync markers are not events"
        connection.close()
    finally:
        tracer.stop()
    assert _queues(vbroker) == []


def test_a_dead_connection_takes_its_trace_queue_with_it(vbroker):
    d = FlowDiagram(vbroker, prefix="flowdev.")
    try:
        name = d.tracer.queue
        assert name in _queues(vbroker)
        info = vbroker.management.queue(name, vbroker.vhost)
        assert info["exclusive"] and info["auto_delete"]
    finally:
        d.close()


def test_body_preview_text_binary_and_long():
    assert body_preview(b"hello") == "hello"
    assert body_preview(b"a\nb") == "a↵b"
    long = body_preview(b"x" * 100)
    assert len(long) == 40 and long.endswith("…")
    assert body_preview(b"\x00\x01\xff") == "0x 00 01 ff (3 bytes)"
    assert body_preview(bytes(100)).endswith("… (100 bytes)")
    # Only the start is read: a long text body, and one cut inside a character, stay text.
    assert body_preview(("é" * 5000).encode()) == "é" * 39 + "…"
    assert body_preview(("é" * 80).encode()[:161], size=10_000) == "é" * 39 + "…"
    assert body_preview(b"ok" + bytes(300)).startswith("0x 6f 6b 00")
