"""Self-check for chapter 07 (queue types): a stream declared, filled, and read from an offset.

The exercise asks the learner to declare the stream `ch07.ex.log`, publish `event-0` …
`event-9` into it, and read it from offset 6 into a list `read`. The check asks the broker
what `ch07.ex.log` is (its type, from the management API) and reads the stream itself from
its first message: a stream consumer does not remove what it reads, so the check sees what
the learner published, however often either of them reads it.

Where `read` is empty, the learner's cell most likely failed, and the error names the
mistake: a stream refuses a consumer without a prefetch limit (406, the channel closes), one
with `auto_ack=True` (540, the connection closes), `basic_get` (540), and a non-durable
declaration (on a broker that denies queues neither durable nor exclusive: 541 before the
type is looked at; elsewhere 406 "invalid property 'non-durable'"). IPython keeps the last
error a cell raised in `sys.last_value`; the check looks at it only when it is a broker's
refusal that names the exercise's stream (or is the 541 of a refused non-durable queue), so a
stale error of some other cell never chooses the hint.

The latest attempt: the stream is what the learner's last run left (the cell starts by
deleting it), and `read` is what that run read. `sys.last_value` is different: IPython keeps
it until another cell fails, so after an attempt that raised, a later attempt that raised
nothing would still be judged by the earlier error (say "no prefetch" again for a run that
had a prefetch but read from 'next'). So the check remembers the error and the `read` it saw
last: the same error object with another `read` (a new list, or other contents) means the
learner's cell ran again without raising, and from then on that error chooses no hint. The
same error and the same `read` mean nothing ran in between: the same answer as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pika
import pika.exceptions

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

STREAM = "ch07.ex.log"
EVENTS: tuple[str, ...] = tuple(f"event-{n}" for n in range(10))
OFFSET = 6
_LAST = object()  # "use the error the learner's last failed cell raised"


@dataclass
class _Seen:
    """What the last check that read `sys.last_value` saw."""

    error: object
    read: object
    contents: object
    stale: bool  # whether the error came before the run that made `read`


_SEEN: _Seen | None = None


def check_exercise(
    broker: Broker, read: object, error: object = _LAST, stream: str = STREAM
) -> CheckResult:
    """Judge the stream `stream` on the broker and the learner's `read`.

    `error` is the exception the learner's cell raised, if any; by default the one IPython
    kept (`sys.last_value`). The order of hints: the queue itself first (missing, or not a
    stream), then what it holds, then what the learner read.
    """
    if error is _LAST:
        error = _latest_error(read)
    refusal = _refusal(error, stream)
    info = broker.management.queue(stream, broker.vhost)
    if info is None:
        if refusal == "non-durable":
            return hint(
                _(
                    "The broker refused to declare {stream!r}: a stream is always durable. "
                    "Declare it with durable=True (a non-durable or exclusive stream does not "
                    "exist)."
                ).format(stream=stream)
            )
        return hint(
            _(
                "There is no queue named {stream!r} yet: write your code in the cell above "
                "(inside `with pika.BlockingConnection(params) as connection:`) and run it."
            ).format(stream=stream)
        )
    kind = info.get("type", "classic")
    if kind != "stream":
        return hint(
            _(
                "{stream!r} is a {kind} queue, not a stream: the type is chosen when the queue is "
                "declared, with the argument x-queue-type. Delete it first (queue_delete), then "
                "declare it as a stream."
            ).format(stream=stream, kind=kind)
        )
    held = _stream_bodies(broker, stream)
    if held != list(EVENTS):
        shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
        return hint(
            _(
                "The stream holds {n_held} message(s) ({value}), not event-0 … event-9 once each: "
                "start your cell by deleting {stream!r}, then declare it and publish the ten "
                "events in order (with confirm_delivery(), so that they are in the stream before "
                "you read)."
            ).format(n_held=len(held), value=shown or 'none', stream=stream)
        )
    if not read:
        if refusal == "prefetch":
            return hint(
                _(
                    "The broker closed your channel: a stream consumer needs a prefetch limit "
                    "(406 'consumer prefetch count is not set'). Call "
                    "channel.basic_qos(prefetch_count=...) before you consume."
                )
            )
        if refusal == "auto_ack":
            return hint(
                _(
                    "The broker refused auto_ack=True (540, and the connection closed): a stream "
                    "consumer acknowledges each message itself. Consume with manual acks and call "
                    "channel.basic_ack(method.delivery_tag) for every message."
                )
            )
        if refusal == "basic_get":
            return hint(
                _(
                    "A stream does not support basic_get (540, the connection closed): read it "
                    "with a consumer, channel.consume(...), with a prefetch limit and manual acks."
                )
            )
        if read is None:
            return hint(
                _(
                    "`read` is still None: put the body of every message you read, as str, into a "
                    "list named read."
                )
            )
        return hint(
            _(
                "`read` is empty. A stream consumer starts at 'next' unless told otherwise, and "
                "then gets only messages published after it subscribed: pass the offset to start "
                "from in arguments={'x-stream-offset': ...}."
            )
        )
    if not isinstance(read, list) or not all(isinstance(body, str) for body in read):
        if isinstance(read, list) and all(isinstance(body, bytes) for body in read):
            return hint(_(
                "`read` holds bytes: append body.decode(), the text, for each message."
            ))
        return hint(_(
            "`read` should be a list of str (the bodies you read), it is {read!r}."
        ).format(read=read))
    if read == list(EVENTS):
        return hint(
            _(
                "You read all ten events, from the start of the stream: begin at offset {OFFSET} "
                "instead (x-stream-offset takes a number as well as 'first' and 'next')."
            ).format(OFFSET=OFFSET)
        )
    if read != list(EVENTS[OFFSET:]):
        return hint(
            _(
                "`read` is {read!r}: reading from offset {OFFSET} of a fresh stream gives the "
                "events from event-{OFFSET} to the end, each once, in order."
            ).format(read=read, OFFSET=OFFSET)
        )
    return passed(
        _(
            "{stream} is a stream holding event-0 … event-9, and you read event-{OFFSET} … "
            "event-9 from offset {OFFSET}. The stream still holds all ten: reading a stream "
            "removes nothing."
        ).format(stream=stream, OFFSET=OFFSET)
    )


def _latest_error(read: object) -> object:
    """`sys.last_value`, unless the learner's cell has run again since it was raised."""
    global _SEEN
    error = getattr(sys, "last_value", None)
    contents = tuple(read) if isinstance(read, list) else None
    stale = False
    if error is not None and _SEEN is not None and error is _SEEN.error:
        same_run = read is _SEEN.read and contents == _SEEN.contents
        stale = _SEEN.stale or not same_run
    _SEEN = _Seen(error, read, contents, stale)
    return None if stale else error


