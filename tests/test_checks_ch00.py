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
    assert "RabbitMQ 4.3 and newer refuse" in result.message and "by default" in result.message
    assert "close the connection" in result.message


def test_queue_that_is_not_durable(broker, channel, monkeypatch):
    # RabbitMQ 4.3 and newer refuse such a queue by default (the test node denies it, as
    # upstream 4.3 does); 4.0-4.2 warn, and 3.x, or a build that permits the deprecated
    # feature, creates it. The check reads `durable` from the management API, so such a
    # broker's answer is acted out here.
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
    assert "took the messages it looked at out" in result.message
    # The check took the wrong message out, so that the next attempt is judged on its own.
    assert channel.queue_declare(queue=QUEUE, passive=True).method.message_count == 0
    again = _check(broker)  # checking again without a new attempt
    assert not again.passed
    assert "holds no message since the check took out the one it judged" in again.message


def test_a_routed_message_passes_after_an_earlier_default_exchange_one(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"first attempt")
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"second attempt")
    result = _check(broker)
    assert result.passed, result.message
    # Passing takes nothing out: both messages are back, and checking again passes again.
    assert channel.queue_declare(queue=QUEUE, passive=True).method.message_count == 2
    again = _check(broker)
    assert again.passed and again.message == result.message


def test_the_newest_message_is_judged_not_an_earlier_right_one(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"first attempt")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"latest attempt")
    result = _check(broker)
    assert not result.passed and "default exchange" in result.message


def test_a_wrong_key_after_a_default_exchange_attempt_gets_its_own_hint(broker, channel):
    # The review's case: attempt 1 went through the default exchange; attempt 2 goes through
    # the exchange with a key that matches no binding, so the broker drops it.
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"attempt 1")
    first = _check(broker)
    assert not first.passed and "default exchange" in first.message
    channel.basic_publish(exchange=EXCHANGE, routing_key="hello", body=b"attempt 2")
    second = _check(broker)
    assert not second.passed
    assert "default exchange" not in second.message
    assert "holds no message" in second.message and "matches no binding" in second.message
    assert "'practice'" in second.message


def test_a_wrong_key_without_a_check_in_between(broker, channel):
    # Attempt 1 (default exchange) was never checked; attempt 2's message was dropped. The
    # newest message is attempt 1's: the check cannot see a dropped publish, and says what
    # it sees about the newest message it has.
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"attempt 1")
    channel.basic_publish(exchange=EXCHANGE, routing_key="hello", body=b"attempt 2, dropped")
    result = _check(broker)
    assert not result.passed and "default exchange" in result.message


def test_a_leftover_binding_routes_the_latest_message_with_the_old_key(broker, channel):
    # Attempt 1 bound and published with the lesson's key `hello`: the binding hint. Attempt 2
    # bound with `practice` but published with `hello` again: the old binding routed it.
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="hello")
    channel.basic_publish(exchange=EXCHANGE, routing_key="hello", body=b"attempt 1")
    first = _check(broker)
    assert not first.passed and "with the key 'hello'" in first.message
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange=EXCHANGE, routing_key="hello", body=b"attempt 2")
    second = _check(broker)
    assert not second.passed
    assert "with the routing key 'hello'" in second.message
    assert "left from an earlier attempt" in second.message and "queue_unbind" in second.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, channel):
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="practice")
    channel.basic_publish(exchange="", routing_key=QUEUE, body=b"attempt 1")
    assert "default exchange" in _check(broker).message
    channel.basic_publish(exchange=EXCHANGE, routing_key="practice", body=b"attempt 2")
    result = _check(broker)
    assert result.passed, result.message
    assert _check(broker).passed  # and again


def test_a_wrong_queue_then_a_wrong_binding(broker, channel):
    channel.queue_declare(queue=QUEUE + ".typo", durable=True)
    try:
        assert "no queue named" in _check(broker).message
        channel.queue_declare(queue=QUEUE, durable=True)
        channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="Practice")
        second = _check(broker)
        assert not second.passed and "'Practice'" in second.message
    finally:
        channel.queue_delete(queue=QUEUE + ".typo")
