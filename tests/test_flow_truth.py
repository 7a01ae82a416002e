"""The diagram shows what the broker did, for programs the chapters did not write.

Request/reply with short-lived reply queues, direct reply-to, quorum queues whose counts
lag in the management API, and a broker that no longer lists consumers. Totals are compared
with the broker's own counters (the vhost's message_stats), not with numbers written here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pika
import pytest
from flow_support import VHOST_STATS, connect, private_vhost, settled_counters

from conftest import free_ports
from helpers import Broker
from helpers.broker import private_node_broker
from helpers.flow.topology import read_topology
from helpers.node import Node, choose_runtime
from helpers.widgets import FlowDiagram

P = "flowdev."


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "truth") as b:
        yield b


def _broker_counters(vb: Broker, diagram: FlowDiagram) -> dict[str, int]:
    """The broker's publish / deliver / unroutable counters, once they have caught up with
    the diagram's totals or held still (flow_support.settled_counters)."""
    totals = diagram.state.totals()
    return settled_counters(vb, diagram.tracer, {k: totals[k] for k in VHOST_STATS})


def _one_rpc_call(vb: Broker, server: pika.adapters.blocking_connection.BlockingChannel, n: int):
    """What the official RPC client does: a connection per call, an exclusive server-named
    reply queue, gone when the connection closes right after the answer."""
    with connect(vb) as client_connection:
        client = client_connection.channel()
        reply_queue = client.queue_declare("", exclusive=True).method.queue
        client.basic_publish(
            "", P + "rpc", str(n).encode(), pika.BasicProperties(reply_to=reply_queue)
        )
        for _ in range(50):  # the server takes the request and answers
            method, props, body = server.basic_get(P + "rpc", auto_ack=True)
            if method:
                break
            time.sleep(0.02)
        server.basic_publish("", props.reply_to, b"answer " + body)
        for _ in range(50):  # the client reads its answer, then hangs up
            method, _props, _body = client.basic_get(reply_queue, auto_ack=True)
            if method:
                return
            time.sleep(0.02)
        raise AssertionError("no reply arrived")


def test_rpc_with_short_lived_reply_queues_matches_the_broker(vbroker):
    with connect(vbroker) as server_connection:
        server = server_connection.channel()
        server.queue_declare(P + "rpc", durable=True)
        with FlowDiagram(vbroker, prefix="") as diagram:
            for n in range(3):
                _one_rpc_call(vbroker, server, n)
            assert diagram.wait_until_caught_up(timeout=8)
            totals = diagram.state.totals()
            server.queue_delete(P + "rpc")
            broker = _broker_counters(vbroker, diagram)
    assert totals["published"] == broker["published"] == 6
    assert totals["delivered"] == broker["delivered"] == 6
    assert totals["unroutable"] == broker["unroutable"] == 0, "replies were delivered"
    assert totals["routed"] == 6


def test_direct_reply_to_is_a_reply_to_the_caller(vbroker):
    with connect(vbroker) as connection, FlowDiagram(vbroker, prefix=P) as diagram:
        server = connection.channel()
        server.queue_declare(P + "rpc", exclusive=True)
        caller = connection.channel()
        got: list[bytes] = []
        caller.basic_consume(
            "amq.rabbitmq.reply-to", lambda _c, _m, _p, body: got.append(body), auto_ack=True
        )
        caller.basic_publish(
            "", P + "rpc", b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")
        )
        method = None
        for _ in range(50):
            method, props, _body = server.basic_get(P + "rpc", auto_ack=True)
            if method:
                break
            connection.process_data_events(0.02)
        server.basic_publish("", props.reply_to, b"pong")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            connection.process_data_events(0.05)
        assert got == [b"pong"]
        assert diagram.wait_until_caught_up()
        totals = diagram.state.totals()
        replies = dict(diagram.state.direct_replies)
        svg = diagram.widget.value
    assert totals["unroutable"] == 0, "a direct reply is not a dropped message"
    assert totals["published"] == 2 and totals["direct_replies"] == 1
    assert totals["delivered"] == 1  # the request; the reply went through no queue
    ((replier, requester), n), = replies.items()
    assert n == 1 and replier[1] == server.channel_number
    assert requester[1] == caller.channel_number, "drawn as a reply to the calling channel"
    assert 'class="edge reply"' in svg


