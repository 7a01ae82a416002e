"""The chapter 02 self-check passes the right order and gives one hint per kind of mistake."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from helpers.checks import ch02

QUEUE = "unit.ch02.orders"
RIGHT = {
    "content_type": "application/json",
    "delivery_mode": pika.DeliveryMode.Persistent,
    "message_id": "order-42",
}


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[BlockingChannel]:
    ch = connection.channel()
    ch.queue_delete(queue=QUEUE)
    ch.confirm_delivery()  # an ack means the queue holds the message before the check runs
    yield ch
    connection.channel().queue_delete(queue=QUEUE)


def _publish(channel, body=None, **changes) -> None:
    props = {**RIGHT, **changes}
    body = json.dumps(ch02.ORDER) if body is None else body
    channel.basic_publish("", QUEUE, body, pika.BasicProperties(**props))


def _check(broker):
    return ch02.check_exercise(broker, QUEUE)


def test_right_order_passes_and_stays_in_the_queue(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    _publish(channel)
    first, second = _check(broker), _check(broker)
    assert first.passed and second.passed, (first.message, second.message)
    assert repr(first).startswith("✅")
    assert channel.queue_declare(queue=QUEUE, passive=True).method.message_count == 1


def test_missing_queue(broker, channel):
    result = _check(broker)
    assert not result.passed and "no queue" in result.message


def test_non_durable_queue(broker, channel):
    # Exclusive: RabbitMQ 4 refuses a queue that is neither durable nor exclusive (541).
    channel.queue_declare(queue=QUEUE, durable=False, exclusive=True)
    _publish(channel)
    result = _check(broker)
    assert not result.passed and "not durable" in result.message


def test_empty_and_two_messages(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    assert "empty" in _check(broker).message
    _publish(channel)
    _publish(channel)
    result = _check(broker)
    assert not result.passed and "2 messages" in result.message


@pytest.mark.parametrize(
    ("changes", "body", "words"),
    [
        ({"delivery_mode": pika.DeliveryMode.Transient}, None, "transient"),
        ({"content_type": "text/plain"}, None, "content_type"),
        ({"message_id": "order-41"}, None, "message_id"),
        ({}, "order 42, one book", "not JSON"),
        ({}, json.dumps({"order_id": 42}), "decodes to"),
    ],
    ids=["transient", "content-type", "message-id", "not-json", "wrong-order"],
)
def test_each_mistake_gets_its_hint(broker, channel, changes, body, words):
    channel.queue_declare(queue=QUEUE, durable=True)
    _publish(channel, body, **changes)
    result = _check(broker)
    assert not result.passed
    assert words in result.message
    assert repr(result).startswith("❌")
