"""The publish panel's answers to input pika or the broker would refuse (issue 19, finding 7).

Each bad input must be answered in one short line that names the limit or the types accepted,
set before anything is sent: nothing is published, and the previous answer is replaced. A
large body is published whole, and only its start is shown in the code box.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flow_support import connect, private_vhost

from helpers import Broker
from helpers.view.svg import esc
from helpers.widgets import FlowDiagram

P = "paneldev."
QUEUE = P + "inbox"
BIG = 10_000_000


@pytest.fixture(scope="module")
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "panel-inputs") as b:
        yield b


@pytest.fixture
def panel_and_channel(vbroker: Broker) -> Iterator[tuple]:
    """A diagram with its panel aimed at one queue (default exchange), and a channel."""
    connection = connect(vbroker)
    ch = connection.channel()
    ch.queue_declare(QUEUE, durable=True)
    try:
        with FlowDiagram(vbroker, prefix=P) as d:
            panel = d.publish_panel()
            panel.exchange.value = ""
            panel.routing_key.value = QUEUE
            yield d, panel, ch
    finally:
        ch.queue_delete(QUEUE)
        connection.close()


def _queued(ch) -> int:
    return ch.queue_declare(QUEUE, passive=True).method.message_count


BAD_INPUTS = {
    # name: (routing key, headers typed in the panel, words the answer must contain)
    "float header": (QUEUE, '{"price": 1.5}', ("float", "decimal.Decimal", "string", "'price'")),
    "huge integer": (QUEUE, '{"n": 100000000000000000000000}', ("64-bit", "'n'")),
    "nested float": (QUEUE, '{"a": {"b": [1, 2.5]}}', ("float", "decimal.Decimal")),
    "300-byte routing key": ("r" * 300, "", ("routing key", "300 bytes", "255 bytes")),
    "300-byte header name": (QUEUE, "h" * 300 + "=1", ("header name", "255 bytes")),
    "header over one frame": (QUEUE, "big=" + "x" * 200_000, ("frame", "131,072 bytes")),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_publishes_nothing(panel_and_channel, case: str) -> None:
    d, panel, ch = panel_and_channel
    routing_key, headers, words = BAD_INPUTS[case]

    # A good publish first, so the result box holds an answer that must not stay.
    panel.body.value = "first"
    first = panel.publish_from_form()
    assert _published(first) and esc(first) in panel.result.value
    assert d.wait_until_caught_up(timeout=20)
    before = d.state.totals()["published"]

    panel.routing_key.value = routing_key
    panel.headers.value = headers
    panel.body.value = "refused"
    answer = panel.publish_from_form()

    assert "\n" not in answer and len(answer) < 200, answer
    for word in words:
        assert word in answer, f"{word!r} not in {answer!r}"
    assert esc(answer) in panel.result.value and esc(first) not in panel.result.value
    assert "first" not in panel.code.value and "refused" not in panel.code.value  # none ran

    # Nothing went out: the diagram saw no publish, the queue holds only the first message.
    assert d.wait_until_caught_up(timeout=20)
    assert d.state.totals()["published"] == before
    assert _queued(ch) == 1


def test_large_body_is_published_whole_and_shown_short(panel_and_channel) -> None:
    d, panel, ch = panel_and_channel
    panel.body.value = "x" * BIG
    assert _published(panel.publish_from_form())
    assert len(panel.code.value) < 1000, len(panel.code.value)
    assert "10,000,000 bytes" in panel.code.value
    assert "x" * 200 in panel.code.value  # the body's start is there to read
    method, _props, body = ch.basic_get(QUEUE, auto_ack=True)
    assert method is not None and len(body) == BIG and body == b"x" * BIG
    assert d.wait_until_caught_up(timeout=20)
    assert d.state.totals()["published"] == 1


def _published(answer: str) -> bool:
    """The panel's answer to a publish that went out.

    "routed to" when the firehose reported it within the panel's 3 s; on a busy shared node
    it can come later ("not seen in the firehose"). The queue is what the tests check.
    """
    return answer == f"routed to {QUEUE}" or answer.startswith("not seen in the firehose")
