"""The chapters' crowded shapes, drawn from a real broker, read well in a real browser.

A topic fan-out, a headers exchange, dead-lettering and request/reply (through a reply queue
and through direct reply-to) are made on the broker, drawn by the live diagram, and measured
in Debian's headless Chromium with the gallery's checks (tests/diagram_checks.py): no two
texts over each other, nothing out of its box, every edge label nearer its own edge than any
other and free of strokes, caption and legend at body-text size. A PNG of each is kept in
test-artifacts/ for a human look.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from diagram_checks import CHROMIUM, CHROMIUM_ARGS, measure, problems
from flow_support import connect_named, private_vhost

from helpers import Broker
from helpers.widgets import FlowDiagram

P = "flowdev."
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "read") as b:
        yield b


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
    client, server = connect_named(b, "rpc client"), connect_named(b, "rpc server")
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


@pytest.mark.parametrize("name", ["topic", "headers", "dlx", "rpc"])
def test_the_chapters_shapes_read_well(vbroker, name):
    from playwright.sync_api import sync_playwright

    prefix = {
        "topic": (P + "topic", P + "all", P + "errors", P + "kern", P + "auth", P + "audit"),
        "headers": (P + "headers", P + "pdf", P + "zip", P + "big"),
        "dlx": (P + "work", P + "dlx", P + "parking"),
        "rpc": (P + "rpc", P + "replies"),
    }[name]
    with connect_named(vbroker, "shapes") as conn:
        with FlowDiagram(vbroker, prefix=prefix) as diagram:
            if name == "rpc":
                programs = _rpc(vbroker)
            else:
                programs = []
                _shapes(conn.channel())
            diagram.wait_until_caught_up()
            html = diagram.html(animate=True)  # the live widget's inline SVG
            for program in programs:
                program.close()
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            m = measure(page, html)
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("div.flowdiagram").screenshot(path=str(ARTIFACTS / f"shapes_{name}.png"))
        finally:
            browser.close()
    labels = [t for e in m["edges"] for t in e["labels"]]
    assert len(labels) >= {"topic": 5, "headers": 3, "dlx": 1, "rpc": 3}[name], labels
    if name == "rpc":
        assert any("reply · 6" in t["text"] for t in labels), labels
    found = problems(m)
    assert not found, f"{name}: " + "; ".join(f"{k}: {v[:6]}" for k, v in found.items())
