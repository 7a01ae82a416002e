"""A consumer of RabbitMQ's firehose that turns trace messages into flow events.

With tracing on for a vhost, the broker copies every publish and every delivery to the
internal topic exchange `amq.rabbitmq.trace` (keys `publish.<exchange>` and
`deliver.<queue>`), with headers that say what *it* did: `routed_queues` lists the queues
a published message actually reached (empty: dropped). That is why the diagram trusts these
events instead of guessing routing in Python.

`Tracer` owns one pika connection in one background thread (a BlockingConnection must never
be shared between threads), and its trace queue is exclusive and auto-delete, so nothing is
left on the broker even if the kernel dies. Tracing costs the broker work, so it is switched
on only while at least one tracer of this tutorial is attached to the vhost, and switched
off again by the last one to leave unless it was already on before the first one came. The
reference count lives on the broker itself, as arguments of the trace queues' bindings, so
it also works across kernels and disappears with them.

A kernel that dies with a diagram open cannot switch tracing off. So whenever a diagram
switches tracing on, it also declares a small marker exchange (`TRACING_MARK`); the last
diagram to leave deletes it with the switch. A marker found with no diagram attached means
a diagram died while tracing was on because of it: the next diagram takes tracing as off
before, and switches it off when it leaves (`reset_stale_tracing()` does it at once).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from helpers.broker import Broker
    from helpers.management import ManagementClient

TRACE_EXCHANGE = "amq.rabbitmq.trace"
BINDING_MARK = "tutorial-flow-diagram"  # binding argument that marks our trace queues
WAS_ON = "tracing-was-on"  # binding argument: was tracing on before the first diagram came?
TRACING_MARK = "tutorial.flow.tracing-switched-on"  # exchange: tracing is on because of us
SYNC_ID = "tutorial-flow-sync-"
PREFETCH = 200  # trace messages in flight to us; acking them paces the broker

PREVIEW_CHARS = 40
PREVIEW_BYTES = 16


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
    size: int = -1  # the whole body's size when `body` holds only its start
    # How many alike trace messages this one stands for: in a burst the firehose process
    # sends one event per kind of message with a count (`helpers.firehose.compact`).
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
    )


def body_preview(body: bytes, limit: int = PREVIEW_CHARS, size: int | None = None) -> str:
    """A short, plain-text preview of a body: text if it is UTF-8, else hex plus the size.

    Only the first few bytes are looked at (it runs for every message of a burst). `size` is
    the whole body's length when `body` is already cut short. The result is *not*
    HTML-escaped: whoever puts it into HTML or SVG must escape it.
    """
    size = len(body) if size is None else size
    head = body[: limit * 4]  # at most 4 bytes a character
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut in two at the end of `head` is not binary data.
        cut = exc.start >= len(head) - 3 and (len(head) < size or len(head) < len(body))
        text = head[: exc.start].decode("utf-8") if cut else None
    if text is not None and all(c.isprintable() or c in "\n\t" for c in text[:limit]):
        text = text.replace("\n", "↵").replace("\t", " ")
        long = len(text) > limit or len(head) < size
        return text[: limit - 1] + "…" if long else text
    more = "…" if size > PREVIEW_BYTES else ""
    return f"0x {body[:PREVIEW_BYTES].hex(' ')}{more} ({size} bytes)"


# -- the reference count of tracing, kept on the broker -----------------------------------


def _trace_bindings(api: ManagementClient, vhost: str) -> list[dict[str, Any]]:
    path = f"exchanges/{quote(vhost, safe='')}/{TRACE_EXCHANGE}/bindings/source"
    return [
        b
        for b in (api.get(path) or [])
        if b.get("destination_type") == "queue" and (b.get("arguments") or {}).get(BINDING_MARK)
    ]


def diagram_trace_queues(api: ManagementClient, vhost: str) -> list[str]:
    """Names of the trace queues of every live diagram on this vhost (any kernel)."""
    return sorted({b["destination"] for b in _trace_bindings(api, vhost)})


def tracing_was_on_before(api: ManagementClient, vhost: str) -> bool:
    """Whether tracing was already on before this tutorial's diagrams switched it on.

    If other diagrams are attached, they recorded the answer when the first of them came;
    otherwise the answer is the vhost's tracing flag right now.
    """
    others = _trace_bindings(api, vhost)
    if others:
        return any(b["arguments"].get(WAS_ON) for b in others)
    if api.exchange(TRACING_MARK, vhost) is not None:
        return False  # a diagram switched it on and died: it was off before that
    return api.tracing(vhost)


def reset_stale_tracing(api: ManagementClient, vhost: str) -> bool:
    """Switch tracing off if a diagram that died left it on; True if it did.

    Nothing happens while any diagram is attached, or when tracing was on before the
    tutorial's diagrams came (a classroom vhost, say).
    """
    if _trace_bindings(api, vhost) or api.exchange(TRACING_MARK, vhost) is None:
        return False
    api.set_tracing(vhost, False)
    api.request("DELETE", f"exchanges/{quote(vhost, safe='')}/{TRACING_MARK}")
    return True


def decode(item: list[Any]) -> TraceEvent:
    """A trace event from the firehose process's compact form (`helpers.firehose.encode`)."""
    (kind, exchange, keys, routed, queue, redelivered, connection, channel, message_id,
     headers, body, size, reply_to, repeat) = item  # fmt: skip
    return TraceEvent(
        kind=kind,
        exchange=exchange,
        routing_keys=tuple(keys),
        routed_queues=tuple(routed),
        queue=queue,
        redelivered=redelivered,
        connection=connection,
        channel=channel,
        message_id=message_id,
        headers=dict(headers),
        body=base64.b64decode(body),
        reply_to=reply_to,
        size=size,
        repeat=repeat,
    )


