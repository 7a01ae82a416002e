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

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pika

if TYPE_CHECKING:
    from helpers.broker import Broker
    from helpers.management import ManagementClient

TRACE_EXCHANGE = "amq.rabbitmq.trace"
BINDING_MARK = "tutorial-flow-diagram"  # binding argument that marks our trace queues
WAS_ON = "tracing-was-on"  # binding argument: was tracing on before the first diagram came?
TRACING_MARK = "tutorial.flow.tracing-switched-on"  # exchange: tracing is on because of us
SYNC_ID = "tutorial-flow-sync-"
PREFETCH = 200  # trace messages in flight to us; acking them paces the broker
PACED_EVENTS_PER_S = 2000.0  # while nobody waits, leave the CPU (and GIL) to the publisher
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

    @property
    def routing_key(self) -> str:
        return self.routing_keys[0] if self.routing_keys else ""

    @property
    def client(self) -> tuple[str, int]:
        """Which connection and channel did it (the producer, or the consumer's channel)."""
        return (self.connection, self.channel)


def _text(value: Any) -> str:
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
        exchange=_text(headers.get("exchange_name", "")),
        routing_keys=tuple(_text(k) for k in headers.get("routing_keys") or ()),
        routed_queues=tuple(_text(q) for q in headers.get("routed_queues") or ()),
        queue=name if kind == "deliver" else "",
        redelivered=bool(headers.get("redelivered", 0)),
        connection=_text(headers.get("connection", "")),
        channel=int(headers.get("channel", 0) or 0),
        user=_text(headers.get("user", "")),
        message_id=_text(props.get("message_id", "") or ""),
        headers=dict(props.get("headers") or {}),
        body=body,
        reply_to=_text(props.get("reply_to", "") or ""),
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


# -- the tracer ----------------------------------------------------------------------------


