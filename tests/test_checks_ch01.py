"""The chapter 01 self-check reads connections and channels from the real broker.

Each test opens real, named connections; the management API lists them on its own timer, so
the passing cases take up to one stats interval.
"""

from __future__ import annotations

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
            connection.close()


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
