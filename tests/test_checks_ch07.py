"""The chapter 07 self-check passes a stream read from offset 6, and names each typical
mistake: no prefetch, auto_ack, basic_get, a non-durable declaration, a classic queue, the
wrong offset."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from helpers.checks import ch07

STREAM = "unit.ch07.log"


def _declare(connection: pika.BlockingConnection, kind: str = "stream", bodies=ch07.EVENTS):
    channel = connection.channel()
    channel.queue_delete(STREAM)
    channel.queue_declare(STREAM, durable=True, arguments={"x-queue-type": kind})
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(exchange="", routing_key=STREAM, body=body.encode())
    channel.close()


@pytest.fixture
def stream(connection: pika.BlockingConnection) -> Iterator[pika.BlockingConnection]:
    _declare(connection)
    yield connection
    if connection.is_open:
        connection.channel().queue_delete(STREAM)


@pytest.fixture(autouse=True)
def _nothing_left(params: pika.ConnectionParameters) -> Iterator[None]:
    yield
    with pika.BlockingConnection(params) as connection:
        connection.channel().queue_delete(STREAM)


def check(broker, read, error=None):
    return ch07.check_exercise(broker, read, error=error, stream=STREAM)


def _refusal(params, action) -> Exception:
    """The exception the broker's refusal raises in a learner's cell."""
    with pytest.raises(
        (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)
    ) as caught:
        with pika.BlockingConnection(params) as connection:
            action(connection.channel())
    return caught.value


def test_the_solution_passes_twice(broker, stream):
    read = list(ch07.EVENTS[ch07.OFFSET :])
    result = check(broker, read)
    assert result.passed and repr(result).startswith("✅"), result.message
    assert check(broker, read).message == result.message


def test_missing_queue(broker):
    result = check(broker, None)
    assert not result.passed and "no queue named" in result.message


def test_no_prefetch_from_the_real_refusal(broker, stream, params):
    error = _refusal(params, lambda ch: ch.basic_consume(STREAM, lambda *a: None))
    result = check(broker, [], error)
    assert not result.passed and "prefetch" in result.message and "basic_qos" in result.message


def test_auto_ack_from_the_real_refusal(broker, stream, params):
    def consume(channel):
        channel.basic_qos(prefetch_count=5)
        channel.basic_consume(STREAM, lambda *a: None, auto_ack=True)

    error = _refusal(params, consume)
    result = check(broker, [], error)
    assert not result.passed and "auto_ack" in result.message


def test_basic_get_from_the_real_refusal(broker, stream, params):
    error = _refusal(params, lambda ch: ch.basic_get(STREAM))
    result = check(broker, [], error)
    assert not result.passed and "basic_get" in result.message


def test_non_durable_declaration(broker):
    denied = pika.exceptions.ConnectionClosedByBroker(
        541, "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\n..."
    )
    older = pika.exceptions.ChannelClosedByBroker(
        406,
        f"PRECONDITION_FAILED - invalid property 'non-durable' for queue '{STREAM}' in vhost '/'",
    )
    for error in (denied, older):
        result = check(broker, None, error)
        assert not result.passed and "always durable" in result.message


def test_an_error_about_another_queue_chooses_no_hint(broker, stream):
    stale = pika.exceptions.ChannelClosedByBroker(
        406,
        "PRECONDITION_FAILED - consumer prefetch count is not set for stream queue "
        "'ch07.events' in vhost '/'",
    )
    result = check(broker, [], stale)
    assert not result.passed and "'next'" in result.message and "basic_qos" not in result.message


def test_read_still_none(broker, stream):
    result = check(broker, None)
    assert not result.passed and "still None" in result.message


def test_a_classic_queue(broker, connection):
    _declare(connection, kind="classic")
    result = check(broker, list(ch07.EVENTS[ch07.OFFSET :]))
    assert not result.passed and "classic queue" in result.message


def test_stream_with_the_wrong_messages(broker, connection):
    _declare(connection, bodies=ch07.EVENTS + ch07.EVENTS)  # published twice
    result = check(broker, list(ch07.EVENTS[ch07.OFFSET :]))
    assert not result.passed and "holds 20 message(s)" in result.message


def test_read_from_the_start_bytes_and_wrong_offset(broker, stream):
    result = check(broker, list(ch07.EVENTS))
    assert not result.passed and "from the start" in result.message
    as_bytes = [body.encode() for body in ch07.EVENTS[ch07.OFFSET :]]
    assert "holds bytes" in check(broker, as_bytes).message
    wrong = check(broker, list(ch07.EVENTS[7:]))
    assert not wrong.passed and "`read` is" in wrong.message


def test_reading_in_the_check_removes_nothing(broker, stream):
    for _ in range(2):
        assert ch07._stream_bodies(broker, STREAM) == list(ch07.EVENTS)


def _prefetch_refusal() -> Exception:
    return pika.exceptions.ChannelClosedByBroker(
        406,
        "PRECONDITION_FAILED - consumer prefetch count is not set for stream queue "
        f"'{STREAM}' in vhost '/'",
    )


def test_an_attempt_without_error_is_not_judged_by_the_earlier_error(broker, stream, monkeypatch):
    # Attempt 1 had no basic_qos: the broker refused its consumer, and IPython kept the error.
    # Attempt 2 had a prefetch but no offset: no error, nothing read. IPython still holds
    # attempt 1's error in sys.last_value.
    monkeypatch.setattr(sys, "last_value", _prefetch_refusal(), raising=False)
    first_read: list[str] = []
    first = ch07.check_exercise(broker, first_read, stream=STREAM)
    assert not first.passed and "basic_qos" in first.message
    again = ch07.check_exercise(broker, first_read, stream=STREAM)  # checking twice
    assert again.message == first.message
    second_read: list[str] = []  # the cell ran again: a new list
    second = ch07.check_exercise(broker, second_read, stream=STREAM)
    assert not second.passed
    assert "'next'" in second.message and "basic_qos" not in second.message
    assert ch07.check_exercise(broker, second_read, stream=STREAM).message == second.message


def test_a_second_refusal_chooses_the_second_hint(broker, stream, monkeypatch, params):
    monkeypatch.setattr(sys, "last_value", _prefetch_refusal(), raising=False)
    assert "basic_qos" in ch07.check_exercise(broker, [], stream=STREAM).message

    def consume(channel):
        channel.basic_qos(prefetch_count=5)
        channel.basic_consume(STREAM, lambda *a: None, auto_ack=True)

    monkeypatch.setattr(sys, "last_value", _refusal(params, consume), raising=False)
    second = ch07.check_exercise(broker, [], stream=STREAM)
    assert not second.passed and "auto_ack" in second.message


def test_a_right_attempt_after_a_refused_one_passes(broker, stream, monkeypatch):
    monkeypatch.setattr(sys, "last_value", _prefetch_refusal(), raising=False)
    assert "basic_qos" in ch07.check_exercise(broker, [], stream=STREAM).message
    read = list(ch07.EVENTS[ch07.OFFSET :])
    result = ch07.check_exercise(broker, read, stream=STREAM)
    assert result.passed, result.message


def test_a_second_wrong_stream_gets_its_own_hint(broker, connection):
    _declare(connection, kind="classic")
    assert "classic queue" in check(broker, []).message
    _declare(connection)  # the cell starts by deleting the queue
    second = check(broker, list(ch07.EVENTS))
    assert not second.passed and "from the start" in second.message
