"""The chapter 04 self-check passes a right answer and gives a hint for near misses."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch04

PREFIX = "unit.ch04."
EXCHANGE, CRITICAL, KERN = PREFIX + "logs", PREFIX + "critical", PREFIX + "kern"


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[pika.channel.Channel]:
    ch = connection.channel()
    yield ch
    ch = connection.channel()  # the test's own channel may have been closed by an error
    for queue in (CRITICAL, KERN):
        ch.queue_delete(queue=queue)
    ch.exchange_delete(exchange=EXCHANGE)


def _build(channel, exchange_type: str, critical_key: str, kern_key: str) -> None:
    channel.exchange_declare(exchange=EXCHANGE, exchange_type=exchange_type)
    for queue, key in ((CRITICAL, critical_key), (KERN, kern_key)):
        channel.queue_declare(queue=queue, durable=True)
        channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=key)


def _check(broker):
    return ch04.check_exercise(broker, EXCHANGE, CRITICAL, KERN)


def test_right_bindings_pass(broker, channel):
    _build(channel, "topic", "#.critical", "kern.#")
    result = _check(broker)
    assert result.passed, result.message
    assert repr(result).startswith("✅")


def test_missing_and_wrongly_typed_exchange(broker, channel):
    assert "no exchange" in _check(broker).message
    _build(channel, "direct", "critical", "kern")
    result = _check(broker)
    assert not result.passed and "direct exchange" in result.message


def test_missing_queue(broker, channel):
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic")
    result = _check(broker)
    assert not result.passed and CRITICAL in result.message


@pytest.mark.parametrize(
    ("critical_key", "kern_key", "hints"),
    [
        (
            "*.critical",
            "kern.#",
            ("`*` matches exactly one word, so '*.critical' misses", "'mail.queue.critical'"),
        ),
        (
            "#.critical",
            "kern.*",
            ("`*` matches exactly one word, so 'kern.*' misses", "'kern.disk.warning'"),
        ),
        ("critical", "kern.#", ("without `*` or `#` ('critical')",)),
        ("#.critical", "#", ("bound with '#' alone", "'auth.critical'")),
    ],
)
def test_each_wildcard_mistake_gets_its_hint(broker, channel, critical_key, kern_key, hints):
    """The hint names the mistake and a routing key it gets wrong."""
    _build(channel, "topic", critical_key, kern_key)
    result = _check(broker)
    assert not result.passed
    for text in hints:
        assert text in result.message, result.message
    assert repr(result).startswith("❌")


def test_a_binding_left_from_an_earlier_attempt(broker, channel):
    _build(channel, "topic", "#.critical", "#")
    _build(channel, "topic", "#.critical", "kern.#")  # fixed, but run again without deleting
    result = _check(broker)
    assert not result.passed
    assert "has 2 bindings ('#', 'kern.#')" in result.message
    assert "left from an earlier attempt" in result.message


def test_empty_exercise_and_unbound_queue(broker, channel):
    empty = _check(broker)
    assert not empty.passed and "with pika.BlockingConnection(params)" in empty.message
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic")
    for queue in (CRITICAL, KERN):
        channel.queue_declare(queue=queue, durable=True)
    result = _check(broker)
    assert not result.passed and "is not bound to" in result.message and CRITICAL in result.message


def test_the_type_hint_warns_about_406(broker, channel):
    _build(channel, "direct", "#.critical", "kern.#")
    result = _check(broker)
    assert "exchange_delete" in result.message and "406 PRECONDITION_FAILED" in result.message


def test_checking_twice_gives_the_same_answer(broker, channel):
    _build(channel, "topic", "*.critical", "kern.#")
    assert _check(broker).message == _check(broker).message


def _start_over(channel) -> None:
    """The exercise's cell, run again: delete what the earlier attempt made first."""
    channel.exchange_delete(exchange=EXCHANGE)
    for queue in (CRITICAL, KERN):
        channel.queue_delete(queue=queue)


def test_a_second_wrong_attempt_gets_its_own_hint(broker, channel):
    _build(channel, "topic", "*.critical", "kern.#")
    assert "'*.critical' misses" in _check(broker).message
    _start_over(channel)
    _build(channel, "topic", "#.critical", "kern.*")
    second = _check(broker)
    assert not second.passed
    assert "'kern.*' misses" in second.message and "critical' misses" not in second.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, channel):
    _build(channel, "direct", "critical", "kern")
    assert "direct exchange" in _check(broker).message
    _start_over(channel)
    _build(channel, "topic", "#.critical", "kern.#")
    result = _check(broker)
    assert result.passed, result.message