class Tracer:
    """Consumes the firehose of `broker.vhost` in a background thread.

    `on_events` is called in that thread with each batch of parsed events; `on_tick` is
    called in that thread about every `tick` seconds, for periodic work (the diagram
    refreshes its topology and renders there). `sync()` is the barrier a notebook cell
    needs: it returns once every trace message the broker produced before the call has been
    handed to `on_events`.
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
        self._batch: list[TraceEvent] = []
        self._last_tag = 0
        self._unacked = 0
        self._syncing = 0  # sync() calls waiting: consume at full speed meanwhile
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._aux: Any = None  # a second channel for passive declares (a 404 closes it)
        self._thread = threading.Thread(
            target=self._run, name=f"flow-tracer-{next(self._ids)}", daemon=True
        )

    # -- lifecycle, called from the notebook's thread --------------------------------------

    def start(self, timeout: float = 10.0) -> Tracer:
        """Open the connection, bind the trace queue, switch tracing on; wait until live."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self._stop.set()
            raise TimeoutError("the firehose consumer did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming, delete the trace queue, switch tracing off if we were the last."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def sync(self, timeout: float = 3.0) -> bool:
        """Wait until every trace message published before this call has been processed.

        A marker message is sent through our own trace queue: queues keep order, so when it
        comes back, everything the broker traced before it has come back too.
        """
        if not self.alive or self._connection is None:
            return False
        seq = next(self._sync_seq)
        with self._cond:
            self._syncing += 1
        try:
            try:
                self._connection.add_callback_threadsafe(lambda: self._send_marker(seq))
            except Exception:  # the connection is closing
                return False
            deadline = time.monotonic() + timeout
            with self._cond:
                while self._synced < seq:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self.alive:
                        return False
                    self._cond.wait(min(left, 0.1))
            return True
        finally:
            with self._cond:
                self._syncing -= 1

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
        return {
            name: consumers
            for name, (_ready, consumers) in self.queue_counts(queues, timeout).items()
        }

    def queue_counts(self, queues: list[str], timeout: float = 2.0) -> dict[str, tuple[int, int]]:
        """(ready messages, consumers) of each queue right now, asked over AMQP.

        A passive declare is answered by the queue itself, at once, for every queue type;
        the management API's numbers come from statistics that lag (quorum queues' by
        seconds). Queues that are gone are left out.
        """
        result: dict[str, tuple[int, int]] = {}
        done = threading.Event()

        def ask() -> None:
            try:
                for name in queues:
                    if self._aux is None or not self._aux.is_open:
                        self._aux = self._connection.channel()
                    try:
                        ok = self._aux.queue_declare(name, passive=True)
                        result[name] = (ok.method.message_count, ok.method.consumer_count)
                    except pika.exceptions.ChannelClosedByBroker:
                        self._aux = None  # 404: the queue is gone; the channel closed
            finally:
                done.set()

        if not self.alive or self._connection is None:
            return {}
        try:
            self._connection.add_callback_threadsafe(ask)
        except Exception:
            return {}
        done.wait(timeout)
        return dict(result) if done.is_set() else {}

    # -- the background thread -------------------------------------------------------------

    def _run(self) -> None:
        from helpers.management import ManagementClient

        b = self.broker
        api = ManagementClient(b.management_url, b.username, b.password)
        try:
            self._open(api)
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            self._close(api)
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._connection.process_data_events(time_limit=self.tick)
                handled = self._flush()
                if self.on_tick is not None:
                    self.on_tick()
                if handled and not self._syncing:
                    # A burst: go at a bounded pace so a publisher in the same kernel keeps
                    # most of the CPU; the rest waits in the trace queue (a sync() call
                    # lifts the pace until it is done).
                    self._stop.wait(handled / PACED_EVENTS_PER_S)
        except Exception as exc:  # the broker went away: keep the error for the diagram
            self._error = exc
        finally:
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            self._close(api)

    def _open(self, api: ManagementClient) -> None:
        b = self.broker
        params = b.connection_parameters(
            client_properties={"connection_name": "tutorial flow diagram (firehose)"},
            connection_attempts=1,
            socket_timeout=5,
        )
        self._connection = pika.BlockingConnection(params)
        self._channel = self._connection.channel()
        self.queue = self._channel.queue_declare(
            "", exclusive=True, auto_delete=True, arguments={"x-max-length": 200_000}
        ).method.queue
        self.was_on = tracing_was_on_before(api, b.vhost)
        self._channel.queue_bind(
            self.queue, TRACE_EXCHANGE, "#", arguments={BINDING_MARK: True, WAS_ON: self.was_on}
        )
        self._channel.basic_qos(prefetch_count=PREFETCH)
        self._channel.basic_consume(self.queue, self._on_message)
        if not self.was_on:
            # Left until the last diagram goes, so a dead kernel's tracing can be found.
            self._channel.exchange_declare(TRACING_MARK, "fanout", internal=True)
        if not api.tracing(b.vhost):
            api.set_tracing(b.vhost, True)

    def _close(self, api: ManagementClient) -> None:
        try:
            if self._connection is not None and self._connection.is_open:
                if self.queue and self._channel is not None and self._channel.is_open:
                    self._channel.queue_delete(self.queue)
                self._connection.close()
        except Exception:  # already gone: the exclusive queue went with the connection
            pass
        try:
            if self.queue and not self.was_on and not diagram_trace_queues(api, self.broker.vhost):
                api.set_tracing(self.broker.vhost, False)
                vhost = quote(self.broker.vhost, safe="")
                api.request("DELETE", f"exchanges/{vhost}/{TRACING_MARK}", ok404=True)
        except Exception:  # the management API is gone too; nothing more we can do
            pass

    def _send_marker(self, seq: int) -> None:
        props = pika.BasicProperties(message_id=f"{SYNC_ID}{seq}")
        self._channel.basic_publish("", self.queue, b"", props)
        self.markers_sent += 1

    def _on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        self._last_tag = method.delivery_tag
        self._unacked += 1
        self.received += 1
        if method.exchange != TRACE_EXCHANGE:
            mid = props.message_id or ""
            if mid.startswith(SYNC_ID):
                self._flush()
                with self._cond:
                    self._synced = max(self._synced, int(mid[len(SYNC_ID) :]))
                    self._cond.notify_all()
            return
        event = parse(method.routing_key, props.headers, body)
        if event is None or self._is_own(event):
            return
        self.events_seen += 1
        self._batch.append(event)

    def _is_own(self, event: TraceEvent) -> bool:
        """Our own sync markers are traced too (publish to "" and deliver from our queue)."""
        if event.kind == "deliver":
            return event.queue == self.queue
        return event.exchange == "" and event.routed_queues == (self.queue,)

    def _flush(self) -> int:
        """Hand the batch to on_events, then ack it all: returns how many messages that was."""
        if self._batch:
            batch, self._batch = self._batch, []
            self.on_events(batch)
        handled, self._unacked = self._unacked, 0
        if handled and self._channel is not None and self._channel.is_open:
            self._channel.basic_ack(self._last_tag, multiple=True)
        return handled
