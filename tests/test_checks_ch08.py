"""The chapter 08 self-check passes an idempotent handler and names each typical mistake."""

from __future__ import annotations

import pika
import pytest

from helpers.checks import ch08

QUEUE = "unit.ch08.orders"


def _ack(channel, method) -> None:
    channel.basic_ack(delivery_tag=method.delivery_tag)


def solution(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        _ack(channel, method)
        return
    work(body)
    seen.add(properties.message_id)
    _ack(channel, method)


def dedupe_on_body(channel, method, properties, body, seen, work):
    if body in seen:
        _ack(channel, method)
        return
    work(body)
    seen.add(body)
    _ack(channel, method)


def ack_first(channel, method, properties, body, seen, work):
    _ack(channel, method)
    if properties.message_id in seen:
        return
    work(body)
    seen.add(properties.message_id)


def seen_before_work(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        _ack(channel, method)
        return
    seen.add(properties.message_id)
    work(body)
    _ack(channel, method)


def no_dedupe(channel, method, properties, body, seen, work):
    work(body)
    _ack(channel, method)


def duplicates_not_acked(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        return
    work(body)
    seen.add(properties.message_id)
    _ack(channel, method)


def swallows_failures(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        _ack(channel, method)
        return
    try:
        work(body)
        seen.add(properties.message_id)
    except Exception:
        pass
    _ack(channel, method)


def nacks_failures(channel, method, properties, body, seen, work):
    """Also right: a failed work is nacked with requeue and comes back at once."""
    if properties.message_id in seen:
        _ack(channel, method)
        return
    try:
        work(body)
    except Exception:
        channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
        return
    seen.add(properties.message_id)
    _ack(channel, method)


def acks_twice(channel, method, properties, body, seen, work):
    solution(channel, method, properties, body, seen, work)
    _ack(channel, method)


def typo(channel, method, properties, body, seen, work):
    if properties.messageid in seen:
        _ack(channel, method)


def _check(broker, handle):
    return ch08.check_exercise(broker, handle, QUEUE)


def _queue_exists(broker) -> bool:
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        try:
            connection.channel().queue_declare(QUEUE, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
    return True


def test_solution_passes_twice_and_leaves_nothing(broker):
    for _ in range(2):
        result = _check(broker, solution)
        assert result.passed, result.message
        assert repr(result).startswith("✅")
    assert not _queue_exists(broker)


def test_requeueing_a_failed_work_also_passes(broker):
    result = _check(broker, nacks_failures)
    assert result.passed, result.message


def test_empty_exercise_and_wrong_shapes(broker):
    assert "no function named handle" in _check(broker, None).message
    assert "not a function" in _check(broker, 42).message
    assert "six arguments" in _check(broker, lambda channel, method: None).message


@pytest.mark.parametrize(
    ("handle", "hints"),
    [
        (dedupe_on_body, ("not on the body",)),
        (ack_first, ("before its work was done",)),
        (seen_before_work, ("order-3 was never processed", "after work(body) has returned")),
        (no_dedupe, ("order-1 was processed 2 times",)),
        (duplicates_not_acked, ("without acknowledging order-1",)),
        (swallows_failures, ("acknowledged although work(body) raised",)),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_each_typical_mistake_gets_its_hint(broker, handle, hints):
    result = _check(broker, handle)
    assert not result.passed
    for text in hints:
        assert text in result.message, result.message


def test_double_ack_and_errors(broker):
    assert "answered twice" in _check(broker, acks_twice).message
    assert "AttributeError" in _check(broker, typo).message
    assert not _queue_exists(broker)


def test_lost_ack_redelivery_counts_as_a_duplicate():
    """Judging alone: order-4 processed twice is named as the redelivery after a lost ack."""
    run = ch08._Run(processed=["order-1", "order-2", "order-3", "order-4", "order-4"])
    result = ch08._judge(run)
    assert not result.passed and "after a lost ack" in result.message


def test_a_second_wrong_handler_gets_its_own_hint(broker):
    assert "not on the body" in _check(broker, dedupe_on_body).message
    second = _check(broker, ack_first)
    assert not second.passed
    assert "before its work was done" in second.message and "not on the body" not in second.message


def test_a_right_handler_after_a_wrong_one_passes(broker):
    assert "order-3 was never processed" in _check(broker, seen_before_work).message
    result = _check(broker, solution)
    assert result.passed, result.message
