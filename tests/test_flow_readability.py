"""The picture reads well for many exchanges, queues and short-lived programs.

Programs that hung up fade and go, boxes name their connection, one program's producer and
consumer sides share a colour, and no two edge labels are drawn over each other: checked on
the topic, headers and dead-letter shapes of the chapters, with the label boxes measured by
Chromium (the text's real extents, not an estimate).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import pika
import pytest
from flow_support import private_vhost, static_svg

from helpers import Broker
from helpers.flow.state import FADE_S, MAX_CLIENTS
from helpers.view.layout import Layout
from helpers.widgets import FlowDiagram

P = "flowdev."
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "read") as b:
        yield b


def _connect(b: Broker, name: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        b.connection_parameters(client_properties={"connection_name": name})
    )


def test_programs_that_left_fade_and_go(vbroker):
    with _connect(vbroker, "setup") as setup, FlowDiagram(vbroker, prefix=P) as diagram:
        setup.channel().queue_declare(P + "inbox", exclusive=True)
        for n in range(30):  # thirty runs of a one-shot sender
            with _connect(vbroker, f"one-shot sender {n}") as sender:
                sender.channel().basic_publish("", P + "inbox", b"hi")
        diagram.wait_until_caught_up()
        state = diagram.state
        assert state.totals()["published"] == 30, "they all count"

        def drawn_and_live(now: float) -> list:
            return [c for c in Layout(state, now).producers if state.fading(c, now) == 0]

        deadline = time.monotonic() + 10  # the API lists connections from statistics
        while drawn_and_live(time.monotonic()) and time.monotonic() < deadline:
            time.sleep(0.3)
        now = time.monotonic()
        soon = Layout(state, now)
        later = Layout(state, now + FADE_S + 1)
        assert drawn_and_live(now) == [], "every sender is known to have hung up: fading"
        assert 0 < len(soon.producers) <= MAX_CLIENTS, "a bounded picture"
        assert later.producers == [], "after fading they leave the picture"
        assert later.height < soon.height / 4


def test_boxes_name_the_program_and_join_its_two_sides(vbroker):
    with _connect(vbroker, "billing worker") as worker, FlowDiagram(vbroker, prefix=P) as d:
        channel = worker.channel()
        channel.queue_declare(P + "jobs", durable=True)  # outlives the worker (the vhost goes)
        channel.basic_consume(P + "jobs", lambda *_a: None, auto_ack=True, consumer_tag="w1")
        channel.basic_publish("", P + "jobs", b"job")
        worker.process_data_events(0.3)
        d.wait_until_caught_up()
        svg = static_svg(d.html())
        worker.close()  # the program hangs up: its box keeps its name while it fades
        deadline = time.monotonic() + 10
        while (not d.state.gone_at or d.state.visible_consumers()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        after = static_svg(d.html())
    left = re.search(r'<g class="producer"[^>]*>.*?</g>', after).group(0)
    assert ">billing worker<" in left and "opacity" in left
    # Its consumer has gone too: named by its tag, not mistaken for basic_get.
    gone = re.search(r'<g class="consumer getter"[^>]*>.*?</g>', after).group(0)
    assert "w1 (left)" in gone and "basic_get" not in gone
    producer = re.search(r'<g class="producer"[^>]*>.*?</g>', svg).group(0)
    consumer = re.search(r'<g class="consumer"[^>]*>.*?</g>', svg).group(0)
    for box in (producer, consumer):
        assert ">billing worker<" in box, "the box names its connection"
    assert "opacity" not in producer, "a live program is not faded"
    assert "w1" in consumer, "the consumer box names its consumer tag"
    colour = re.compile(r'class="program"[^>]*fill="(#[0-9a-f]{6})"')
    assert colour.search(producer).group(1) == colour.search(consumer).group(1)
    assert "routed counts copies" in svg, "the totals have a legend"


def _shapes(channel) -> None:
    """The chapters' crowded shapes: a topic fan-out, a headers exchange, dead-lettering."""
    channel.exchange_declare(P + "topic", "topic")
    for q, keys in {
        "all": ["#"],
        "errors": ["*.error", "*.critical"],
        "kern": ["kern.*"],
        "auth": ["auth.*", "*.critical"],
        "audit": ["audit.#", "auth.login"],
    }.items():
        channel.queue_declare(P + q, exclusive=True)
        for key in keys:
            channel.queue_bind(P + q, P + "topic", key)
    channel.exchange_declare(P + "headers", "headers")
    for q, args in {
        "pdf": {"x-match": "all", "format": "pdf", "type": "report"},
        "zip": {"x-match": "any", "format": "zip", "archive": "yes"},
        "big": {"x-match": "any", "size": "large"},
    }.items():
        channel.queue_declare(P + q, exclusive=True)
        channel.queue_bind(P + q, P + "headers", arguments=args)
    channel.exchange_declare(P + "dlx", "fanout")
    channel.queue_declare(P + "parking", exclusive=True)
    channel.queue_bind(P + "parking", P + "dlx")
    channel.queue_declare(
        P + "work", exclusive=True, arguments={"x-dead-letter-exchange": P + "dlx"}
    )
    for key in ("kern.error", "auth.critical", "audit.login", "app.info"):
        channel.basic_publish(P + "topic", key, b"x")
    channel.basic_publish(
        P + "headers", "", b"x", pika.BasicProperties(headers={"format": "pdf", "type": "report"})
    )


