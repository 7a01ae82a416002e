"""The chapter 03 self-check passes a clean worker and gives a hint for each way to fail."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch03

QUEUE = "unit.ch03.jobs"


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Iterator[pika.channel.Channel]:
    ch = connection.channel()
    ch.queue_declare(queue=QUEUE, durable=True)
    ch.queue_purge(queue=QUEUE)
    for job in ch03.JOBS:
        ch.basic_publish(exchange="", routing_key=QUEUE, body=job)
    yield ch
    connection.channel().queue_delete(queue=QUEUE)


def _work(channel, ack: bool = True, cancel: bool = True, limit: int | None = None) -> int:
    total, taken = 0, 0
    for method, _props, body in channel.consume(QUEUE, inactivity_timeout=0.2):
        if method is None:
            break
        total += int(body)
        taken += 1
        if ack:
            channel.basic_ack(delivery_tag=method.delivery_tag)
        if taken == limit:
            break
    if cancel:
        channel.cancel()
    return total


def test_clean_worker_passes(broker, channel):
    total = _work(channel)
    result = ch03.check_exercise(broker, total, QUEUE)
    assert result.passed, result.message
    assert repr(result).startswith("✅")


def test_consumer_left_behind(broker, channel):
    total = _work(channel, cancel=False)
    result = ch03.check_exercise(broker, total, QUEUE)
    assert not result.passed and "channel.cancel()" in result.message
    channel.cancel()


def test_forgotten_acks(broker, channel):
    total = _work(channel, ack=False)
    result = ch03.check_exercise(broker, total, QUEUE)
    assert not result.passed and "never acknowledged" in result.message


def test_stopped_early(broker, channel):
    total = _work(channel, limit=2)
    result = ch03.check_exercise(broker, total, QUEUE)
    assert not result.passed and "still waiting" in result.message


def test_wrong_total_and_missing_queue(broker, channel):
    total = _work(channel)
    result = ch03.check_exercise(broker, total + 1, QUEUE)
    assert not result.passed and f"total is {total + 1}" in result.message
    assert "should be an int" in ch03.check_exercise(broker, str(total), QUEUE).message
    assert "no queue" in ch03.check_exercise(broker, total, "unit.ch03.nope").message


def test_empty_exercise_gets_its_own_hint(broker, channel):
    result = ch03.check_exercise(broker, None, QUEUE)
    assert not result.passed and "Nothing consumed yet" in result.message
    assert "start_over()" in result.message


def test_jobs_back_after_a_worker_without_acks_closed(broker, channel):
    # The learner's worker ran in a with block and never acked: closing gave the jobs back.
    total = _work(channel, ack=False)
    channel.close()
    result = ch03.check_exercise(broker, total, QUEUE)
    assert not result.passed
    assert "back in" in result.message and "basic_ack" in result.message
    assert "int(body)" in result.message
    again = ch03.check_exercise(broker, total, QUEUE)
    assert again.message == result.message


def test_consumer_left_behind_names_the_with_block(broker, channel):
    total = _work(channel, cancel=False)
    result = ch03.check_exercise(broker, total, QUEUE)
    assert not result.passed and "with block" in result.message
    channel.cancel()


def _start_over(channel) -> None:
    """What the notebook's start_over() does: the queue afresh, with the six jobs."""
    channel.queue_delete(queue=QUEUE)
    channel.queue_declare(queue=QUEUE, durable=True)
    for job in ch03.JOBS:
        channel.basic_publish(exchange="", routing_key=QUEUE, body=job)


def test_a_second_wrong_attempt_gets_its_own_hint(broker, connection, channel):
    worker = connection.channel()
    total = _work(worker, ack=False)
    worker.close()  # the end of the attempt's with block: the jobs go back
    assert "back in" in ch03.check_exercise(broker, total, QUEUE).message
    worker = connection.channel()
    _start_over(worker)
    total = _work(worker, limit=2)
    worker.close()
    second = ch03.check_exercise(broker, total, QUEUE)
    assert not second.passed
    assert "still waiting" in second.message and "back in" not in second.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, connection, channel):
    worker = connection.channel()
    total = _work(worker, cancel=False)
    assert "channel.cancel()" in ch03.check_exercise(broker, total, QUEUE).message
    worker.close()
    worker = connection.channel()
    _start_over(worker)
    total = _work(worker)
    worker.close()
    result = ch03.check_exercise(broker, total, QUEUE)
    assert result.passed, result.message
