"""The chapter 05 self-check passes a correct parking set-up and names what is wrong otherwise.

Each test builds the exercise's topology under its own names on the real broker and answers
the deliveries in a different (right or wrong) way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch05

PREFIX = "unit.ch05."
ORDERS, DLX, PARKED = PREFIX + "orders", PREFIX + "dlx", PREFIX + "parked"
BODIES = (b"order-1", b"order-2", b"poison", b"order-3")


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[pika.channel.Channel]:
    ch = connection.channel()
    for queue in (ORDERS, PARKED):
        ch.queue_delete(queue)
    ch.exchange_delete(DLX)
    yield ch
    ch = connection.channel()  # the test's own channel may be closed
    for queue in (ORDERS, PARKED):
        ch.queue_delete(queue)
    ch.exchange_delete(DLX)


def _topology(ch, dead_letter_exchange: str | None = DLX) -> None:
    ch.exchange_declare(DLX, exchange_type="fanout")
    ch.queue_declare(PARKED, durable=True)
    ch.queue_bind(queue=PARKED, exchange=DLX)
    args = {"x-dead-letter-exchange": dead_letter_exchange} if dead_letter_exchange else None
    ch.queue_declare(ORDERS, durable=True, arguments=args)
    ch.confirm_delivery()
    for body in BODIES:
        ch.basic_publish(exchange="", routing_key=ORDERS, body=body)


def _answer(ch, poison: str = "reject", orders: str = "ack") -> None:
    """Fetch all four and answer each; 'reject', 'requeue', 'ack' or 'none' (no answer)."""
    for _ in BODIES:
        method, _props, body = ch.basic_get(ORDERS)
        action = poison if body == b"poison" else orders
        if action == "reject":
            ch.basic_reject(method.delivery_tag, requeue=False)
        elif action == "ack":
            ch.basic_ack(method.delivery_tag)
        elif action == "requeue":
            ch.basic_reject(method.delivery_tag)  # requeue=True by default


def _check(broker):
    return ch05.check_exercise(broker, orders=ORDERS, dlx=DLX, parked=PARKED, wait_s=1.0)


def test_correct_solution_passes_twice(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker)
    worker.close()
    result = _check(broker)
    assert result.passed, result.message
    assert repr(result).startswith("✅")
    again = _check(broker)  # the check puts the parked message back
    assert again.passed, again.message


def test_missing_queue(broker, channel):
    result = _check(broker)
    assert not result.passed
    assert "no queue named" in result.message


def test_queue_without_dead_letter_exchange(broker, connection, channel):
    _topology(channel, dead_letter_exchange=None)
    result = _check(broker)
    assert not result.passed
    assert "no dead-letter exchange" in result.message


def test_unanswered_orders_are_named(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, orders="none")
    result = _check(broker)
    worker.close()
    assert not result.passed
    assert "3 message(s)" in result.message and "neither acked nor rejected" in result.message


def test_acked_poison_leaves_the_parking_queue_empty(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, poison="ack")
    worker.close()
    result = _check(broker)
    assert not result.passed
    assert "is empty" in result.message


def test_everything_rejected_is_too_much(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, orders="reject")
    worker.close()
    result = _check(broker)
    assert not result.passed
    assert "holds 4 messages" in result.message
    assert repr(result).startswith("❌")


def test_the_empty_exercise_says_where_to_start(broker, channel):
    result = _check(broker)
    assert not result.passed
    assert "with pika.BlockingConnection(params)" in result.message


def test_a_poison_message_nacked_with_the_default_requeue(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    for _ in range(10):  # a loop bounded as deliveries() is: the poison keeps coming back
        method, _props, body = worker.basic_get(ORDERS)
        if body == b"poison":
            worker.basic_nack(method.delivery_tag)  # requeue=True by default
        else:
            worker.basic_ack(method.delivery_tag)
    worker.close()
    result = _check(broker)
    assert not result.passed
    assert "'poison' is back in" in result.message
    assert "requeue=True" in result.message and "requeue=False" in result.message
    assert _check(broker).message == result.message  # looking put the message back


def test_orders_never_acked_come_back_when_the_channel_closes(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, orders="none")
    worker.close()  # as the `with` block of the learner's cell does
    result = _check(broker)
    assert not result.passed
    assert "3 message(s) wait" in result.message and "never acked" in result.message
    assert "'order-1', 'order-2', 'order-3'" in result.message


def test_nothing_consumed(broker, channel):
    _topology(channel)
    result = _check(broker)
    assert not result.passed
    assert "4 message(s) still wait" in result.message and "requeue=False" in result.message


def _start_over(ch) -> None:
    """The exercise's cell begins so: delete the three, so that it can run again."""
    for queue in (ORDERS, PARKED):
        ch.queue_delete(queue)
    ch.exchange_delete(DLX)


def test_a_second_wrong_attempt_gets_its_own_hint(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, poison="requeue")  # basic_reject's default: the poison comes back
    worker.close()
    assert "'poison' is back in" in _check(broker).message
    channel = connection.channel()
    _start_over(channel)
    _topology(channel)
    worker = connection.channel()
    _answer(worker, orders="none")
    worker.close()
    second = _check(broker)
    assert not second.passed
    assert "never acked" in second.message and "poison" not in second.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, connection, channel):
    _topology(channel)
    worker = connection.channel()
    _answer(worker, orders="reject")
    worker.close()
    assert "holds 4 messages" in _check(broker).message
    channel = connection.channel()
    _start_over(channel)
    _topology(channel)
    worker = connection.channel()
    _answer(worker)
    worker.close()
    result = _check(broker)
    assert result.passed, result.message
