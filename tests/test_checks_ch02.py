"""The chapter 02 self-check passes the right orders and gives one hint per kind of mistake."""

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
}


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[BlockingChannel]:
    ch = connection.channel()
    ch.queue_delete(queue=QUEUE)
    yield ch
    connection.channel().queue_delete(queue=QUEUE)


def _declare(channel, arguments=ch02.ARGUMENTS, durable=True, exclusive=False) -> None:
    channel.queue_declare(
        queue=QUEUE, durable=durable, exclusive=exclusive, arguments=dict(arguments)
    )


def _publish_all(channel, confirm=True, orders=ch02.ORDERS, body=None, **changes) -> list:
    """Publish `orders` as the exercise asks (unless `changes`); return the refused ones."""
    if confirm:
        channel.confirm_delivery()
    refused = []
    for order in orders:
        props = {**RIGHT, "message_id": ch02.message_id(order), **changes}
        try:
            channel.basic_publish(
                "",
                QUEUE,
                json.dumps(order) if body is None else body,
                pika.BasicProperties(**props),
            )
        except pika.exceptions.NackError:
            refused.append(order)
    if not confirm:  # let the broker take them before the check looks
        channel.connection.process_data_events(time_limit=0.3)
    return refused


def _check(broker, refused):
    return ch02.check_exercise(broker, refused, QUEUE)


def test_right_orders_pass_and_stay_in_the_queue(broker, channel):
    _declare(channel)
    refused = _publish_all(channel)
    assert [o["order_id"] for o in refused] == [44, 45]
    first, second = _check(broker, refused), _check(broker, refused)
    assert first.passed and second.passed, (first.message, second.message)
    assert repr(first).startswith("✅")
    assert channel.queue_declare(queue=QUEUE, passive=True).method.message_count == ch02.ROOM


@pytest.mark.parametrize("form", [lambda o: o, lambda o: o["order_id"], ch02.message_id])
def test_refused_as_dicts_ids_or_message_ids(broker, channel, form):
    _declare(channel)
    refused = _publish_all(channel)
    result = _check(broker, [form(o) for o in refused])
    assert result.passed, result.message


def test_missing_queue(broker, channel):
    result = _check(broker, None)
    assert not result.passed and "no queue" in result.message
    assert "durable=True" in result.message


def test_non_durable_queue(broker, channel):
    # Exclusive: RabbitMQ 4.3 and newer refuse a queue that is neither durable nor exclusive
    # by default (541).
    _declare(channel, durable=False, exclusive=True)
    result = _check(broker, [])
    assert not result.passed and "not durable" in result.message


def test_queue_without_the_limit(broker, channel):
    _declare(channel, arguments={})
    _publish_all(channel)
    result = _check(broker, [])
    assert not result.passed and "x-max-length" in result.message
    assert "406" in result.message and "queue_delete" in result.message


def test_empty_queue_and_refused_none(broker, channel):
    _declare(channel)
    assert "empty" in _check(broker, None).message
    _publish_all(channel)
    result = _check(broker, None)
    assert not result.passed and "None" in result.message


def test_without_confirm_mode_nobody_notices(broker, channel):
    _declare(channel)
    refused = _publish_all(channel, confirm=False)
    assert refused == []
    result = _check(broker, refused)
    assert not result.passed
    assert "confirm mode" in result.message and "NackError" in result.message
    assert "44, 45" in result.message


def test_refused_overlaps_the_queue_after_a_second_run(broker, channel):
    _declare(channel)
    _publish_all(channel)
    refused = _publish_all(channel)  # the queue is full: all five refused
    assert len(refused) == 5
    result = _check(broker, refused)
    assert not result.passed and "earlier run" in result.message


def test_orders_neither_held_nor_refused(broker, channel):
    _declare(channel)
    refused = _publish_all(channel)
    result = _check(broker, refused[:1])
    assert not result.passed and "neither" in result.message and "45" in result.message


def test_refused_of_the_wrong_kind(broker, channel):
    _declare(channel)
    _publish_all(channel)
    for wrong in ("44", [json.dumps(ch02.ORDERS[3])], 2):
        result = _check(broker, wrong)
        assert not result.passed and "should be a list" in result.message


def test_an_order_twice(broker, channel):
    _declare(channel)
    _publish_all(channel, orders=ch02.ORDERS[:1] * 2)
    result = _check(broker, [])
    assert not result.passed and "more than once" in result.message


@pytest.mark.parametrize(
    ("changes", "body", "words"),
    [
        ({"delivery_mode": pika.DeliveryMode.Transient}, None, "transient"),
        ({"content_type": "text/plain"}, None, "content_type"),
        ({"message_id": "order-1"}, None, "message_id"),
        ({}, "order 42, one book", "not JSON"),
        ({}, json.dumps({"order_id": 42}), "none of the orders"),
    ],
    ids=["transient", "content-type", "message-id", "not-json", "wrong-order"],
)
def test_each_mistake_gets_its_hint(broker, channel, changes, body, words):
    _declare(channel)
    refused = _publish_all(channel, body=body, **changes)
    result = _check(broker, refused)
    assert not result.passed
    assert words in result.message
    assert repr(result).startswith("❌")


def _start_over(channel, **declare) -> None:
    """The exercise's cell begins so: delete the queue, declare it again."""
    channel.queue_delete(queue=QUEUE)
    _declare(channel, **declare)


def test_a_second_wrong_attempt_gets_its_own_hint(broker, channel):
    _start_over(channel)
    refused = _publish_all(channel, delivery_mode=pika.DeliveryMode.Transient)
    assert "transient" in _check(broker, refused).message
    channel = channel.connection.channel()  # a cell opens a channel of its own
    _start_over(channel)
    refused = _publish_all(channel, content_type="text/plain")
    second = _check(broker, refused)
    assert not second.passed
    assert "content_type" in second.message and "transient" not in second.message


def test_a_rerun_without_deleting_is_named_before_the_earlier_runs_messages(broker, channel):
    # Attempt 1 publishes transient orders; attempt 2 fixes that but does not delete the
    # queue first, so the full queue refuses all five: the queue holds attempt 1's messages.
    _start_over(channel)
    refused = _publish_all(channel, delivery_mode=pika.DeliveryMode.Transient)
    assert "transient" in _check(broker, refused).message
    channel = channel.connection.channel()
    _declare(channel)
    refused = _publish_all(channel)
    assert len(refused) == 5
    second = _check(broker, refused)
    assert not second.passed
    assert "earlier run" in second.message and "transient" not in second.message
    assert _check(broker, refused).message == second.message  # checking twice


def test_new_messages_beside_ones_an_earlier_check_read(broker, channel):
    # Attempt 1 publishes one order only (transient); attempt 2 publishes the others into
    # the same queue without deleting it first.
    _start_over(channel)
    _publish_all(channel, orders=ch02.ORDERS[:1], delivery_mode=pika.DeliveryMode.Transient)
    assert "transient" in _check(broker, []).message
    channel = channel.connection.channel()
    refused = _publish_all(channel, orders=ch02.ORDERS[1:])
    second = _check(broker, refused)
    assert not second.passed
    assert "an earlier check already read" in second.message
    assert "queue_delete" in second.message and "transient" not in second.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, channel):
    _start_over(channel)
    refused = _publish_all(channel, confirm=False)
    assert "confirm mode" in _check(broker, refused).message
    channel = channel.connection.channel()  # a cell opens a channel of its own
    _start_over(channel)
    refused = _publish_all(channel)
    result = _check(broker, refused)
    assert result.passed, result.message
    assert _check(broker, refused).passed
