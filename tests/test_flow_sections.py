"""What chapter 04's per-section diagrams need, against the real broker.

Chapter 04 draws each section's exchanges and queues in their own diagram, listing their
names as a tuple of prefixes; the fanout section's subscriber queues are server-named
(`amq.gen-...`), and only their exact names draw them without every other `amq.gen-` queue
in the vhost. Its exchange-to-exchange and alternate-exchange sections need links between
exchanges that count messages (not copies) and bindings that stay visible past them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flow_support import emptied_channel, private_vhost

from helpers import Broker
from helpers.widgets import NODE_H, FlowDiagram, Layout, render_svg

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
        lay = Layout(state)
        events_y = lay.pos[("x", P + "events")][1]
        orders_y = lay.pos[("x", P + "orders")][1]
        # The deeper exchange is staggered, so events' straight binding to a queue at
        # its own height does not run hidden behind the orders box.
        assert orders_y - events_y >= NODE_H / 2


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
        # One label for the three keys: clipped to the room before the queue's box, whole
        # as the edge's tooltip, and not three labels drawn on top of each other.
        assert "<title>error | info | warning</title>" in svg
        assert len(re.findall(r'<text class="label"[^>]*>[^<]*(error|info|warning)', svg)) == 1
        assert re.search(r'<text class="label"[^>]*>error \| inf[^<]* · 1<', svg), svg


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
        # Clipped on the edge, with the whole label as the edge's tooltip.
        assert ">all: format=pdf…<" in svg, "its mode leads, so clipping keeps it"
        assert "<title>all: format=pdf, type=report</title>" in svg