def test_quorum_queue_counts_are_right_after_waiting(vbroker):
    with connect(vbroker) as connection, FlowDiagram(vbroker, prefix=P) as diagram:
        channel = connection.channel()
        channel.queue_declare(P + "quorum", durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        for n in range(3):
            channel.basic_publish("", P + "quorum", str(n).encode())

        def counts() -> tuple[int, int]:
            (q,) = [q for q in diagram.state.visible_queues() if q.name == P + "quorum"]
            return q.ready, q.unacked

        assert diagram.wait_until_caught_up(timeout=8)
        assert counts() == (3, 0)
        tags = [channel.basic_get(P + "quorum", auto_ack=False)[0].delivery_tag for _ in range(2)]
        assert diagram.wait_until_caught_up(timeout=8)
        assert counts() == (1, 2)
        for tag in tags:
            channel.basic_ack(tag)
        assert diagram.wait_until_caught_up(timeout=8)
        assert counts() == (1, 0)
        channel.queue_delete(P + "quorum")


def test_a_burst_from_another_connection_matches_the_broker(vbroker):
    """Thousands of messages: routed to two queues, dropped, and delivered in a rush.

    In a burst the firehose process sends alike events as one with a count; the totals, each
    edge's count and the newest messages in the log must still be the broker's.
    """
    n = 3000
    with connect(vbroker) as setup, FlowDiagram(vbroker, prefix=P) as diagram:
        channel = setup.channel()
        channel.exchange_declare(P + "logs", "topic")
        for queue, key in (("all", "*.*"), ("errors", "*.error")):
            channel.queue_declare(P + queue, exclusive=True)
            channel.queue_bind(P + queue, P + "logs", key)
        largest_count = []
        on_events = diagram.tracer.on_events
        diagram.tracer.on_events = lambda events: (
            largest_count.append(max(e.repeat for e in events)),
            on_events(events),
        )
        keys = ("kern.error", "app.info", "nobody")  # two queues, one queue, dropped
        with connect(vbroker) as publisher:
            out = publisher.channel()
            for i in range(n):
                out.basic_publish(P + "logs", keys[i % 3], b"m%d" % i)
        got: list[bytes] = []
        channel.basic_consume(P + "errors", lambda *a: got.append(a[3]), auto_ack=True)
        deadline = time.monotonic() + 20
        while len(got) < n // 3 and time.monotonic() < deadline:
            setup.process_data_events(time_limit=0.1)
        assert len(got) == n // 3
        assert diagram.wait_until_caught_up(timeout=30)
        state = diagram.state
        totals = state.totals()
        in_all = channel.queue_declare(P + "all", passive=True).method.message_count
        broker = _broker_counters(vbroker, diagram)
    assert max(largest_count) > 1, "the burst was sent in counted groups"
    assert totals["published"] == broker["published"] == n
    assert totals["unroutable"] == broker["unroutable"] == n // 3
    assert totals["delivered"] == broker["delivered"] == n // 3
    assert state.routed[(P + "logs", P + "all")] == in_all == 2 * n // 3
    assert state.routed[(P + "logs", P + "errors")] == n // 3
    newest = state.recent[-1]
    assert (newest.kind, newest.payload) == ("deliver", got[-1]), "the log's newest is exact"
    assert len({m.seq for m in list(state.recent)[-5:]}) == 5, "one by one"


def test_wait_until_caught_up_says_when_it_could_not(vbroker, capsys):
    with connect(vbroker) as connection, FlowDiagram(vbroker, prefix=P) as diagram:
        channel = connection.channel()
        channel.queue_declare(P + "burst", exclusive=True)
        for n in range(5000):
            channel.basic_publish("", P + "burst", str(n).encode())
        caught = diagram.wait_until_caught_up(timeout=0.05)
    assert not caught and "firehose" in caught.why
    assert "did not catch up within 0.05 s" in capsys.readouterr().out


def test_without_management_metrics_the_diagram_still_draws(tmp_path, broker):
    """RabbitMQ 4 deprecates the metrics behind /api/consumers; with them denied it answers
    400. The diagram keeps drawing topology, counts and deliveries."""
    runtime = choose_runtime(progress=None)
    if runtime.version.startswith("3."):  # no such deprecation: the endpoint just works
        assert read_topology(broker.management, broker.vhost).consumers_listed
        return
    amqp, management, dist = free_ports(3)
    from helpers.node import Ports

    node = Node(
        tmp_path / "node",
        runtime,
        name=f"flowdev-nometrics-{os.getpid()}@localhost",
        ports=Ports(amqp, management, dist),
        extra_config=("deprecated_features.permit.management_metrics_collection = false",),
    )
    node.start()
    try:
        nb = private_node_broker(node)
        with connect(nb) as connection, FlowDiagram(nb, prefix=P) as diagram:
            channel = connection.channel()
            channel.queue_declare(P + "q", exclusive=True)
            channel.basic_publish("", P + "q", b"hi")
            channel.basic_consume(P + "q", lambda *_a: None, auto_ack=True)
            connection.process_data_events(0.3)
            diagram.wait_until_caught_up()
            topology = read_topology(nb.management, nb.vhost)
            assert not topology.consumers_listed
            assert diagram.state.totals()["delivered"] == 1
            assert "queue flowdev.q" in diagram.summary()
    finally:
        node.stop()