def _refusal(error: object, stream: str) -> str | None:
    """Which of the exercise's typical refusals `error` is, if it is one."""
    code = getattr(error, "reply_code", None)
    text = str(getattr(error, "reply_text", ""))
    if code == 541 and "transient_nonexcl_queues" in text:
        return "non-durable"
    if f"'{stream}'" not in text:
        return None
    if code == 406 and "non-durable" in text:
        return "non-durable"
    if code == 406 and "prefetch count is not set" in text:
        return "prefetch"
    if code == 540 and "automatic acknowledgement" in text:
        return "auto_ack"
    if code == 540 and "basic.get" in text:
        return "basic_get"
    return None


def _stream_bodies(broker: Broker, stream: str, limit: int = 100) -> list[str]:
    """Every body the stream holds, from its first message (at most `limit`)."""
    params = broker.connection_parameters(client_properties={"connection_name": "ch07.check"})
    bodies: list[str] = []
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=limit)
        for method, _properties, body in channel.consume(
            stream, inactivity_timeout=0.3, arguments={"x-stream-offset": "first"}
        ):
            if method is None:
                break
            bodies.append(body.decode(errors="replace"))
            channel.basic_ack(method.delivery_tag)
            if len(bodies) >= limit:
                break
        channel.cancel()
    return bodies
