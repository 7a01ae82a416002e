"""What a learner reads in the picture, checked on a real broker with the words drawn.

Each test is one finding from trying the diagram as a learner (issue "a diagram a learner
reads at a glance"), asserted on the visible text of the static SVG (`diagram.html()`), the
same public surface the diagram had before, so each fails on the drawing that had the fault:

1. a connection that lives less than a second is drawn under the name its code gave;
2. a real consumer inside one cell is drawn as a consumer, not basic_get; one program is
   one box; the tutorial's own check connections say so;
3. a program that has left stays drawn (marked "left") while its counts are on the picture;
4. short-lived reply queues are folded into one box, so the default exchange's counts add up;
7. scope: exact names draw no look-alikes, and housekeeping traffic stays out of the log.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pika
import pytest
from flow_support import connect_named, private_vhost, static_svg

from helpers import Broker
from helpers.view.svg import render_svg
from helpers.widgets import FlowDiagram

P = "legible."
SVG = "{http://www.w3.org/2000/svg}"
ADDRESS = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}:\d+\b")


@pytest.fixture(scope="module")
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "legible") as b:
        yield b


def visible_text(svg: str) -> list[str]:
    """Every piece of text drawn (not the hover titles), one string per <text>."""
    root = ET.fromstring(svg)
    return ["".join(t.itertext()).strip() for t in root.iter(SVG + "text")]


def drawn(diagram: FlowDiagram, later_s: float = 0.0) -> list[str]:
    """The visible text of the picture as drawn now, or `later_s` seconds from now."""
    if not later_s:
        return visible_text(static_svg(diagram.html()))
    html = render_svg(diagram.state, now=time.monotonic() + later_s, animate=False)
    return visible_text(html[html.index("<svg") : html.index("</svg>") + 6])


def test_1_a_connection_of_less_than_a_second_has_its_name(vbroker):
    with connect_named(vbroker, "setup") as setup, FlowDiagram(vbroker, prefix=P + "names") as d:
        setup.channel().queue_declare(P + "names", durable=True)  # the vhost goes at the end
        with connect_named(vbroker, "quick sender") as quick:  # opened and closed at once
            quick.channel().basic_publish("", P + "names", b"hi")
        d.wait_until_caught_up()
        texts = drawn(d)
    assert "quick sender" in texts, f"the box is named as the code named it: {texts}"
    assert not [t for t in texts if ADDRESS.search(t)], f"no socket addresses: {texts}"


def test_2_a_consumer_inside_one_cell_is_a_consumer(vbroker):
    with connect_named(vbroker, "setup") as setup, FlowDiagram(vbroker, prefix=P + "fruit") as d:
        setup.channel().queue_declare(P + "fruit", durable=True)  # the vhost goes at the end
        setup.channel().basic_publish("", P + "fruit", b"apple")
        with connect_named(vbroker, "fruit eater") as eater:  # as chapter 03's cells do
            channel = eater.channel()
            channel.basic_consume(P + "fruit", lambda *a: None, auto_ack=True, consumer_tag="f1")
            eater.process_data_events(0.3)
            channel.basic_cancel("f1")
        d.wait_until_caught_up()
        texts = drawn(d)
    assert any("f1" in t for t in texts), f"the consumer is named by its tag: {texts}"
    getters = [t for t in texts if t.startswith("basic_get")]  # an edge or a box line
    assert not getters, f"not drawn as basic_get: {texts}"
    assert texts.count("fruit eater") == 1


def test_2_one_program_is_one_box(vbroker):
    with FlowDiagram(vbroker, prefix=P + "jobs") as d:
        with connect_named(vbroker, "billing worker") as worker:
            channel = worker.channel()
            channel.queue_declare(P + "jobs", exclusive=True)
            channel.basic_publish("", P + "jobs", b"job")
            channel.basic_consume(P + "jobs", lambda *a: None, auto_ack=True, consumer_tag="w1")
            worker.process_data_events(0.3)
            d.wait_until_caught_up()
            texts = drawn(d)
    assert texts.count("billing worker") == 1, f"one program, one box: {texts}"


def test_2_the_tutorials_own_check_is_named_as_such(vbroker):
    with connect_named(vbroker, "setup") as setup, FlowDiagram(vbroker, prefix=P + "checked") as d:
        setup.channel().queue_declare(P + "checked", durable=True)  # the vhost goes at the end
        setup.channel().basic_publish("", P + "checked", b"answer")
        with connect_named(vbroker, "ch99.check") as check:
            check.channel().basic_get(P + "checked", auto_ack=True)
        d.wait_until_caught_up()
        texts = drawn(d)
    assert "ch99.check" in texts
    assert any("tutorial's own" in t for t in texts), f"a check is not a learner's: {texts}"


def test_3_a_program_that_left_stays_while_its_counts_are_drawn(vbroker):
    with connect_named(vbroker, "setup") as setup, FlowDiagram(vbroker, prefix=P + "left") as d:
        setup.channel().queue_declare(P + "left", durable=True)  # the vhost goes at the end
        with connect_named(vbroker, "one-shot sender") as sender:
            for _ in range(3):
                sender.channel().basic_publish("", P + "left", b"hi")
        d.wait_until_caught_up()
        later = drawn(d, later_s=60)  # a minute later, as when the picture is saved
        assert "one-shot sender" in later, f"its 3 messages still come from somewhere: {later}"
        assert any(t == "left" or t.endswith(" left") for t in later)
        d.reset()  # the learner starts counting again: then it goes
        assert "one-shot sender" not in drawn(d)


def test_4_short_lived_reply_queues_are_accounted_for(vbroker):
    with FlowDiagram(vbroker, prefix=(P + "rpc", "amq.gen-")) as d:
        with (
            connect_named(vbroker, "rpc server") as server,
            connect_named(vbroker, "rpc client") as client,
        ):
            s, c = server.channel(), client.channel()
            s.queue_declare(P + "rpc", durable=True)  # outlives the server: only replies go
            reply_to = c.queue_declare("", exclusive=True).method.queue
            for n in range(3):
                c.basic_publish("", P + "rpc", b"%d" % n, pika.BasicProperties(reply_to=reply_to))
            for _ in range(3):
                method, props, body = _get(s, P + "rpc")
                s.basic_publish("", props.reply_to, body)
            for _ in range(3):
                _get(c, reply_to)
        d.wait_until_caught_up()  # the client has gone, and its reply queue with it
        texts = drawn(d)
        totals = d.state.totals()
    assert totals["published"] == 6 and totals["routed"] == 6
    assert any("1 short-lived queue" in t for t in texts), f"the reply queue is drawn: {texts}"


def _get(channel, queue: str):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived in {queue}")


def test_7_exact_names_draw_no_look_alikes(vbroker):
    with connect_named(vbroker, "celery-like") as conn:
        ch = conn.channel()
        for name, kind in (
            ("celery", "direct"),
            ("celery.pidbox", "fanout"),
            ("celeryev", "topic"),
        ):
            ch.exchange_declare(name, kind, auto_delete=True)
        for q in ("celery", "second", "celeryev.5b7c9f1e-2d4a-4c8e-9a1b-3f6e8d2c7b10"):
            ch.queue_declare(q, exclusive=True)
        ch.queue_bind("celery", "celery", "celery")
        with FlowDiagram(vbroker, prefix=("celery", "second")) as d:
            names = {x.name for x in d.state.visible_exchanges()} | {
                q.name for q in d.state.visible_queues()
            }
    assert "celery" in names and "second" in names
    assert not {n for n in names if n.startswith("celeryev")}, names
    assert "celery.pidbox" not in names, "Celery's remote control is housekeeping"


def test_7_heartbeat_events_stay_out_of_the_log(vbroker):
    with connect_named(vbroker, "worker") as conn, FlowDiagram(vbroker, prefix="beats.") as d:
        ch = conn.channel()
        ch.exchange_declare("celeryev", "topic", auto_delete=True)
        ch.queue_declare("beats.events", exclusive=True)
        ch.queue_bind("beats.events", "celeryev", "#")
        ch.exchange_declare("beats.tasks", "direct", auto_delete=True)
        for _ in range(5):
            ch.basic_publish("celeryev", "worker.heartbeat", b'{"type": "worker-heartbeat"}')
        ch.basic_publish("celeryev", "task.sent", b'{"type": "task-sent"}')
        d.wait_until_caught_up()
        log = d.html()
        totals = d.state.totals()
    assert "worker.heartbeat" not in log, "the log shows the learner's messages"
    assert "task.sent" in log
    assert totals.get("housekeeping_hidden") == 5, totals
