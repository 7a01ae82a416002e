"""The chapter 09 self-check passes a right answer and names each typical mistake.

It runs on the test broker (the private node, which has MQTT): the check publishes its probes
over MQTT there. One test takes MQTT away (`mqtt=None`) to cover brokers without the plugin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch09

QUEUE = "unit.ch09.alarms"


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[pika.channel.Channel]:
    ch = connection.channel()
    ch.queue_delete(queue=QUEUE)
    yield ch
    ch = connection.channel()  # the test's own channel may have been closed by an error
    ch.queue_delete(queue=QUEUE)
    ch.exchange_delete(exchange="unit.ch09.other")


def _attempt(channel, *keys: str, exchange: str = "amq.topic", start_over: bool = True) -> None:
    """What a learner's cell does: (delete,) declare, bind with each key."""
    if start_over:
        channel.queue_delete(queue=QUEUE)
    channel.queue_declare(queue=QUEUE, durable=True)
    for key in keys:
        channel.queue_bind(queue=QUEUE, exchange=exchange, routing_key=key)


def _check(broker):
    return ch09.check_exercise(broker, QUEUE)


def test_right_binding_passes_twice(broker, channel):
    assert broker.mqtt is not None, "the test node runs the MQTT plugin"
    _attempt(channel, "ch09.exercise.*.alarm")
    for _ in range(2):
        result = _check(broker)
        assert result.passed, result.message
        assert repr(result).startswith("✅")


def test_right_binding_passes_without_mqtt(broker, channel):
    _attempt(channel, "ch09.exercise.*.alarm")
    result = ch09.check_exercise(dataclasses.replace(broker, mqtt_port=1), QUEUE)
    assert result.passed, result.message


def test_no_queue(broker, channel):
    result = _check(broker)
    assert not result.passed and "no queue named" in result.message


@pytest.mark.parametrize(
    ("keys", "exchange", "words"),
    [
        (("ch09/exercise/+/alarm",), "amq.topic", "written the MQTT way"),
        (("ch09.exercise.+.alarm",), "amq.topic", "written the MQTT way"),
        (("ch09.exercise.#",), "amq.topic", "`#` matches any number"),
        (("ch09.exercise.#.alarm",), "amq.topic", "`#` matches any number"),
        (("ch09.exercise.kitchen.alarm",), "amq.topic", "did not reach"),
        (("ch09.exercise.*.alarm",), "unit.ch09.other", "bind the queue there"),
    ],
)
def test_typical_mistakes_get_their_hint(broker, channel, keys, exchange, words):
    if exchange != "amq.topic":
        channel.exchange_declare(exchange=exchange, exchange_type="topic")
    _attempt(channel, *keys, exchange=exchange)
    result = _check(broker)
    assert not result.passed
    assert words in result.message, result.message
    assert _check(broker).message == result.message  # checking again: the same hint


def test_two_wrong_attempts_then_a_right_one(broker, channel):
    _attempt(channel, "ch09/exercise/+/alarm")
    assert "MQTT way" in _check(broker).message
    _attempt(channel, "ch09.exercise.#")
    second = _check(broker)
    assert not second.passed and "`#` matches" in second.message, second.message
    _attempt(channel, "ch09.exercise.*.alarm")
    assert _check(broker).passed


def test_a_binding_left_from_an_earlier_attempt(broker, channel):
    _attempt(channel, "ch09.exercise.#")
    _attempt(channel, "ch09.exercise.*.alarm", start_over=False)
    result = _check(broker)
    assert not result.passed and "left from an earlier attempt" in result.message


def test_routing_key_of_a_topic():
    assert ch09.routing_key("ch09/exercise/kitchen/alarm") == "ch09.exercise.kitchen.alarm"
    assert ch09.routing_key("a/v1.2/b") == "a.v1.2.b"
