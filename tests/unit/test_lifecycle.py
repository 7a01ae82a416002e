"""The event joiner and the client events' wire format, against what real brokers said
(RabbitMQ 3.10.8 and 4.3.6, recorded by scripts/record_lifecycle_events.py), with no broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from recorded import DATA, decode_headers

from helpers.flow.lifecycle import (
    MAX_KNOWN,
    RECENTLY_CLOSED,
    WIRE_FIELDS,
    ClientEvent,
    EventJoiner,
    decode,
    encode,
)

VERSIONS = ("3.10", "4.3")


def recording(version: str) -> dict[str, Any]:
    document = json.loads((DATA / f"lifecycle-{version}.json").read_text(encoding="utf-8"))
    for event in document["events"]:
        event["headers"] = decode_headers(event["headers"])
    return document


def joined(version: str, vhost: str = "/") -> tuple[dict[str, Any], list[ClientEvent]]:
    document = recording(version)
    joiner = EventJoiner()
    out = [joiner.feed(e["routing_key"], e["headers"], vhost) for e in document["events"]]
    return document["expected"], [e for e in out if e is not None]


def of(events: list[ClientEvent], connection: str) -> list[ClientEvent]:
    return [e for e in events if e.connection == connection]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_named_connection_its_channel_and_consumers(version):
    expected, events = joined(version)
    main = expected["main"]
    mine = of(events, main)
    assert [e.kind for e in mine] == [
        "connection.created",
        "channel.created",
        "consumer.created",
        "consumer.created",
        "consumer.deleted",
        "consumer.deleted",
        "channel.closed",
        "connection.closed",
    ]
    created = mine[0]
    assert (created.name, created.protocol, created.user) == (
        "rec.lifecycle",
        "AMQP 0-9-1",
        "tutorial",
    )
    assert mine[1].channel == expected["main_channel"]
    manual, auto = mine[2], mine[3]
    assert (manual.queue, manual.consumer_tag, manual.prefetch, manual.ack_required) == (
        "rec.lc",
        "rec.manual",
        7,
        True,
    )
    assert (auto.consumer_tag, auto.prefetch, auto.ack_required) == ("rec.auto", 7, False)
    # consumer.* name their channel by a pid: joined with channel.created's connection and
    # number, also for the consumer that went with the connection's close.
    for e in mine[2:7]:
        assert e.channel == expected["main_channel"]
    assert [e.consumer_tag for e in mine[4:6]] == ["rec.manual", "rec.auto"]


@pytest.mark.parametrize("version", VERSIONS)
def test_queues_and_a_connection_without_a_name(version):
    expected, events = joined(version)
    queues = [(e.kind, e.queue) for e in events if e.kind.startswith("queue.")]
    assert queues == [
        ("queue.created", "rec.lc"),
        ("queue.deleted", "rec.lc"),
        ("queue.created", "rec.durable"),
        ("queue.deleted", "rec.durable"),
    ]
    lc = next(e for e in events if e.kind == "queue.created" and e.queue == "rec.lc")
    assert (lc.exclusive, lc.durable, lc.auto_delete) == (True, False, False)
    durable = next(e for e in events if e.kind == "queue.created" and e.queue == "rec.durable")
    assert (durable.exclusive, durable.durable) == (False, True)
    plain = of(events, expected["plain"])
    assert plain[0].kind == "connection.created" and plain[0].name == ""
    assert [e.kind for e in plain] == [
        "connection.created",
        "channel.created",
        "channel.closed",
        "connection.closed",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_other_vhosts_events_are_dropped(version):
    expected, events = joined(version)
    assert of(events, expected["other"]) == []
    assert not [e for e in events if e.queue.startswith("rec.other")]
    # From the other vhost's side it is the other way round.
    expected, there = joined(version, expected["other_vhost"])
    assert {e.connection for e in there if e.connection} == {expected["other"]}
    assert [e.kind for e in there][0] == "connection.created"
    assert len(there) == 8


@pytest.mark.parametrize("version", VERSIONS)
def test_text_as_bytes_gives_the_same_events(version):
    """pika hands a header string as bytes when it is not UTF-8."""

    def as_bytes(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict):
            return {k: as_bytes(v) for k, v in value.items()}
        if isinstance(value, list):
            return [as_bytes(v) for v in value]
        return value

    document = recording(version)
    a, b = EventJoiner(), EventJoiner()
    for e in document["events"]:
        assert a.feed(e["routing_key"], e["headers"], "/") == b.feed(
            e["routing_key"], as_bytes(e["headers"]), "/"
        )


def test_a_channel_the_joiner_never_saw():
    """A consumer on a channel older than the diagram: no connection, channel 0; that
    channel's close says nothing usable; a connection older than it still closes."""
    messages = recording("4.3")["events"]

    def first(kind: str, **match: str) -> dict[str, Any]:
        return next(
            m["headers"]
            for m in messages
            if m["routing_key"] == kind and all(m["headers"].get(k) == v for k, v in match.items())
        )

    fresh = EventJoiner()
    deleted = fresh.feed(
        "consumer.deleted", first("consumer.deleted", consumer_tag="rec.manual"), "/"
    )
    assert deleted == ClientEvent(
        "consumer.deleted", queue="rec.lc", consumer_tag="rec.manual", connection="", channel=0
    )
    assert fresh.feed("channel.closed", first("channel.closed"), "/") is None
    headers = first("connection.closed")
    closed = fresh.feed("connection.closed", headers, "/")
    assert closed == ClientEvent("connection.closed", connection=headers["name"])
    assert fresh.feed("vhost.created", {"name": "x"}, "/") is None
    assert fresh.feed("consumer.created", None, "/") is None  # no vhost: not ours


