"""The chapter 00 self-check passes the right topology and names the first missing piece."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch00

PREFIX = "unit.ch00."
EXCHANGE, QUEUE = PREFIX + "greetings", PREFIX + "exercise"


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[pika.channel.Channel]:
    ch = connection.channel()
    ch.exchange_declare(exchange=EXCHANGE, exchange_type="direct")
    yield ch
    ch = connection.channel()  # the test's own channel may have been closed by an error
    ch.queue_delete(queue=QUEUE)
    ch.exchange_delete(exchange=EXCHANGE)


def _check(broker):
    return ch00.check_exercise(broker, exchange=EXCHANGE, queue=QUEUE, wait_s=0.5)


def test_bound_queue_with_a_routed_message_passes(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"hi")
    result = _check(broker)
    assert result.passed, result.message
    assert repr(result).startswith("✅")


def test_missing_queue(broker, channel):
    result = _check(broker)
    assert not result.passed
    assert "no queue named" in result.message


def test_unbound_queue(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    result = _check(broker)
    assert not result.passed
    assert "nothing binds it" in result.message


def test_wrong_key_is_named(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="Practice")
    result = _check(broker)
    assert not result.passed
    assert "'Practice'" in result.message
    assert repr(result).startswith("❌")


def test_empty_queue(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange=EXCHANGE, routing_key="elsewhere", body=b"dropped")
    result = _check(broker)
    assert not result.passed
    assert "holds no message" in result.message


def test_missing_exchange(broker, channel):
    channel.exchange_delete(exchange=EXCHANGE)
    result = _check(broker)
    assert not result.passed
    assert "is gone" in result.message


def test_missing_queue_hint_names_durable(broker, channel):
    result = _check(broker)
    assert "durable=True" in result.message
    assert "closes the connection" in result.message


def test_queue_that_is_not_durable(broker, channel, monkeypatch):
    # RabbitMQ 4 (as the test node runs it) refuses such a queue; 3.x creates it. The check
    # reads `durable` from the management API, so a 3.x answer is acted out here.
    channel.queue_declare(queue=QUEUE, durable=True)
    real = type(broker.management).queue

    def not_durable(self, name, vhost="/"):
        info = real(self, name, vhost)
        return info and {**info, "durable": False}

    monkeypatch.setattr(type(broker.management), "queue", not_durable)
    result = _check(broker)
    assert not result.passed
    assert "is not durable" in result.message
    assert "queue_delete" in result.message


def test_lesson_key_instead_of_the_exercise_key(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="hello")
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"dropped")
    result = _check(broker)
    assert not result.passed
    assert "with the key 'hello'" in result.message


def test_message_sent_straight_to_the_queue_is_named(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"not through the exchange")
    result = _check(broker)
    assert not result.passed
    assert "default exchange" in result.message
    assert _check(broker).message == result.message  # checking twice: the same answer
    # The check put the message back (it only looked).
    assert channel.queue_declare(queue=QUEUE, passive=True).method.message_count == 1


def test_a_routed_message_passes_after_an_earlier_default_exchange_one(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"first attempt")
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"second attempt")
    result = _check(broker)
    assert result.passed, result.message
