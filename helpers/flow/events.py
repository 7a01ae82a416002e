"""The trace protocol: what the firehose says, as `TraceEvent`s, and how they cross the pipe.

With tracing on for a vhost, RabbitMQ copies every publish and every delivery to the
internal topic exchange `amq.rabbitmq.trace` (keys `publish.<exchange>` and
`deliver.<queue>`), with headers that say what *it* did: `routed_queues` lists the queues
a published message actually reached (empty: dropped). That is why the diagram trusts these
events instead of guessing routing in Python.

`parse` turns one trace message into an event. The firehose process
(`helpers.flow.firehose`) sends events to the kernel as compact JSON lists: `encode` and
`decode` are the one place that knows their fields, in the order of `WIRE_FIELDS`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

TRACE_EXCHANGE = "amq.rabbitmq.trace"
# The names the tutorial's diagrams leave on a broker while they run (see helpers.flow.tracing).
BINDING_MARK = "tutorial-flow-diagram"  # binding argument that marks our trace queues
WAS_ON = "tracing-was-on"  # binding argument: was tracing on before the first diagram came?
TRACING_MARK = "tutorial.flow.tracing-switched-on"  # exchange: tracing is on because of us
SYNC_ID = "tutorial-flow-sync-"  # message_id prefix of the firehose process's sync markers

BODY_HEAD = 256  # bytes of each body sent over the pipe: previews need no more
HEADERS_SENT = 4  # headers of each message sent over the pipe (the log shows a few)
HEADER_CHARS = 60  # characters of each header value sent over the pipe
# Headers sent over the pipe whatever their place, besides the first HEADERS_SENT: where and
# why a message was dead-lettered, which the sequence view draws (helpers.view.sequence).
DEATH_HEADERS = (
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-queue",
    "x-last-death-reason",
)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing the broker did with a message: `publish` (with where it went) or `deliver`."""

    kind: str  # "publish" or "deliver"
    exchange: str  # the exchange the message was published to ("" is the default exchange)
    routing_keys: tuple[str, ...]
    routed_queues: tuple[str, ...] = ()  # publish only: where the broker put it
    queue: str = ""  # deliver only: the queue it was delivered from
    redelivered: bool = False
    connection: str = ""  # the broker's name of the client connection ("ip:port -> ip:port")
    channel: int = 0
    user: str = ""
    message_id: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    reply_to: str = ""  # the message's reply_to property (request/reply)
    correlation_id: str = ""  # the message's correlation_id property (request/reply)
    size: int = -1  # the whole body's size when `body` holds only its start
    # How many alike trace messages this one stands for: in a burst the firehose process
    # sends one event per kind of message with a count (`helpers.flow.firehose.compact`).
    repeat: int = 1

    @property
    def body_size(self) -> int:
        return self.size if self.size >= 0 else len(self.body)

    @property
    def routing_key(self) -> str:
        return self.routing_keys[0] if self.routing_keys else ""

    @property
    def client(self) -> tuple[str, int]:
        """Which connection and channel did it (the producer, or the consumer's channel)."""
        return (self.connection, self.channel)

    def alike(self) -> tuple[Any, ...]:
        """What the diagram counts it by: events equal here differ only in the message."""
        return (
            self.kind,
            self.exchange,
            self.routing_keys,
            self.routed_queues,
            self.queue,
            self.redelivered,
            self.connection,
            self.channel,
            self.reply_to,
        )


def as_text(value: Any) -> str:
    """A header value as text: AMQP strings arrive from pika as bytes."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse(routing_key: str, headers: dict[str, Any] | None, body: bytes) -> TraceEvent | None:
    """Turn one trace message (its routing key, headers and body) into a TraceEvent.

    Returns None for anything that is not a firehose message, so a stray message in the
    trace queue never breaks the diagram.
    """
    kind, _, name = routing_key.partition(".")
    if kind not in ("publish", "deliver") or not headers:
        return None
    props = headers.get("properties") or {}
    return TraceEvent(
        kind=kind,
        exchange=as_text(headers.get("exchange_name", "")),
        routing_keys=tuple(as_text(k) for k in headers.get("routing_keys") or ()),
        routed_queues=tuple(as_text(q) for q in headers.get("routed_queues") or ()),
        queue=name if kind == "deliver" else "",
        redelivered=bool(headers.get("redelivered", 0)),
        connection=as_text(headers.get("connection", "")),
        channel=int(headers.get("channel", 0) or 0),
        user=as_text(headers.get("user", "")),
        message_id=as_text(props.get("message_id", "") or ""),
        headers=dict(props.get("headers") or {}),
        body=body,
        reply_to=as_text(props.get("reply_to", "") or ""),
        correlation_id=as_text(props.get("correlation_id", "") or ""),
    )


# The fields of an event on the pipe, in order. `encode` shortens headers and body (the
# kernel needs only their start) and adds the whole body's size; `decode` reverses it.
WIRE_FIELDS = (
    "kind",
    "exchange",
    "routing_keys",
    "routed_queues",
    "queue",
    "redelivered",
    "connection",
    "channel",
    "user",
    "message_id",
    "headers",
    "body",
    "size",
    "reply_to",
    "correlation_id",
    "repeat",
)


def encode(event: TraceEvent, repeat: int = 1) -> list[Any]:
    """A trace event as a compact JSON-ready list, standing for `repeat` alike ones."""
    shortened = {
        "routing_keys": list(event.routing_keys),
        "routed_queues": list(event.routed_queues),
        "headers": [[str(k), as_text(v)[:HEADER_CHARS]] for k, v in _sent_headers(event)],
        "body": base64.b64encode(event.body[:BODY_HEAD]).decode("ascii"),
        "size": event.body_size,
        "repeat": repeat,
    }
    return [shortened[f] if f in shortened else getattr(event, f) for f in WIRE_FIELDS]


def _sent_headers(event: TraceEvent) -> list[tuple[Any, Any]]:
    """The first HEADERS_SENT headers, and the DEATH_HEADERS wherever they are."""
    items = list(event.headers.items())
    return items[:HEADERS_SENT] + [(k, v) for k, v in items[HEADERS_SENT:] if k in DEATH_HEADERS]


def decode(item: list[Any]) -> TraceEvent:
    """The event `encode` made the list from (headers and body shortened as it did)."""
    values = dict(zip(WIRE_FIELDS, item, strict=True))
    values["routing_keys"] = tuple(values["routing_keys"])
    values["routed_queues"] = tuple(values["routed_queues"])
    values["headers"] = dict(values["headers"])
    values["body"] = base64.b64decode(values["body"])
    return TraceEvent(**values)