def _channel(pid: str, number: int = 1, vhost: str = "/") -> dict[str, Any]:
    return {
        "pid": pid,
        "connection": "<c>",
        "number": number,
        "name": f"10.0.0.1:{pid[1:-1]} -> 10.0.0.2:5672 ({number})",
        "vhost": vhost,
    }


def _consumer(pid: str) -> dict[str, Any]:
    return {"channel": pid, "queue": "q", "consumer_tag": "t", "vhost": "/"}


def test_late_consumer_deleted_is_still_joined_and_closed_channels_are_forgotten():
    j = EventJoiner()
    j.feed("channel.created", _channel("<1>"), "/")
    assert j.feed("channel.closed", {"pid": "<1>"}, "/") == ClientEvent(
        "channel.closed", connection="10.0.0.1:1 -> 10.0.0.2:5672", channel=1
    )
    late = j.feed("consumer.deleted", _consumer("<1>"), "/")
    assert late.connection == "10.0.0.1:1 -> 10.0.0.2:5672" and late.channel == 1
    assert j.feed("channel.closed", {"pid": "<1>"}, "/") is None, "closed once"
    for n in range(2, RECENTLY_CLOSED + 2):
        j.feed("channel.created", _channel(f"<{n}>"), "/")
        j.feed("channel.closed", {"pid": f"<{n}>"}, "/")
    forgotten = j.feed("consumer.deleted", _consumer("<1>"), "/")
    assert (forgotten.connection, forgotten.channel) == ("", 0)


def test_memory_is_capped():
    j = EventJoiner()
    for n in range(MAX_KNOWN + 1):
        j.feed("channel.created", _channel(f"<{n}>", vhost="other"), "/")
    assert j.feed("consumer.created", _consumer("<0>"), "/").connection == "", "the oldest went"
    assert j.feed("consumer.created", _consumer(f"<{MAX_KNOWN}>"), "/").channel == 1
    for n in range(MAX_KNOWN + 1):
        j.feed("connection.created", {"pid": f"<c{n}>", "name": f"c{n}", "vhost": "other"}, "/")
    # The oldest connection is forgotten: its close is passed on (its vhost is unknown now).
    assert j.feed("connection.closed", {"pid": "<c0>", "name": "c0"}, "/") is not None
    assert j.feed("connection.closed", {"pid": f"<c{MAX_KNOWN}>", "name": "x"}, "/") is None


@pytest.mark.parametrize("version", VERSIONS)
def test_encode_decode_round_trip_through_json(version):
    _expected, events = joined(version)
    assert events
    for event in events:
        item = json.loads(json.dumps(encode(event)))
        assert len(item) == len(WIRE_FIELDS)
        assert decode(item) == event
    assert WIRE_FIELDS[:3] == ("kind", "connection", "channel")
