"""The widget around the state: display bundle, publish panel, rendering limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flow_support import connect, private_vhost, static_svg

from helpers import Broker
from helpers.flow.events import TraceEvent
from helpers.flow.state import FlowState
from helpers.flow.topology import Binding, Exchange, Queue, Topology
from helpers.view.scene import MAX_DOTS
from helpers.widgets import (
    STATIC_END,
    STATIC_START,
    FlowDiagram,
    parse_headers,
    render_svg,
)

P = "flowdev."


@pytest.fixture(scope="module")
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "widgets") as b:
        yield b


def test_display_bundle_has_widget_summary_and_static_html(vbroker):
    connection = connect(vbroker)
    ch = connection.channel()
    ch.exchange_declare(P + "logs", "fanout")
    ch.queue_declare(P + "a", durable=True)
    ch.queue_bind(P + "a", P + "logs")
    try:
        with FlowDiagram(vbroker, prefix=P) as d:
            bundle = d._bundle()
            assert "application/vnd.jupyter.widget-view+json" in bundle
            assert bundle["text/plain"] == (
                "FlowDiagram(prefix='flowdev.')\n"
                "  exchange flowdev.logs (fanout): -> flowdev.a\n"
                "  queue flowdev.a: ready=0 unacked=0 consumers=0\n"
                "  messages: published=0 routed=0 unroutable=0 delivered=0 redelivered=0"
            )
            html = bundle["text/html"]
            assert html.startswith(STATIC_START) and html.endswith(STATIC_END)
            # An image, not inline SVG: an untrusted notebook's sanitizer keeps only that.
            assert "<svg" not in html
            svg = static_svg(html)
            assert 'class="exchange"' in svg and 'class="queue"' in svg
            assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
            assert "<circle" not in svg, "the static picture has no moving dots"
            ch.basic_publish(P + "logs", "", b"hi")
            d.wait_until_caught_up()
            assert "published=1 routed=1" in repr(d)
            assert 'class="dot publish"' in d.widget.value
    finally:
        ch.exchange_delete(P + "logs")
        ch.queue_delete(P + "a")
        connection.close()


def test_publish_panel_really_publishes_and_shows_the_code(vbroker):
    connection = connect(vbroker)
    ch = connection.channel()
    ch.exchange_declare(P + "hdr", "headers")
    ch.queue_declare(P + "pdf", durable=True)
    ch.queue_bind(P + "pdf", P + "hdr", arguments={"x-match": "any", "format": "pdf"})
    try:
        with FlowDiagram(vbroker, prefix=P) as d:
            panel = d.publish_panel()
            assert P + "hdr" in [v for _label, v in panel.exchange.options]
            panel.exchange.value = P + "hdr"
            panel.headers.value = "format=pdf"
            panel.body.value = "<img src=x onerror=alert(1)>"
            assert panel.publish_from_form() == "routed to flowdev.pdf"
            assert "channel.basic_publish(" in panel.code.value
            assert "&lt;img" in panel.code.value and "<img" not in panel.code.value
            panel.headers.value = '{"format": "zip"}'
            assert panel.publish_from_form() == "unroutable: dropped by flowdev.hdr"
            text = panel.publish(P + "missing", "k", b"x")
            assert "'flowdev.missing' does not exist" in text and "run the cell" in text
            assert "\n" not in text
            assert panel.publish("", P + "pdf", b"again") == "routed to flowdev.pdf"
            method, _p, body = ch.basic_get(P + "pdf", auto_ack=True)
            assert body == b"<img src=x onerror=alert(1)>"
        # After the chapter's cleanup closed the diagram, Publish still answers in one line.
        after = panel.publish("", P + "pdf", b"after cleanup")
        assert after.startswith("published; the diagram is closed") and "\n" not in after
        ch.exchange_delete(P + "hdr")
        panel.exchange.value = P + "hdr"
        gone = panel.publish_from_form()
        assert "does not exist" in gone and "run the cell that declares it" in gone

        def panel_connections() -> list:  # one connection per click, closed right after
            return [
                c
                for c in vbroker.management.connections()
                if c.get("client_properties", {}).get("connection_name") == "tutorial publish panel"
            ]

        deadline = time.monotonic() + 3  # the API lists connections from statistics
        while panel_connections() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not panel_connections()
    finally:
        ch.exchange_delete(P + "hdr")
        ch.queue_delete(P + "pdf")
        connection.close()


def test_running_a_diagram_cell_again_replaces_the_old_diagram(vbroker):
    first = FlowDiagram(vbroker, prefix=P)
    second = FlowDiagram(vbroker, prefix=P)  # the same cell, run again
    other = FlowDiagram(vbroker, prefix=P + "other.")
    try:
        assert first.closed and not second.closed and not other.closed
    finally:
        for d in (first, second, other):
            d.close()
    assert not vbroker.management.tracing(vbroker.vhost)


def test_parse_headers():
    assert parse_headers("") == {}
    assert parse_headers("a=1\nb = two") == {"a": "1", "b": "two"}
    assert parse_headers('{"n": 3}') == {"n": 3}
    with pytest.raises(ValueError):
        parse_headers("no equals sign")
    with pytest.raises(ValueError):
        parse_headers("{not json")


def _event(i: int) -> TraceEvent:
    return TraceEvent(
        "publish", P + "x", ("k",), (P + "q",), connection="c", channel=1, body=str(i).encode()
    )


def test_dots_are_bounded_and_old_ones_are_not_animated():
    state = FlowState(prefix=P)
    state.set_topology(
        Topology(
            exchanges=(Exchange(P + "x", "direct"),),
            queues=(Queue(P + "q"),),
            bindings=(Binding(P + "x", P + "q", "queue", "k"),),
        )
    )
    state.add_events([_event(i) for i in range(500)], now=100.0)
    svg = render_svg(state, now=100.1)
    assert svg.count('class="dot publish"') == MAX_DOTS
    assert f"+{state.recent_size - MAX_DOTS} more in flight" in svg
    assert 'class="dot' not in render_svg(state, now=200.0)
    assert len(state.recent) <= state.recent_size
