"""The chapter 06 self-check passes a careful RPC client and names each typical mistake.

Every test hands `check_exercise` a client written the way a learner might, against the
check's own server on a queue of the test's own.
"""

from __future__ import annotations

import time
import uuid

import pika
import pytest

from helpers.checks import ch06

QUEUE = "unit.ch06.requests"


def make_client(
    params: pika.ConnectionParameters,
    *,
    check_id: bool = True,
    deadline: bool = True,
    on_timeout: object = None,
    direct: bool = True,
    queue: str = QUEUE,
    reply_to: bool = True,
    correlation: bool = True,
    consume_first: bool = True,
    as_int: bool = True,
):
    """A learner's call(n, timeout), with one thing changed per keyword."""

    def call(n, timeout):
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            correlation_id = str(uuid.uuid4()) if correlation else None
            answers = []

            def on_reply(ch, method, properties, body):
                if not check_id or properties.correlation_id == correlation_id:
                    answers.append(int(body) if as_int else body)

            address = "amq.rabbitmq.reply-to"
            if not direct:
                address = channel.queue_declare("", exclusive=True).method.queue

            def consume():
                channel.basic_consume(address, on_reply, auto_ack=True)

            if consume_first:
                consume()
            props = pika.BasicProperties(
                reply_to=address if reply_to else None, correlation_id=correlation_id
            )
            channel.basic_publish("", queue, str(n).encode(), props)
            if not consume_first:
                consume()
            if not deadline:
                while not answers:  # waits forever
                    connection.process_data_events(time_limit=0.1)
                return answers[0]
            end = time.monotonic() + timeout
            while not answers and time.monotonic() < end:
                connection.process_data_events(time_limit=max(0.0, end - time.monotonic()))
            return answers[0] if answers else on_timeout

    return call


def check(broker, call):
    return ch06.check_exercise(broker, call, QUEUE)


def test_a_careful_client_passes_twice(broker, params):
    call = make_client(params)
    first = check(broker, call)
    assert first.passed, first.message
    assert repr(first).startswith("✅")
    again = check(broker, call)
    assert again.passed and again.message == first.message


def test_a_client_with_its_own_reply_queue_passes(broker, params):
    result = check(broker, make_client(params, direct=False))
    assert result.passed, result.message


def test_raising_timeout_error_is_fine(broker, params):
    careful = make_client(params)

    def call(n, timeout):
        answer = careful(n, timeout)
        if answer is None:
            raise TimeoutError(f"no answer to {n} within {timeout} s")
        return answer

    result = check(broker, call)
    assert result.passed, result.message


def test_nothing_written_yet(broker):
    result = check(broker, None)
    assert not result.passed and "Nothing to check yet" in result.message
    assert "ch06.exercise.requests" in result.message
    assert "not a function" in check(broker, 42).message


def test_no_correlation_id_check(broker, params):
    result = check(broker, make_client(params, check_id=False))
    assert not result.passed
    assert "correlation_id" in result.message and "another call" in result.message


def test_waiting_forever(broker, params):
    started = time.monotonic()
    result = check(broker, make_client(params, deadline=False))
    assert not result.passed and "waits forever" in result.message
    assert time.monotonic() - started < 10, "the check must not block"


def test_a_value_instead_of_none_on_timeout(broker, params):
    result = check(broker, make_client(params, on_timeout=-1))
    assert not result.passed and "should return None" in result.message


def test_wrong_queue(broker, params):
    result = check(broker, make_client(params, queue="unit.ch06.nobody-listens"))
    assert not result.passed and "got no request" in result.message
    assert QUEUE in result.message


def test_no_reply_to(broker, params):
    result = check(broker, make_client(params, reply_to=False))
    assert not result.passed and "without reply_to" in result.message


def test_no_correlation_id(broker, params):
    result = check(broker, make_client(params, correlation=False))
    assert not result.passed and "without a correlation_id" in result.message


def test_publishing_before_consuming_direct_reply_to(broker, params):
    result = check(broker, make_client(params, consume_first=False))
    assert not result.passed
    assert "fast reply consumer does not exist" in result.message
    assert "before publishing" in result.message


def test_bytes_instead_of_an_int(broker, params):
    result = check(broker, make_client(params, as_int=False))
    assert not result.passed and "int(body)" in result.message


def test_a_client_that_does_not_wait(broker, params):
    result = check(broker, lambda n, timeout: None)
    assert not result.passed and "got no request" in result.message


def test_gives_up_before_its_timeout(broker, params):
    careful = make_client(params)

    def hasty(n, timeout):
        # Gives up at once when no answer is there: no connection to open, so however
        # loaded the machine is, it returns well before its timeout.
        return careful(n, timeout) if n == ch06.N else None

    result = check(broker, hasty)
    assert not result.passed and "before its timeout" in result.message


def test_the_check_leaves_nothing_behind(broker, params):
    check(broker, make_client(params))
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_declare(QUEUE, passive=True)


def test_a_second_wrong_client_gets_its_own_hint(broker, params):
    first = check(broker, make_client(params, deadline=False))
    assert not first.passed and "waits forever" in first.message
    second = check(broker, make_client(params, check_id=False))
    assert not second.passed
    assert "another call" in second.message and "waits forever" not in second.message


def test_a_right_client_after_a_wrong_one_passes(broker, params):
    assert "without reply_to" in check(broker, make_client(params, reply_to=False)).message
    result = check(broker, make_client(params))
    assert result.passed, result.message
