"""The sequence view on the real broker: what the firehose and the client events report, in
order, for an RPC with a late reply, a mandatory publish returned before its confirm, a nack
that dead-letters, direct reply-to, and a connection closed for a missed heartbeat.

Each test works in a private vhost of its own (flow_support.private_vhost), so its diagram
sees only what the test did; client events there come over a second connection, so only the
order among the broker's trace steps, and among the program's records, is asserted."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pika
import pytest
from flow_support import connect_named, private_vhost

from helpers import Broker
from helpers.view.seq_draw import SequenceView
from helpers.widgets import FlowDiagram

SERVER_NAMED = re.compile(r"^amq\.gen-")


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "sequence") as b:
        yield b


def steps(view: SequenceView, origins=("broker", "x-death", "program")) -> list[tuple]:
    """(kind, from, to, label) of the arrows from these origins, in order."""
    seq = view.sequence
    return [
        (a.kind, seq.title(a.source), seq.title(a.target), a.label)
        for a in seq.arrows
        if a.origin in origins
    ]


def get(channel, queue: str, auto_ack: bool = True) -> tuple:
    """basic_get until a message is there (another connection's publish may still be on its
    way), at most 3 s."""
    deadline = time.monotonic() + 3
    while (got := channel.basic_get(queue, auto_ack=auto_ack))[0] is None:
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        time.sleep(0.05)
    return got


def clean_text(view: SequenceView) -> None:
    assert "127.0.0.1" not in view.text, "no ports in what a notebook saves"


def test_rpc_with_a_late_reply(vbroker):
    with FlowDiagram(vbroker, prefix=("seq.", SERVER_NAMED)) as diagram:
        server = connect_named(vbroker, "seq.server")
        client = connect_named(vbroker, "seq.client")
        try:
            s, c = server.channel(), client.channel()
            s.queue_declare("seq.rpc", exclusive=True)
            replies = c.queue_declare("", exclusive=True).method.queue
            span = diagram.mark()
            for cid in ("c1", "c2"):  # c1 times out on the client's side, then c2 is sent
                c.basic_publish(
                    "",
                    "seq.rpc",
                    f"call {cid}".encode(),
                    pika.BasicProperties(reply_to=replies, correlation_id=cid),
                )
                time.sleep(0.2)
            for _ in range(2):  # the server answers both, c1 late
                method, props, body = get(s, "seq.rpc")
                s.basic_publish(
                    "",
                    props.reply_to,
                    b"re: " + body,
                    pika.BasicProperties(correlation_id=props.correlation_id),
                )
            got = []
            for _ in range(2):
                got.append(get(c, replies)[1].correlation_id)
            assert got == ["c1", "c2"]
            diagram.record("seq.client", "note", "late reply c1 ignored (correlation id)")
        finally:
            client.close()
            server.close()
        view = diagram.sequence(since=span)
    x = "(default exchange)"
    # Every request and reply names its correlation id: the late reply is told by c1. The
    # two programs run at once, so only what causality orders is asserted: each program's
    # own steps in order (a route right after its publish), each request delivered after it
    # was published, each reply published after its request's delivery and delivered after
    # it was published. Between the programs, steps of the same moment come either way.
    client = [
        ("publish", "seq.client", x, "publish 'seq.rpc' call c1  corr=c1"),
        ("publish", "seq.client", x, "publish 'seq.rpc' call c2  corr=c2"),
        ("deliver", replies, "seq.client", "deliver re: call c1  corr=c1"),
        ("deliver", replies, "seq.client", "deliver re: call c2  corr=c2"),
        ("note", "seq.client", "seq.client", "late reply c1 ignored (correlation id)"),
    ]
    server = [
        ("deliver", "seq.rpc", "seq.server", "deliver call c1  corr=c1"),
        ("publish", "seq.server", x, f"publish {replies!r} re: call c1  corr=c1"),
        ("deliver", "seq.rpc", "seq.server", "deliver call c2  corr=c2"),
        ("publish", "seq.server", x, f"publish {replies!r} re: call c2  corr=c2"),
    ]
    drawn = steps(view)
    for i, step in enumerate(drawn):  # each publish routed to its queue, drawn right after
        if step[0] == "publish":
            queue = "seq.rpc" if step[1] == "seq.client" else replies
            assert drawn[i + 1] == ("route", x, queue, "route"), step
    drawn = [step for step in drawn if step[0] != "route"]
    assert sorted(drawn) == sorted(client + server), "each step once, nothing else"
    at = {step: i for i, step in enumerate(drawn)}
    for own in (client, server):
        assert [at[step] for step in own] == sorted(at[step] for step in own), own[0][1]
    for request, delivered, replied, answered in [
        (client[0], server[0], server[1], client[2]),  # c1
        (client[1], server[2], server[3], client[3]),  # c2
    ]:
        assert at[request] < at[delivered] < at[replied] < at[answered], request
    assert "seq.client → (default exchange): publish 'seq.rpc' call c1  corr=c1" in view.text
    clean_text(view)


def test_a_mandatory_publish_is_returned_before_its_confirm(vbroker):
    with FlowDiagram(vbroker, prefix="seq.") as diagram:
        connection = connect_named(vbroker, "seq.producer")
        try:
            ch = connection.channel()
            ch.exchange_declare("seq.orders", "direct", auto_delete=True)
            ch.confirm_delivery()
            span = diagram.mark()
            # The broker sends basic.return before the basic.ack of a mandatory publish it
            # could not route; pika's BlockingChannel keeps the returned message and raises
            # it as UnroutableError once the ack has come.
            with pytest.raises(pika.exceptions.UnroutableError) as caught:
                ch.basic_publish("seq.orders", "nobody", b"lost order", mandatory=True)
            reply = caught.value.messages[0].method.reply_text
            diagram.record("seq.producer", "return", reply)
            diagram.record("seq.producer", "confirm", "ack")
            ch.exchange_delete("seq.orders")
        finally:
            connection.close()
        view = diagram.sequence(since=span)
    assert steps(view) == [
        ("publish", "seq.producer", "seq.orders", "publish 'nobody' lost order"),
        ("unroutable", "seq.orders", "seq.orders", "routed to no queue"),
        ("return", "seq.orders", "seq.producer", "return NO_ROUTE"),
        ("confirm", "seq.orders", "seq.producer", "confirm ack"),
    ]
    origins = [a.origin for a in view.arrows if a.kind in ("return", "confirm")]
    assert origins == ["program", "program"]
    assert view.svg.count('stroke-dasharray="6 4"') == 2
    clean_text(view)


def test_a_nack_dead_letters_and_the_firehose_shows_it_only_at_delivery(vbroker):
    with FlowDiagram(vbroker, prefix="seq.") as diagram:
        connection = connect_named(vbroker, "seq.worker")
        try:
            ch = connection.channel()
            ch.exchange_declare("seq.dlx", "fanout", auto_delete=True)
            ch.queue_declare("seq.dead", exclusive=True)
            ch.queue_bind("seq.dead", "seq.dlx")
            ch.queue_declare(
                "seq.work", exclusive=True, arguments={"x-dead-letter-exchange": "seq.dlx"}
            )
            span = diagram.mark()
            ch.basic_publish("", "seq.work", b"job <script>")
            method, _props, _body = ch.basic_get("seq.work")
            ch.basic_nack(method.delivery_tag, requeue=False)
            diagram.record("seq.worker", "nack", "requeue=False")
            middle = diagram.mark()  # nothing traced by the dead-lettering itself
            got = get(ch, "seq.dead", auto_ack=False)
            assert "x-death" in got[1].headers
            ch.basic_ack(got[0].delivery_tag)
            diagram.record("seq.worker", "ack")
        finally:
            connection.close()
        view = diagram.sequence(since=span)
        after_nack = diagram.sequence(since=middle)
    x = "(default exchange)"
    assert steps(view) == [
        ("publish", "seq.worker", x, "publish 'seq.work' job <script>"),
        ("route", x, "seq.work", "route"),
        ("deliver", "seq.work", "seq.worker", "deliver job <script>"),
        ("nack", "seq.worker", "seq.work", "nack requeue=False"),
        ("deadletter", "seq.work", "seq.dlx", "dead-lettered (rejected), earlier"),
        ("route", "seq.dlx", "seq.dead", "route (dead letter)"),
        ("deliver", "seq.dead", "seq.worker", "deliver job <script>"),
        ("ack", "seq.worker", "seq.dead", "ack"),
    ]
    # After the nack, the firehose's next step was the delivery from the dead-letter queue.
    assert [k for k, *_ in steps(after_nack, ("broker", "x-death"))] == [
        "deadletter",
        "route",
        "deliver",
    ]
    assert "<script" not in view.svg and "<script" not in view.html()
    clean_text(view)


def test_a_direct_reply_to_reply_is_one_arrow_to_the_caller(vbroker):
    with FlowDiagram(vbroker, prefix="seq.") as diagram:
        server = connect_named(vbroker, "seq.server")
        client = connect_named(vbroker, "seq.client")
        try:
            s, c = server.channel(), client.channel()
            s.queue_declare("seq.rpc", exclusive=True)
            got: list[bytes] = []
            c.basic_consume("amq.rabbitmq.reply-to", lambda *a: got.append(a[3]), auto_ack=True)
            span = diagram.mark()
            c.basic_publish(
                "", "seq.rpc", b"ask", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")
            )
            _m, props, _b = get(s, "seq.rpc")
            s.basic_publish("", props.reply_to, b"answer")
            deadline = time.monotonic() + 3
            while not got:
                assert time.monotonic() < deadline
                client.process_data_events(time_limit=0.1)
        finally:
            client.close()
            server.close()
        view = diagram.sequence(since=span)
    assert [(k, a, b) for k, a, b, _l in steps(view)][-2:] == [
        ("deliver", "seq.rpc", "seq.server"),
        ("reply", "seq.server", "seq.client"),
    ]
    assert not any("reply-to" in line.title for line in view.sequence.lifelines)


def test_a_connection_closed_for_a_missed_heartbeat(vbroker):
    with FlowDiagram(vbroker, prefix="seq.") as diagram:
        span = diagram.mark()
        params = vbroker.connection_parameters(
            heartbeat=1, client_properties={"connection_name": "seq.sleepy"}
        )
        sleepy = pika.BlockingConnection(params)
        time.sleep(4)  # pika is not running: no heartbeats are sent, and the broker closes it
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            sleepy.channel()
        diagram.record("seq.sleepy", "note", "StreamLostError")
        view = diagram.sequence(since=span)
    assert [(a.kind, a.origin) for a in view.arrows] == [
        ("connect", "events"),
        ("close", "events"),
        ("note", "program"),
    ]
    assert "seq.sleepy: connection closed  [client event]" in view.text
