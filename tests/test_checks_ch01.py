"""The chapter 01 self-check reads connections and channels from the real broker.

Each test opens real, named connections; the management API lists them on its own timer, so
the passing cases take up to one stats interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest

from helpers.checks import ch01

NAME = "unit.ch01.exercise"  # not the notebook's name, so a run of both never collides
# A connection opened and closed within one stats interval can linger in the API for a moment,
# so each test uses a name of its own.


@pytest.fixture
def opened() -> Iterator[list[pika.BlockingConnection]]:
    """Connections the test opens; all closed afterwards."""
    connections: list[pika.BlockingConnection] = []
    yield connections
    for connection in connections:
        if connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass  # the broker (or the check) closed it already


def _open(params: pika.ConnectionParameters, name: str, channels: int) -> pika.BlockingConnection:
    named = params.__class__(
        host=params.host,
        port=params.port,
        virtual_host=params.virtual_host,
        credentials=params.credentials,
        client_properties={"connection_name": name},
    )
    connection = pika.BlockingConnection(named)
    for _ in range(channels):
        connection.channel()
    return connection


def test_missing_connection_gives_the_naming_hint(broker):
    result = ch01.check(name=NAME, timeout=0.5)
    assert not result.passed
    assert "no open connection named" in result.message
    assert repr(result).startswith("❌")


def test_closed_connection_is_reported_without_asking_the_broker(params, opened):
    connection = _open(params, NAME + ".closed", channels=2)
    connection.close()
    result = ch01.check(connection, name=NAME + ".closed", timeout=0.5)
    assert not result.passed
    assert "already closed" in result.message


def test_one_channel_is_not_enough_and_two_pass(params, opened):
    name = NAME + ".channels"
    connection = _open(params, name, channels=1)
    opened.append(connection)
    result = ch01.check(connection, name=name, timeout=11.0)  # two stock stats intervals
    assert not result.passed
    assert "carries 1 channel," in result.message

    connection.channel()
    result = ch01.check(connection, name=name, timeout=15.0)  # the channel count lags a sample
    assert result.passed, result.message
    assert "numbers 1 and 2" in result.message
    assert repr(result).startswith("✅")


def test_no_exercise_connection_yet(broker):
    result = ch01.check_exercise(broker, None)
    assert not result.passed
    assert "no `exercise_connection` yet" in result.message


def test_with_block_gives_the_already_closed_hint(broker, params):
    with _open(params, NAME + ".with", channels=2) as connection:
        pass
    result = ch01.check_exercise(broker, connection, name=NAME + ".with", timeout=0.5)
    assert not result.passed
    assert "`with` block" in result.message


def test_unnamed_and_misnamed_connections_are_named_at_once(broker, params, opened):
    unnamed = pika.BlockingConnection(params)
    opened.append(unnamed)
    unnamed.channel()
    unnamed.channel()
    started = time.monotonic()
    result = ch01.check_exercise(broker, unnamed, name=NAME + ".unnamed")
    assert not result.passed
    assert "no name" in result.message and "connection_name" in result.message
    misnamed = _open(params, NAME + ".typo", channels=2)
    opened.append(misnamed)
    result = ch01.check_exercise(broker, misnamed, name=NAME + ".misnamed")
    assert "'unit.ch01.exercise.typo'" in result.message
    assert time.monotonic() - started < 2  # from the connection object, no wait for stats


def test_one_channel_is_named_at_once(broker, params, opened):
    connection = _open(params, NAME + ".one", channels=1)
    opened.append(connection)
    started = time.monotonic()
    result = ch01.check_exercise(broker, connection, name=NAME + ".one")
    assert "carries 1 channel," in result.message
    assert time.monotonic() - started < 2


def test_a_connection_dropped_for_missed_heartbeats(broker, params, opened):
    name = NAME + ".idle"
    connection = pika.BlockingConnection(
        params.__class__(
            host=params.host,
            port=params.port,
            virtual_host=params.virtual_host,
            credentials=params.credentials,
            heartbeat=1,
            client_properties={"connection_name": name},
        )
    )
    opened.append(connection)
    connection.channel()
    connection.channel()
    time.sleep(4)  # the broker gives up after about three silent heartbeat intervals
    result = ch01.check_exercise(broker, connection, name=name, timeout=0.5)
    assert not result.passed
    assert "dropped your connection while it sat idle" in result.message


def test_an_earlier_runs_connection_is_closed_and_the_current_one_passes(broker, params, opened):
    name = NAME + ".rerun"
    first = _open(params, name, channels=2)
    second = _open(params, name, channels=2)  # the learner ran the cell again
    opened.extend([first, second])
    result = ch01.check_exercise(broker, second, name=name)
    assert result.passed, result.message
    assert "closed 1 older connection" in result.message
    again = ch01.check_exercise(broker, second, name=name)
    assert again.passed and "older" not in again.message
    with pytest.raises(pika.exceptions.AMQPError):
        first.channel()  # the broker closed the earlier one


def test_a_second_wrong_attempt_gets_its_own_hint(broker, params, opened):
    # Attempt 1: the right name, one channel, left open. Attempt 2: two channels, but the
    # name mistyped; attempt 1's connection is still open (assigning again closes nothing).
    name = NAME + ".second"
    first = _open(params, name, channels=1)
    opened.append(first)
    assert "carries 1 channel," in ch01.check_exercise(broker, first, name=name).message
    second = _open(params, name + "-typo", channels=2)
    opened.append(second)
    result = ch01.check_exercise(broker, second, name=name)
    assert not result.passed
    assert "its name is" in result.message and "channel," not in result.message


def test_a_right_attempt_after_a_wrong_one_passes(broker, params, opened):
    # Attempt 1 (one channel) is left open under the same name: the check judges attempt 2,
    # the connection in exercise_connection, and closes attempt 1's.
    name = NAME + ".fixed"
    first = _open(params, name, channels=1)
    opened.append(first)
    assert "carries 1 channel," in ch01.check_exercise(broker, first, name=name).message
    second = _open(params, name, channels=2)
    opened.append(second)
    result = ch01.check_exercise(broker, second, name=name)
    assert result.passed, result.message
    assert "closed 1 older connection" in result.message
