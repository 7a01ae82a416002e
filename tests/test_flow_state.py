"""The diagram's state (helpers.flow.state.FlowState) against the real broker.

Each test declares a small topology in a private vhost, publishes with plain pika, waits for
the diagram to catch up, and checks what the state says the broker did. Where the messages
went is the broker's answer (the firehose's routed_queues), so these tests would catch a
diagram that guessed routing wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from flow_support import emptied_channel, private_vhost, static_svg

from helpers import Broker
from helpers.flow.events import TRACING_MARK
from helpers.view.text import message_headers
from helpers.widgets import FlowDiagram

P = "flowdev."


@pytest.fixture(scope="module")
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "state") as b:
        yield b


@pytest.fixture
def channel(vbroker: Broker):
    yield from emptied_channel(vbroker, P)


@pytest.fixture
def diagram(vbroker: Broker) -> Iterator[FlowDiagram]:
    with FlowDiagram(vbroker, prefix=P) as d:
        yield d


def _queues(diagram: FlowDiagram) -> dict[str, tuple[int, int]]:
    return {q.name: (q.ready, q.unacked) for q in diagram.state.visible_queues()}


def _last_publish(diagram: FlowDiagram):
    return [m for m in diagram.state.recent if m.kind == "publish"][-1]


def test_direct_exchange_routes_by_key(diagram, channel):
    channel.exchange_declare(P + "direct", "direct")
    for q, key in (("info", "info"), ("error", "error")):
        channel.queue_declare(P + q, durable=True)
        channel.queue_bind(P + q, P + "direct", key)
    channel.basic_publish(P + "direct", "error", b"disk full")
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.routed[(P + "direct", P + "error")] == 1
    assert s.routed[(P + "direct", P + "info")] == 0
    assert _queues(diagram) == {P + "error": (1, 0), P + "info": (0, 0)}
    assert _last_publish(diagram).queues == (P + "error",)
    labels = {(b.source, b.destination): b.label for b in s.visible_bindings()}
    assert labels[(P + "direct", P + "error")] == "error"


def test_fanout_reaches_every_bound_queue(diagram, channel):
    channel.exchange_declare(P + "fan", "fanout")
    for q in ("a", "b", "c"):
        channel.queue_declare(P + q, durable=True)
        channel.queue_bind(P + q, P + "fan")
    channel.basic_publish(P + "fan", "ignored", b"news")
    diagram.wait_until_caught_up()
    assert set(_last_publish(diagram).queues) == {P + "a", P + "b", P + "c"}
    assert diagram.state.totals()["routed"] == 3
    assert {q: c[0] for q, c in _queues(diagram).items()} == {P + "a": 1, P + "b": 1, P + "c": 1}


def test_topic_patterns(diagram, channel):
    channel.exchange_declare(P + "topic", "topic")
    channel.queue_declare(P + "errors", durable=True)
    channel.queue_declare(P + "all", durable=True)
    channel.queue_bind(P + "errors", P + "topic", "*.error")
    channel.queue_bind(P + "all", P + "topic", "#")
    channel.basic_publish(P + "topic", "kern.error", b"1")
    channel.basic_publish(P + "topic", "kern.info", b"2")
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.routed[(P + "topic", P + "errors")] == 1
    assert s.routed[(P + "topic", P + "all")] == 2
    assert "*.error -> flowdev.errors" in diagram.summary()


def test_headers_exchange_and_its_arguments(diagram, channel):
    channel.exchange_declare(P + "hdr", "headers")
    channel.queue_declare(P + "pdf", durable=True)
    channel.queue_bind(P + "pdf", P + "hdr", arguments={"x-match": "all", "format": "pdf"})
    channel.basic_publish(P + "hdr", "", b"a", pika.BasicProperties(headers={"format": "pdf"}))
    channel.basic_publish(P + "hdr", "", b"b", pika.BasicProperties(headers={"format": "zip"}))
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.routed[(P + "hdr", P + "pdf")] == 1
    assert s.unroutable[P + "hdr"] == 1
    (binding,) = [b for b in s.visible_bindings() if b.source == P + "hdr"]
    assert binding.label == "format=pdf, x-match=all"
    assert message_headers(_last_publish(diagram)) == "format=zip"


def test_unroutable_is_dropped_at_the_exchange(diagram, channel):
    channel.exchange_declare(P + "lonely", "direct")
    channel.basic_publish(P + "lonely", "nobody", b"lost")
    channel.basic_publish("", P + "no-such-queue", b"lost too")
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.unroutable[P + "lonely"] == 1
    assert s.unroutable[""] == 1, "the default exchange names a queue that does not exist"
    assert s.totals()["routed"] == 0
    assert "unroutable=2" in diagram.summary()
    assert 'class="dot dropped"' in diagram.widget.value


def test_alternate_exchange_catches_unroutable(diagram, channel):
    channel.exchange_declare(P + "ae", "fanout")
    channel.exchange_declare(P + "main", "direct", arguments={"alternate-exchange": P + "ae"})
    channel.queue_declare(P + "unrouted", durable=True)
    channel.queue_bind(P + "unrouted", P + "ae")
    channel.basic_publish(P + "main", "no-binding", b"x")
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.routed[(P + "main", P + "unrouted")] == 1
    assert s.unroutable[P + "main"] == 0
    assert s.alternate_links() == [(P + "main", P + "ae")]
    assert s.path(P + "main", P + "unrouted") == [P + "main", P + "ae"]
    assert "unroutable -> flowdev.ae" in diagram.summary()


def test_dead_letter_exchange_is_drawn_from_the_queue_arguments(diagram, channel):
    # A DLX named outside the prefix is still drawn: it is where the queue's messages go.
    channel.exchange_declare("flowdlx.dead", "fanout")
    try:
        channel.queue_declare(P + "parked", durable=True)
        channel.queue_bind(P + "parked", "flowdlx.dead")
        channel.queue_declare(
            P + "inbox", durable=True, arguments={"x-dead-letter-exchange": "flowdlx.dead"}
        )
        channel.basic_publish("", P + "inbox", b"bad")
        method, _, _ = channel.basic_get(P + "inbox")
        channel.basic_reject(method.delivery_tag, requeue=False)
        diagram.wait_until_caught_up()
        s = diagram.state
        assert s.dead_letter_links() == [(P + "inbox", "flowdlx.dead")]
        assert "flowdlx.dead" in {x.name for x in s.visible_exchanges()}
        # The broker dead-lettered it (not traced by the firehose): the count shows it.
        assert _queues(diagram)[P + "parked"] == (1, 0)
        line = "queue flowdev.inbox: ready=0 unacked=0 consumers=0; dead letters -> flowdlx.dead"
        assert line in diagram.summary()
        assert 'class="edge deadletter"' in diagram.widget.value
    finally:
        channel.exchange_delete("flowdlx.dead")


def test_exchange_to_exchange_binding(diagram, channel):
    channel.exchange_declare(P + "front", "topic")
    channel.exchange_declare(P + "back", "fanout")
    channel.exchange_bind(P + "back", P + "front", "orders.*")
    channel.queue_declare(P + "orders", durable=True)
    channel.queue_bind(P + "orders", P + "back")
    channel.basic_publish(P + "front", "orders.new", b"o1")
    channel.basic_publish(P + "front", "users.new", b"u1")
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.routed[(P + "front", P + "orders")] == 1
    assert s.unroutable[P + "front"] == 1
    assert s.path(P + "front", P + "orders") == [P + "front", P + "back"]
    assert any(
        b.destination_type == "exchange" and b.label == "orders.*" for b in s.visible_bindings()
    )


def test_built_in_exchange_bound_to_a_chapter_queue_is_drawn(diagram, channel):
    channel.queue_declare(P + "via-amq", durable=True)
    channel.queue_bind(P + "via-amq", "amq.direct", "k")
    channel.basic_publish("amq.direct", "k", b"x")
    diagram.wait_until_caught_up()
    assert "amq.direct" in {x.name for x in diagram.state.visible_exchanges()}
    assert diagram.state.routed[("amq.direct", P + "via-amq")] == 1


def test_delivery_to_a_consumer_and_ack(diagram, channel):
    channel.queue_declare(P + "work", durable=True)
    channel.basic_qos(prefetch_count=3)
    for i in range(2):
        channel.basic_publish("", P + "work", f"job {i}".encode())
    got = []
    channel.basic_consume(P + "work", lambda ch, m, p, b: got.append(m), consumer_tag=P + "w1")
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        # returns as soon as anything arrives, so loop until both deliveries are in
        channel.connection.process_data_events(time_limit=0.5)
    assert len(got) == 2
    diagram.wait_until_caught_up()
    s = diagram.state
    assert s.delivered[P + "work"] == 2
    assert _queues(diagram)[P + "work"] == (0, 2)
    (consumer,) = s.visible_consumers()
    assert (consumer.tag, consumer.prefetch, consumer.ack_required) == (P + "w1", 3, True)
    assert s.deliveries_by_consumer(P + "work") == {P + "w1": 2}
    assert "consumers=1" in diagram.summary()
    channel.basic_ack(got[-1].delivery_tag, multiple=True)
    diagram.wait_until_caught_up()
    assert _queues(diagram)[P + "work"] == (0, 0)


def test_nack_with_requeue_is_redelivered(diagram, channel):
    channel.queue_declare(P + "retry", durable=True)
    channel.basic_publish("", P + "retry", b"try me")
    method, _props, _body = channel.basic_get(P + "retry")
    diagram.wait_until_caught_up()
    assert _queues(diagram)[P + "retry"] == (0, 1)
    channel.basic_nack(method.delivery_tag, requeue=True)
    diagram.wait_until_caught_up()
    assert _queues(diagram)[P + "retry"] == (1, 0)
    method, _props, _body = channel.basic_get(P + "retry", auto_ack=True)
    assert method.redelivered
    diagram.wait_until_caught_up()
    s = diagram.state
    assert (s.delivered[P + "retry"], s.redelivered[P + "retry"]) == (2, 1)
    assert _queues(diagram)[P + "retry"] == (0, 0)
    assert "(redelivered)" in diagram.widget.value


def test_prefix_scopes_and_trace_queue_is_never_drawn(vbroker, diagram, channel):
    channel.queue_declare("other.queue", durable=True)
    try:
        channel.basic_publish("", "other.queue", b"not ours")
        channel.queue_declare(P + "mine", durable=True)
        channel.basic_publish("", P + "mine", b"ours")
        diagram.wait_until_caught_up()
        names = {q.name for q in diagram.state.visible_queues()}
        assert names == {P + "mine"}
        assert diagram.state.totals()["published"] == 1
        with FlowDiagram(vbroker, prefix="") as everything:
            everything.wait_until_caught_up()
            shown = {q.name for q in everything.state.visible_queues()}
            assert {"other.queue", P + "mine"} <= shown
            assert not any(n.startswith("amq.gen-") for n in shown), "trace queues are hidden"
            drawn = {x.name for x in everything.state.visible_exchanges()}
            assert "amq.rabbitmq.trace" not in drawn
            assert TRACING_MARK not in drawn, "the diagrams' own marker is never drawn"
    finally:
        channel.queue_delete("other.queue")


EVIL = "<img src=x onerror=alert(1)>"


def test_escaping_of_bodies_keys_headers_and_names(diagram, channel):
    channel.queue_declare(P + EVIL, durable=True)
    channel.basic_publish("", P + EVIL, EVIL.encode(), pika.BasicProperties(headers={"h": EVIL}))
    channel.basic_publish("", P + EVIL, bytes(range(200, 240)))
    diagram.wait_until_caught_up()
    assert P + EVIL in {q.name for q in diagram.state.visible_queues()}
    static = diagram.html()
    for html in (diagram.widget.value, static, static_svg(static)):
        assert "<img src=x" not in html and "onerror=alert(1)>" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "0x c8 c9 ca" in diagram.widget.value and "(40 bytes)" in diagram.widget.value
