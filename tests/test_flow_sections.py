"""What chapter 04's per-section diagrams need, against the real broker.

Chapter 04 draws each section's exchanges and queues in their own diagram, listing their
names as a tuple of prefixes; the fanout section's subscriber queues are server-named
(`amq.gen-...`), and only their exact names draw them without every other `amq.gen-` queue
in the vhost. Its exchange-to-exchange and alternate-exchange sections need links between
exchanges that count messages (not copies) and bindings that stay visible past them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from flow_support import emptied_channel, private_vhost

from helpers import Broker
from helpers.view.layout import place
from helpers.view.scene import picture_of
from helpers.widgets import FlowDiagram, render_svg

P = "flowdev."


@pytest.fixture(scope="module")
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "sections") as b:
        yield b


@pytest.fixture
def ch(vbroker: Broker):
    yield from emptied_channel(vbroker, P)


def test_tuple_prefix_draws_exactly_the_listed_names(vbroker, ch):
    ch.exchange_declare(P + "fan", "fanout")
    ch.exchange_declare(P + "other", "fanout")
    subscriber = ch.queue_declare("", exclusive=True).method.queue
    stranger = ch.queue_declare("", exclusive=True).method.queue
    for q in (subscriber, stranger):
        ch.queue_bind(q, P + "fan")
    ch.queue_declare(P + "elsewhere", durable=True)
    ch.queue_bind(P + "elsewhere", P + "other")
    with FlowDiagram(vbroker, prefix=(P + "fan", subscriber)) as diagram:
        ch.basic_publish(P + "fan", "", b"news")
        ch.basic_publish(P + "other", "", b"not drawn")
        diagram.wait_until_caught_up()
        state = diagram.state
        assert [q.name for q in state.visible_queues()] == [subscriber]
        assert [x.name for x in state.visible_exchanges()] == [P + "fan"]
        assert state.routed[(P + "fan", subscriber)] == 1
        assert state.totals()["published"] == 1  # the other exchange is out of scope
        publish = [m for m in state.recent if m.kind == "publish"][-1]
        assert publish.queues == (subscriber,)
        assert publish.hidden_routes == 1  # the stranger's copy, reached but not drawn
        assert diagram.summary().startswith(f"FlowDiagram(prefix=({P + 'fan'!r}, ")


def test_links_between_exchanges_count_messages_and_stay_clear(vbroker, ch):
    ch.exchange_declare(P + "events", "topic")
    ch.exchange_declare(P + "orders", "fanout")
    ch.exchange_bind(P + "orders", P + "events", "order.#")
    for q in ("billing", "shipping"):
        ch.queue_declare(P + q, durable=True)
        ch.queue_bind(P + q, P + "orders")
    ch.queue_declare(P + "audit", durable=True)
    ch.queue_bind(P + "audit", P + "events", "#")
    with FlowDiagram(vbroker, prefix=P) as diagram:
        for key in ("order.created", "order.paid", "user.signed_up"):
            ch.basic_publish(P + "events", key, b"event")
        diagram.wait_until_caught_up()
        state = diagram.state
        assert state.routed[(P + "events", P + "billing")] == 2  # the broker's answer
        svg = render_svg(state, animate=False)
        # Two messages went through events -> orders, each on to two queues.
        assert "order.# · 2<" in svg
        assert "order.# · 4<" not in svg
        boxes = place(picture_of(state, time.monotonic())).boxes
        # The exchange behind another one stands in a column of its own, to the right.
        events, orders = boxes["x:" + P + "events"], boxes["x:" + P + "orders"]
        assert orders.x >= events.x + events.w


def test_several_bindings_between_two_nodes_share_one_labelled_edge(vbroker, ch):
    ch.exchange_declare(P + "logs", "direct")
    ch.queue_declare(P + "screen", durable=True)
    for key in ("info", "warning", "error"):
        ch.queue_bind(P + "screen", P + "logs", key)
    with FlowDiagram(vbroker, prefix=P) as diagram:
        ch.basic_publish(P + "logs", "info", b"started")
        diagram.wait_until_caught_up()
        svg = render_svg(diagram.state, animate=False)
        assert svg.count('class="edge binding"') == 1
        # One label for the three keys, whole (wrapped if need be), not three labels drawn
        # on top of each other.
        # (the publish edge's count is a label too: the binding's is the one with a key)
        labels = re.findall(r'<text class="label" data-edge="binding[^"]*".*?</text>', svg)
        assert len(labels) == 1, labels
        assert re.sub(r"<[^>]+>", " ", labels[0]).split() == "error | info | warning · 1".split()


def test_headers_binding_label_leads_with_its_mode(vbroker, ch):
    ch.exchange_declare(P + "documents", "headers")
    ch.queue_declare(P + "pdf_reports", durable=True)
    ch.queue_bind(
        P + "pdf_reports",
        P + "documents",
        arguments={"x-match": "all", "format": "pdf", "type": "report"},
    )
    with FlowDiagram(vbroker, prefix=P) as diagram:
        diagram.wait_until_caught_up()
        svg = render_svg(diagram.state, animate=False)
        # Its mode leads, and the whole label is drawn (wrapped if need be), never cut.
        labels = re.findall(r'<text class="label".*?</text>', svg)
        words = [re.sub(r"<[^>]+>", " ", t).split() for t in labels]
        assert "all: format=pdf, type=report".split() in words, words
