"""The firehose consumer, in a process of its own: `python -m helpers.flow.firehose`.

Why a process: decoding trace messages is pika's pure-Python frame parsing, tens of
microseconds per message. Inside the kernel it competed for the GIL with the very program
the diagram watches (a burst publisher ran at about half its speed, and the picture fell
seconds behind). In its own process it has its own interpreter, and on another core.

Protocol, one JSON document per line:
- stdin: first the settings ({"host", "port", "vhost", "username", "password",
  "management_url", "tls"}; the password travels here, never on a command line), then commands:
  {"sync": n} sends marker n through our queue; {"counts": [queue, ...], "id": n} asks each
  queue for its counts; {"stop": true}. End of input (the kernel died) also stops it.
- stdout: {"ready": queue, "was_on": bool} or {"error": text}; then {"events": [...],
  "stats": [events, received, markers]} batches (see `compact`; each event is
  `helpers.flow.events.encode`d), {"synced": n},
  {"counts": n, "result": {queue: [ready, consumers]}}, {"error": text} also when the broker
  closed or dropped the connection later, and {"closed": true} at the end.

Tracing on/off and its reference count on the broker are done here, by the rules of
`helpers.flow.tracing`; the exclusive trace queue dies with this process's connection.

Its life is tied to the kernel's, and to its connection's. The kernel starts it in a session
of its own (`helpers.flow.tracer`), so the stop button's SIGINT, and a kill of the kernel's
whole process group (JupyterLab's restart), never reach it: it sees its input close, or its
parent change, and cleans up: tracing off if it was the last diagram. When the broker goes
(a restart), it says why and exits; the kernel starts a new one once the broker is back.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

import pika
import pika.exceptions

from helpers.broker import tls_context
from helpers.flow.events import SYNC_ID, TRACE_EXCHANGE, TraceEvent, encode, parse
from helpers.flow.tracing import (
    binding_arguments,
    switch_off_if_last,
    switch_on,
    tracing_was_on_before,
)
from helpers.management import ManagementClient

PREFETCH = 1000  # trace messages in flight to us; acking them paces the broker
BATCH_EVENTS = 1000
KEEP_EACH = 20  # the newest events of a batch are sent one by one (see `compact`)
BATCH_SECONDS = 0.05
# During a burst (more than BURST_EVENTS trace messages in one read) and while nobody waits
# for a marker, rest YIELD_RATIO times as long as the read took: the program being watched
# and the broker get the CPU first, and the backlog waits in the trace queue until the burst
# is over. On 2 cores, where a publisher and the broker already keep both busy, this is what
# the publisher notices of the diagram (benchmarks/flow_view.py, publisher_ratio).
BURST_EVENTS = 50
YIELD_RATIO = 1.0
MAX_YIELD_S = 0.05


def compact(events: list[TraceEvent]) -> list[list[Any]]:
    """A batch of events for the kernel; in a burst, alike events go as one with a count.

    Events are alike when they differ only in the message itself (id, body, headers): the
    diagram counts them the same way, and turning each into an object in the kernel cost
    the watched program's interpreter about 25 us per message (the same process, the same
    GIL). The newest KEEP_EACH events of a batch always go one by one, in order: they are
    the ones the diagram's log and dots show.
    """
    if len(events) <= 2 * KEEP_EACH:
        return [encode(e) for e in events]
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for e in events[:-KEEP_EACH]:
        key = e.alike()
        group = groups.get(key)
        if group is None:
            groups[key] = [e, 1]
        else:
            group[0] = e  # the newest stands for them all
            group[1] += 1
    return [encode(e, n) for e, n in groups.values()] + [encode(e) for e in events[-KEEP_EACH:]]


class Worker:
    def __init__(self, settings: dict[str, Any], out: Any):
        self.s = settings
        self.out = out
        self.api = ManagementClient(
            settings["management_url"], settings["username"], settings["password"]
        )
        self.connection: pika.BlockingConnection | None = None
        self.channel: Any = None
        self.aux: Any = None  # a second channel for passive declares (a 404 closes it)
        self.queue = ""
        self.was_on = False
        self.batch: list[TraceEvent] = []
        self.synced: list[int] = []  # markers back, to report after the batch before them
        self.last_tag = 0
        self.unacked = 0
        self.events = self.received = self.markers = 0
        self.markers_back = 0
        self.reported: list[int] = []  # the stats last sent to the kernel
        self.kernel_gone = False  # our output pipe is closed

    def emit(self, message: dict[str, Any]) -> None:
        if self.kernel_gone:
            return
        try:
            self.out.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.out.flush()
        except (OSError, ValueError):  # the kernel died: nobody to tell, cleaning up goes on
            self.kernel_gone = True

    def open(self) -> None:
        s = self.s
        params = pika.ConnectionParameters(
            host=s["host"],
            port=s["port"],
            virtual_host=s["vhost"],
            credentials=pika.PlainCredentials(s["username"], s["password"]),
            client_properties={"connection_name": "tutorial flow diagram (firehose)"},
            connection_attempts=1,
            socket_timeout=5,
            # amqps:// brokers: the same TLS checks as the kernel's (AMQP_CA_FILE is inherited)
            ssl_options=pika.SSLOptions(tls_context(), s["host"]) if s.get("tls") else None,
        )
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare(
            "", exclusive=True, auto_delete=True, arguments={"x-max-length": 200_000}
        ).method.queue
        self.was_on = tracing_was_on_before(self.api, s["vhost"])
        self.channel.queue_bind(
            self.queue, TRACE_EXCHANGE, "#", arguments=binding_arguments(self.was_on)
        )
        self.channel.basic_qos(prefetch_count=PREFETCH)
        self.channel.basic_consume(self.queue, self.on_message)
        switch_on(self.api, s["vhost"], self.was_on)

    def close(self) -> None:
        try:
            if self.connection is not None and self.connection.is_open:
                if self.queue and self.channel is not None and self.channel.is_open:
                    self.channel.queue_delete(self.queue)
                self.connection.close()
        except Exception:  # already gone: the exclusive queue went with the connection
            pass
        try:
            if self.queue:
                switch_off_if_last(self.api, self.s["vhost"], self.was_on)
        except Exception:  # the management API is gone too; nothing more we can do
            pass

    def on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.last_tag = method.delivery_tag
        self.unacked += 1
        self.received += 1
        if method.exchange != TRACE_EXCHANGE:
            mid = props.message_id or ""
            if mid.startswith(SYNC_ID):
                self.synced.append(int(mid[len(SYNC_ID) :]))
                self.markers_back += 1
            return
        event = parse(method.routing_key, props.headers, body)
        if event is None or self.is_own(event):
            return
        self.events += 1
        self.batch.append(event)

    def is_own(self, event: TraceEvent) -> bool:
        """Our own sync markers are traced too (publish to "" and deliver from our queue)."""
        if event.kind == "deliver":
            return event.queue == self.queue
        return event.exchange == "" and event.routed_queues == (self.queue,)

    def flush(self) -> None:
        stats = [self.events, self.received, self.markers]
        sent = bool(self.batch or self.synced)
        if self.batch:
            batch, self.batch = self.batch, []
            self.emit({"events": compact(batch), "stats": stats})
        for n in self.synced:
            self.emit({"synced": n, "stats": stats})
        if stats != self.reported and not sent:
            # Only our own markers' trace messages came: they are deliveries in the broker's
            # counters too, which the tests compare with the diagram's totals.
            self.emit({"stats": stats})
        self.reported = stats
        self.synced = []
        if self.unacked and self.channel is not None and self.channel.is_open:
            self.channel.basic_ack(self.last_tag, multiple=True)
            self.unacked = 0

    def send_marker(self, seq: int) -> None:
        props = pika.BasicProperties(message_id=f"{SYNC_ID}{seq}")
        self.channel.basic_publish("", self.queue, b"", props)
        self.markers += 1

    def counts(self, names: list[str]) -> dict[str, list[int]]:
        result: dict[str, list[int]] = {}
        for name in names:
            if self.aux is None or not self.aux.is_open:
                self.aux = self.connection.channel()
            try:
                ok = self.aux.queue_declare(name, passive=True)
                result[name] = [ok.method.message_count, ok.method.consumer_count]
            except pika.exceptions.ChannelClosedByBroker:
                self.aux = None  # 404 gone, or 405 another connection's exclusive queue
        return result


def main() -> int:
    # Lower priority than the kernel: on a busy machine the program being watched goes first,
    # and the picture catches up when the CPU is free.
    try:
        os.nice(10)
    except OSError:
        pass
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    wake = threading.Event()  # a command came: stop resting
    settings = json.loads(sys.stdin.readline())

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                commands.put(json.loads(line))
                wake.set()
        commands.put({"stop": True})  # end of input: the kernel has gone
        wake.set()

    threading.Thread(target=read_commands, daemon=True).start()
    # Our input pipe closes when the kernel dies, unless a process the kernel forked holds
    # it too; a new parent (we were handed to init) tells the same, whatever holds the pipe.
    parent = os.getppid()
    worker = Worker(settings, sys.stdout)
    try:
        worker.open()
    except Exception as exc:
        worker.emit({"error": f"{type(exc).__name__}: {exc}"})
        worker.close()
        return 1
    worker.emit({"ready": worker.queue, "was_on": worker.was_on})
    last_flush = time.monotonic()
    stopping = False
    try:
        while not stopping and not worker.kernel_gone:
            if os.getppid() != parent:
                break  # the kernel is gone
            started, received = time.monotonic(), worker.received
            worker.connection.process_data_events(time_limit=0.01)
            burst = worker.received - received > BURST_EVENTS
            wake.clear()  # before looking, so that a command arriving now still wakes us
            if burst and worker.markers_back == worker.markers and commands.empty():
                wake.wait(min(MAX_YIELD_S, (time.monotonic() - started) * YIELD_RATIO))
            while not commands.empty():
                command = commands.get()
                if "stop" in command:
                    stopping = True
                elif "sync" in command:
                    worker.send_marker(int(command["sync"]))
                elif "counts" in command:
                    worker.flush()
                    worker.emit(
                        {"counts": command["id"], "result": worker.counts(command["counts"])}
                    )
            now = time.monotonic()
            due = now - last_flush >= BATCH_SECONDS or len(worker.batch) >= BATCH_EVENTS
            if worker.synced or (due and (worker.batch or worker.unacked)):
                worker.flush()
                last_flush = now
    except Exception as exc:  # the broker went away (a restart, say): the kernel reconnects
        worker.emit({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        try:
            worker.flush()  # acks what was handled; the broker may be gone
        except Exception:
            pass
        worker.close()  # whatever happened: tracing off, if we switched it on
        worker.emit({"closed": True})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the kernel stopped reading: nothing more to say
        sys.exit(0)