# -- the tracer ----------------------------------------------------------------------------


class Tracer:
    """Consumes the firehose of `broker.vhost` through a process of its own.

    The consuming and decoding run in `python -m helpers.firehose` (see there for why); a
    thread here reads its batches of events. `on_events` is called in that thread with each
    batch; `on_tick` about every `tick` seconds, for periodic work (the diagram refreshes
    its topology and renders there). `sync()` is the barrier a notebook cell needs: it
    returns once every trace message the broker produced before the call has been handed to
    `on_events`. If the kernel dies, the process sees its input close and goes too, and with
    its connection the exclusive trace queue.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        broker: Broker,
        on_events: Callable[[list[TraceEvent]], None],
        on_tick: Callable[[], None] | None = None,
        tick: float = 0.05,
    ):
        self.broker = broker
        self.on_events = on_events
        self.on_tick = on_tick
        self.tick = tick
        self.queue = ""
        self.was_on = False
        self.events_seen = 0
        # The broker's own counters include the diagram's traffic: its sync markers (one
        # publish and one delivery each) and every trace message delivered to it.
        self.markers_sent = 0
        self.received = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._synced = 0
        self._sync_seq = itertools.count(1)
        self._count_ids = itertools.count(1)
        self._counts: dict[int, dict[str, list[int]]] = {}
        self._write_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._read, name=f"flow-tracer-{next(self._ids)}", daemon=True
        )

    # -- lifecycle, called from the notebook's thread --------------------------------------

    def start(self, timeout: float = 15.0) -> Tracer:
        """Start the firehose process; return once it consumes (tracing is on by then)."""
        b = self.broker
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p
                for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH"))
                if p
            ),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "helpers.firehose"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        settings = {
            "host": b.host,
            "port": b.port,
            "vhost": b.vhost,
            "username": b.username,
            "password": b.password,
            "management_url": b.management_url,
        }
        self._send(settings)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError("the firehose consumer did not start in time")
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming, delete the trace queue, switch tracing off if we were the last."""
        process = self._process
        if process is None:
            return
        self._stop.set()
        self._send({"stop": True})
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._thread.join(timeout)
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.poll() is None
            and self._thread.is_alive()
            and not self._stop.is_set()
        )

    def sync(self, timeout: float = 3.0) -> bool:
        """Wait until every trace message published before this call has been processed.

        A marker message is sent through our own trace queue: queues keep order, so when it
        comes back, everything the broker traced before it has come back too.
        """
        if not self.alive:
            return False
        seq = next(self._sync_seq)
        if not self._send({"sync": seq}):
            return False
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._synced < seq:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def settle(self, timeout: float = 5.0, pause: float = 0.1) -> bool:
        """Sync until two marker round trips in a row bring no new events.

        One marker is not a barrier for messages another connection published just before:
        the broker handles each connection in its own process, so our marker may overtake
        them. Once two rounds, a short pause apart, see nothing new, they have arrived.
        """
        deadline = time.monotonic() + timeout
        quiet_rounds = 0
        while quiet_rounds < 2:
            before = self.events_seen
            if not self.sync(max(0.1, deadline - time.monotonic())):
                return False
            quiet_rounds = quiet_rounds + 1 if self.events_seen == before else 0
            if time.monotonic() > deadline:
                return False
            if quiet_rounds < 2:
                time.sleep(pause)
        return True

    def consumer_counts(self, queues: list[str], timeout: float = 2.0) -> dict[str, int]:
        """How many consumers each queue has right now (see `queue_counts`)."""
        counts = self.queue_counts(queues, timeout) or {}
        return {name: consumers for name, (_ready, consumers) in counts.items()}

    def queue_counts(
        self, queues: list[str], timeout: float = 2.0
    ) -> dict[str, tuple[int, int]] | None:
        """(ready messages, consumers) of each queue right now, asked over AMQP.

        A passive declare is answered by the queue itself, at once, for every queue type;
        the management API's numbers come from statistics that lag (quorum queues' by
        seconds). Queues that are gone, or another connection's exclusive queues (which
        refuse a passive declare), are left out. None when no answer came in time.
        """
        if not queues:
            return {}
        if not self.alive:
            return None
        ask = next(self._count_ids)
        if not self._send({"counts": list(queues), "id": ask}):
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while ask not in self._counts:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return None
                self._cond.wait(min(left, 0.1))
            result = self._counts.pop(ask)
        return {name: (ready, consumers) for name, (ready, consumers) in result.items()}

    # -- talking to the process -------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> bool:
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            return False
        try:
            with self._write_lock:
                process.stdin.write((json.dumps(message) + "\n").encode())
                process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def _read(self) -> None:
        """The reading thread: events to on_events, answers to waiting calls, ticks.

        It reads the pipe's file descriptor itself: a buffered reader would hold lines that
        `select` no longer reports, and a sync() would wait for them in vain.
        """
        process = self._process
        assert process is not None and process.stdout is not None
        fd = process.stdout.fileno()
        pending = b""
        next_tick = time.monotonic()
        closed = False
        try:
            while not closed:
                readable, _, _ = select.select([fd], [], [], self.tick)
                if readable:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break  # the process has ended
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line and self._handle(json.loads(line)):
                            closed = True
                now = time.monotonic()
                if self.on_tick is not None and now >= next_tick and self._ready.is_set():
                    next_tick = now + self.tick
                    self.on_tick()
        except Exception as exc:  # keep the error for the diagram
            self._error = self._error or exc
        finally:
            self._stop.set()
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    def _handle(self, message: dict[str, Any]) -> bool:
        """Act on one line from the process; True when it has closed."""
        if "stats" in message:
            self.events_seen, self.received, self.markers_sent = message["stats"]
        if "events" in message:
            self.on_events([decode(item) for item in message["events"]])
        if "synced" in message:
            with self._cond:
                self._synced = max(self._synced, int(message["synced"]))
                self._cond.notify_all()
        elif "counts" in message:
            with self._cond:
                self._counts[int(message["counts"])] = message["result"]
                self._cond.notify_all()
        elif "ready" in message:
            self.queue, self.was_on = message["ready"], bool(message["was_on"])
            self._ready.set()
        elif "error" in message:
            from helpers.errors import TutorialError

            self._error = TutorialError(
                "The diagram's firehose consumer failed: " + message["error"]
            )
            self._ready.set()
        return "closed" in message