def _rpc(b: Broker) -> list[pika.BlockingConnection]:
    """Chapter 06's shapes: calls answered through a reply queue and through direct reply-to.

    Returns the connections, to be closed after the picture is taken (a program's boxes
    fade once it has hung up).
    """
    client, server = _connect(b, "rpc client"), _connect(b, "rpc server")
    calls, answers = client.channel(), server.channel()
    answers.queue_declare(P + "rpc", exclusive=True)  # the server's; callers publish to it
    calls.queue_declare(P + "replies", exclusive=True)
    replies: list[bytes] = []
    calls.basic_consume(P + "replies", lambda *a: replies.append(a[3]), auto_ack=True)
    calls.basic_consume("amq.rabbitmq.reply-to", lambda *a: replies.append(a[3]), auto_ack=True)
    for n in range(12):
        reply_to = P + "replies" if n % 2 else "amq.rabbitmq.reply-to"
        calls.basic_publish("", P + "rpc", b"%d" % n, pika.BasicProperties(reply_to=reply_to))
        method = props = None
        while method is None:
            method, props, _body = answers.basic_get(P + "rpc", auto_ack=True)
        answers.basic_publish("", props.reply_to, b"answer")
        while len(replies) <= n:
            client.process_data_events(time_limit=0.05)
    return [client, server]


def _label_boxes(svg: str, name: str) -> list[dict]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_content(f"<html><body style='margin:0'>{svg}</body></html>")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"labels_{name}.png"), full_page=True)
            return page.evaluate(
                """() => [...document.querySelectorAll(
                            'g.edge text, text.unroutable, g.exchange > rect, g.queue > rect,'
                            + 'g.producer > rect:not(.program), g.consumer > rect')]
                    .map(t => { const b = t.getBBox();
                                return {text: t.textContent || t.parentNode.dataset.name,
                                        box: t.tagName === 'rect',
                                        x: b.x, y: b.y, w: b.width, h: b.height}; })"""
            )
        finally:
            browser.close()


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["w"] <= b["x"]
        or b["x"] + b["w"] <= a["x"]
        or a["y"] + a["h"] <= b["y"]
        or b["y"] + b["h"] <= a["y"]
    )


@pytest.mark.parametrize("name", ["topic", "headers", "dlx", "rpc"])
def test_no_two_edge_labels_overlap(vbroker, name):
    prefix = {
        "topic": (P + "topic", P + "all", P + "errors", P + "kern", P + "auth", P + "audit"),
        "headers": (P + "headers", P + "pdf", P + "zip", P + "big"),
        "dlx": (P + "work", P + "dlx", P + "parking"),
        "rpc": (P + "rpc", P + "replies"),
    }[name]
    with _connect(vbroker, "shapes") as conn:
        with FlowDiagram(vbroker, prefix=prefix) as diagram:
            if name == "rpc":
                programs = _rpc(vbroker)
            else:
                programs = []
                _shapes(conn.channel())
            diagram.wait_until_caught_up()
            svg = static_svg(diagram.html())
            for program in programs:
                program.close()
    shapes = _label_boxes(svg, name)
    labels = [s for s in shapes if not s["box"]]
    assert len(labels) >= {"topic": 5, "headers": 3, "dlx": 1, "rpc": 1}[name], shapes
    if name == "rpc":
        assert any(s["text"].startswith("reply · 6") for s in labels), labels
    clashes = [
        (a["text"], b["text"])
        for a, b in combinations(shapes, 2)
        if not (a["box"] and b["box"]) and _overlap(a, b)
    ]
    assert not clashes, f"labels drawn over each other or over a box: {clashes}"
