"""The firehose consumer, in a process of its own: `python -m helpers.flow.firehose`.

Why a process: decoding trace messages is pika's pure-Python frame parsing, tens of
microseconds per message. Inside the kernel it competed for the GIL with the very program
the diagram watches (a burst publisher ran at about half its speed, and the picture fell
seconds behind). In its own process it has its own interpreter, and on another core.

Protocol, one JSON document per line:
- stdin: first the settings ({"host", "port", "vhost", "username", "password",
  "management_url", "tls"}; the password travels here, never on a command line), then commands:
  {"sync": n} sends marker n through our queue, and through the client-event queue if we have
  one of its own; {"counts": [queue, ...], "id": n} asks each queue for its counts;
  {"stop": true}. End of input (the kernel died) also stops it.
- stdout: {"ready": queue, "was_on": bool, "lifecycle": bool, "clients_queue": name} or
  {"error": text} (`clients_queue`: our queue in "/" for client events, "" when there is
  none); then {"clients": [...], "events": [...], "stats": [events, received, markers,
  clients]} batches (see `compact`; each event is `helpers.flow.events.encode`d, each client
  event `helpers.flow.lifecycle.encode`d; either part may be missing; the client events of a
  line came before its trace events, and lines keep the queue's order; `received` and
  `markers` are the diagram vhost's share of the broker's counters: the trace queue's
  deliveries and our markers published to it), {"synced": n} once marker n came back through
  every queue we read,
  {"counts": n, "result": {queue: [ready, consumers]}}, {"error": text} also when the broker
  closed or dropped the connection later, and {"closed": true} at the end.

Tracing on/off and its reference count on the broker are done here, by the rules of
`helpers.flow.tracing`; the exclusive trace queue dies with this process's connection.

Client events (`helpers.flow.lifecycle`): where the vhost has the event exchange
(`"lifecycle": true`), the same trace queue is bound to it too, so the broker's queue keeps
a consumer's start, a publish and a connection's close in the order they happened. The
exchange lives in "/" only (EVENT_VHOST) and carries every vhost's events: the firehose of
another vhost opens a second connection to "/" (same user and TLS settings, named like the
first with " (client events)"), with an exclusive queue of its own bound there, and joins
its messages with the same `EventJoiner`, which keeps the diagram's vhost's events only. A
user who may not use "/" (a classroom's student), or a broker without the plugin, gets no
client events (`"lifecycle": false`), and the diagram reads clients from the management API.
Two queues keep no order between them: each flush sends its client events first (a
consumer's start before its first delivery, most of the time; the kernel's drawing does not
depend on it), and a sync marker goes through both queues, so "synced" also covers a close
that came just before the marker. That queue's deliveries, and the markers sent to it, are
in "/"'s counters, not the diagram vhost's: `stats` leaves them out. When either connection
is lost, the process says why and exits.

Its life is tied to the kernel's, and to its connection's. The kernel starts it in a session
of its own (`helpers.flow.tracer`), so the stop button's SIGINT, and a kill of the kernel's
whole process group (JupyterLab's restart), never reach it: it sees its input close, or its
parent change, and cleans up: tracing off if it was the last diagram. When the broker goes
(a restart), it says why and exits; the kernel starts a new one once the broker is back.
"""

from __future__ import annotations

import contextlib
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
from helpers.flow.lifecycle import (
    EVENT_EXCHANGE,
    EVENT_KEYS,
    EVENT_VHOST,
    ClientEvent,
    EventJoiner,
)
from helpers.flow.lifecycle import encode as encode_client
from helpers.flow.tracing import (
    binding_arguments,
    switch_off_if_last,
    switch_on,
    tracing_was_on_before,
)
from helpers.management import ManagementClient

PREFETCH = 1000  # trace messages in flight to us; acking them paces the broker
BATCH_EVENTS = 500  # this many events go to the kernel (and are acked) at once
KEEP_EACH = 20  # the newest events of a batch are sent one by one (see `compact`)
BATCH_SECONDS = 0.05
# Pacing during a burst (see `Pace`): while the program being watched publishes more than
# BUSY_RATE trace messages a second, this process takes at most BUSY_CPU_SHARE of a core,
# resting MIN_REST_S to MAX_REST_S at a time, and sends what it read every
# POLITE_BATCH_SECONDS at least; the rest waits in the trace queue, up to MAX_BACKLOG
# messages (about a second of catching up on 2 cores). At BUSY_RATE, keeping up costs about
# BUSY_CPU_SHARE anyway (40-50 us of pika decoding a message).
BUSY_RATE = 2000
BUSY_CPU_SHARE = 0.1
MAX_CREDIT_S = 0.02  # CPU time saved up while idle in a burst, spent at once later
MIN_REST_S, MAX_REST_S = 0.02, 0.2
MIN_JUDGED_S = 0.05  # a shorter rest says too little: the broker routes in spurts
POLITE_BATCH_SECONDS = 0.25
PROBE_S = 0.1  # while messages come, our queue's length is asked this often
MAX_BACKLOG = 20_000


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


CONNECTION_NAME = "tutorial flow diagram (firehose)"


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
        self.lifecycle = False  # our queue gets the event exchange's client events too
        self.joiner = EventJoiner()
        self.own = ""  # the broker's name of our connection: its client events are left out
        # Where the diagram's vhost is not EVENT_VHOST: our second connection, to that vhost,
        # its channel and queue for client events, its broker name, its delivery tag to ack
        # (0: nothing), and its share of "/"'s counters (deliveries to it, markers sent to it).
        self.events_connection: pika.BlockingConnection | None = None
        self.events_channel: Any = None
        self.events_queue = ""
        self.events_own = ""
        self.events_tag = 0
        self.events_received = self.events_markers = 0
        self.passed = 0  # client events sent to the kernel
        self.waiting: dict[int, int] = {}  # sync marker -> how many queues it is still in
        self.clients: list[ClientEvent] = []  # client events that came before `batch`
        # Earlier (client events, trace events) runs of this flush, in queue order: a client
        # event after trace events starts a new run, so each line of output can list its
        # client events first and still keep the broker's order.
        self.runs: list[tuple[list[ClientEvent], list[TraceEvent]]] = []
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

    def parameters(self, vhost: str, name: str) -> pika.ConnectionParameters:
        """Our connections' parameters: both alike but for the vhost and the name."""
        s = self.s
        return pika.ConnectionParameters(
            host=s["host"],
            port=s["port"],
            virtual_host=vhost,
            credentials=pika.PlainCredentials(s["username"], s["password"]),
            client_properties={"connection_name": name},
            connection_attempts=1,
            socket_timeout=5,
            # amqps:// brokers: the same TLS checks as the kernel's (AMQP_CA_FILE is inherited)
            ssl_options=pika.SSLOptions(tls_context(), s["host"]) if s.get("tls") else None,
        )

    def open(self) -> None:
        s = self.s
        self.connection = pika.BlockingConnection(self.parameters(s["vhost"], CONNECTION_NAME))
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare(
            "", exclusive=True, auto_delete=True, arguments={"x-max-length": 200_000}
        ).method.queue
        self.own = broker_name(self.connection)
        self.lifecycle = self.listen_to_clients() or self.listen_in_event_vhost()
        self.was_on = tracing_was_on_before(self.api, s["vhost"])
        self.channel.queue_bind(
            self.queue, TRACE_EXCHANGE, "#", arguments=binding_arguments(self.was_on)
        )
        self.channel.basic_qos(prefetch_count=PREFETCH)
        self.channel.basic_consume(self.queue, self.on_message)
        switch_on(self.api, s["vhost"], self.was_on)

    def listen_to_clients(self) -> bool:
        """Bind our queue to the event exchange for EVENT_KEYS, if this vhost has it.

        It lives in one vhost only (see `helpers.flow.lifecycle`), and a broker the learner
        named may lack the plugin: a passive declare finds out, on a channel of its own since
        the 404 closes it (as would a 403 for a user who may not read the exchange). That
        channel is kept for `counts`: opened now, before the binding, our own channel.created
        never reaches us.
        """
        channel = self.connection.channel()
        try:
            channel.exchange_declare(EVENT_EXCHANGE, passive=True)
            for key in EVENT_KEYS:
                channel.queue_bind(self.queue, EVENT_EXCHANGE, key)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        self.aux = channel
        return True

    def listen_in_event_vhost(self) -> bool:
        """For a diagram of another vhost: client events over a second connection, to
        EVENT_VHOST, through an exclusive queue there bound to the event exchange.

        False, with nothing left open, when that cannot be: the user may not use that vhost
        (530 NOT_ALLOWED: a classroom's student), may not read the exchange or declare a
        queue (403), or the broker lacks the plugin (404). Our first connection works, so
        the broker is there; should it be going away, that connection tells soon enough.
        """
        if self.s["vhost"] == EVENT_VHOST:
            return False
        name = CONNECTION_NAME + " (client events)"
        try:
            connection = pika.BlockingConnection(self.parameters(EVENT_VHOST, name))
        except pika.exceptions.AMQPError:
            return False
        try:
            channel = connection.channel()
            channel.exchange_declare(EVENT_EXCHANGE, passive=True)
            queue_name = channel.queue_declare(
                "", exclusive=True, auto_delete=True, arguments={"x-max-length": 200_000}
            ).method.queue
            for key in EVENT_KEYS:
                channel.queue_bind(queue_name, EVENT_EXCHANGE, key)
            channel.basic_qos(prefetch_count=PREFETCH)
            channel.basic_consume(queue_name, self.on_client_message)
        except pika.exceptions.AMQPError:
            with contextlib.suppress(Exception):
                connection.close()
            return False
        self.events_connection, self.events_channel = connection, channel
        self.events_queue, self.events_own = queue_name, broker_name(connection)
        return True

    def close(self) -> None:
        try:
            if self.connection is not None and self.connection.is_open:
                if self.queue and self.channel is not None and self.channel.is_open:
                    self.channel.queue_delete(self.queue)
                self.connection.close()
        except Exception:  # already gone: the exclusive queue went with the connection
            pass
        try:
            if self.events_connection is not None and self.events_connection.is_open:
                self.events_connection.close()  # and with it our exclusive queue there
        except Exception:  # already gone
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
        if method.exchange == EVENT_EXCHANGE:
            client = self.joiner.feed(method.routing_key, props.headers, self.s["vhost"])
            if client is not None and self.lifecycle and not self.is_own_client(client):
                if self.batch:  # trace events came first: they go first
                    self.runs.append((self.clients, self.batch))
                    self.clients, self.batch = [], []
                self.clients.append(client)
                self.passed += 1
            return
        if method.exchange != TRACE_EXCHANGE:
            mid = props.message_id or ""
            if mid.startswith(SYNC_ID):
                self.marker_back(int(mid[len(SYNC_ID) :]))
            return
        event = parse(method.routing_key, props.headers, body)
        if event is None or self.is_own(event):
            return
        self.events += 1
        self.batch.append(event)

    def on_client_message(self, _ch: Any, method: Any, props: Any, _body: bytes) -> None:
        """A message of our queue in EVENT_VHOST: a client event, or one of our markers."""
        self.events_tag = method.delivery_tag
        self.unacked += 1
        self.events_received += 1
        if method.exchange == EVENT_EXCHANGE:
            client = self.joiner.feed(method.routing_key, props.headers, self.s["vhost"])
            if client is not None and not self.is_own_client(client):
                # No order across two queues: the flush sends them before its trace events.
                self.clients.append(client)
                self.passed += 1
            return
        mid = props.message_id or ""
        if mid.startswith(SYNC_ID):
            self.marker_back(int(mid[len(SYNC_ID) :]))

    def poll_clients(self) -> None:
        """Handle what our client-event queue has brought, without waiting (the wait is the
        trace queue's): the loop reads both connections in turn."""
        if self.events_connection is not None:
            self.events_connection.process_data_events(time_limit=0)

    def marker_back(self, seq: int) -> None:
        """Marker `seq` came back through one of our queues; synced once through all."""
        left = self.waiting.pop(seq, 1) - 1
        if left > 0:
            self.waiting[seq] = left
            return
        self.synced.append(seq)
        self.markers_back += 1

    def is_own(self, event: TraceEvent) -> bool:
        """Our own sync markers are traced too (publish to "" and deliver from our queue)."""
        if event.kind == "deliver":
            return event.queue == self.queue
        return event.exchange == "" and event.routed_queues == (self.queue,)

    def is_own_client(self, event: ClientEvent) -> bool:
        """Our connections' channels (a new one for `counts`) and our queues' consumers."""
        ours = {self.own, self.events_own, self.queue, self.events_queue} - {""}
        return event.connection in ours or event.queue in ours

    def flush(self) -> None:
        stats = [self.events, self.received, self.markers, self.passed]
        runs = [*self.runs, (self.clients, self.batch)]
        self.runs, self.clients, self.batch = [], [], []
        sent = bool(self.synced)
        for clients, batch in runs:
            message: dict[str, Any] = {}
            if clients:
                message["clients"] = [encode_client(c) for c in clients]
            if batch:
                message["events"] = compact(batch)
            if message:
                message["stats"] = stats
                self.emit(message)
                sent = True
        for n in self.synced:
            self.emit({"synced": n, "stats": stats})
        if stats != self.reported and not sent:
            # Only our own markers' trace messages came: they are deliveries in the broker's
            # counters too, which the tests compare with the diagram's totals.
            self.emit({"stats": stats})
        self.reported = stats
        self.synced = []
        if self.unacked:
            for channel, tag in (
                (self.channel, self.last_tag),
                (self.events_channel, self.events_tag),
            ):
                if tag and channel is not None and channel.is_open:
                    channel.basic_ack(tag, multiple=True)
            self.last_tag = self.events_tag = 0  # acked: a tag acked twice closes its channel
            self.unacked = 0

    def send_marker(self, seq: int) -> None:
        props = pika.BasicProperties(message_id=f"{SYNC_ID}{seq}")
        self.channel.basic_publish("", self.queue, b"", props)
        self.markers += 1
        self.waiting[seq] = 1
        if self.events_channel is not None:  # through the client-event queue too
            self.events_channel.basic_publish("", self.events_queue, b"", props)
            self.events_markers += 1
            self.waiting[seq] = 2

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


def broker_name(connection: pika.BlockingConnection) -> str:
    """The broker's name of a connection ("127.0.0.1:50432 -> 127.0.0.1:5672"), from its
    socket; "" if pika's internals have moved (our own client events then show)."""
    try:
        sock = connection._impl._transport._sock
        (here, here_port), (there, there_port) = sock.getsockname()[:2], sock.getpeername()[:2]
    except (AttributeError, OSError, TypeError, ValueError):
        return ""

    def host(address: str) -> str:  # RabbitMQ writes IPv6 addresses in brackets
        return f"[{address}]" if ":" in address else address

    return f"{host(here)}:{here_port} -> {host(there)}:{there_port}"


class Pace:
    """How much CPU this process takes: all it needs, except during a burst.

    It used to run at nice 10 and to rest as long as each large read had taken. Where the
    scheduler weighs processes by their nice value (one cgroup for all: a Docker container
    such as Binder's, a CI job), two busy programs at nice 0 left it about a tenth of a
    core, and a 20,000-message burst reached the diagram 7-20 s late; where it does not
    (Linux's autogroup gives each session, and so this process, a share of its own), the
    nice value changed nothing, and it took a third of a core from the publisher
    (benchmarks/flow_view.py). A process cannot lower its nice value again, so it runs at
    the default priority and paces itself instead.

    It turns `polite` when two probes in a row see trace messages come in fast (`observe`),
    which is while the program being watched publishes: it then takes at most
    BUSY_CPU_SHARE of a core (a budget in CPU seconds, `debt`; `rest` says how long to
    rest), and the backlog waits in the trace queue. It stops when a rest shows that nothing
    more comes in (`judge`: the program has stopped publishing), or when the backlog reaches
    MAX_BACKLOG, and then catches up at full speed. While a sync marker is out (a cell waits
    in wait_until_caught_up) it takes what it needs: someone is waiting for the picture.
    """

    def __init__(self, now: float, cpu: float):
        self.polite = False
        self.probed_at, self.received, self.ready = now, 0, 0  # at the last probe
        self.fast = False  # the last probe saw trace messages come in fast
        self.at, self.cpu = now, cpu
        self.debt = 0.0  # CPU seconds taken beyond BUSY_CPU_SHARE of the time, while polite

    def probe_due(self, now: float, received: int) -> bool:
        """Whether to ask for our queue's length now: every PROBE_S while messages come."""
        if received == self.received:
            self.probed_at = now  # nothing came: measure from now on
            return False
        return now - self.probed_at >= PROBE_S

    def observe(self, now: float, received: int, ready: int) -> None:
        """After reading: we have `received` trace messages so far, and `ready` wait.

        What came in since the last probe is what we received plus what the queue grew,
        give or take what was on its way to us. (A backlog read after a burst brings many
        messages, but the queue shrinks by as many.)"""
        came = received - self.received + ready - self.ready
        fast = came > BUSY_RATE * (now - self.probed_at)
        if ready >= MAX_BACKLOG:
            self.polite = False
        elif fast and self.fast:
            self.polite = True
        self.fast = fast
        self.probed_at, self.received, self.ready = now, received, ready

    def judge(self, before: int, after: int, seconds: float, room: int) -> None:
        """After a rest: our queue held `before` messages when it began and `after` now, and
        the broker could have sent us `room` of them meanwhile (we neither read nor acked).

        So it gained what came in, less at most `room`: if even that is short of BUSY_RATE,
        the program has stopped publishing, and we catch up."""
        if before > 0 and seconds >= MIN_JUDGED_S:
            if after - before + room < BUSY_RATE * seconds or after >= MAX_BACKLOG:
                self.polite = False

    def account(self, now: float, cpu: float, waited_for: bool) -> None:
        """Book the CPU taken since the last call against the budget."""
        if self.polite and not waited_for:
            spent = (cpu - self.cpu) - BUSY_CPU_SHARE * (now - self.at)
            self.debt = max(-MAX_CREDIT_S, self.debt + spent)
        else:
            self.debt = 0.0
        self.at, self.cpu = now, cpu

    def rest(self) -> float:
        """Seconds to rest before reading more; 0: read now."""
        if not self.polite or self.debt <= 0:
            return 0.0
        return min(MAX_REST_S, max(MIN_REST_S, self.debt / BUSY_CPU_SHARE))


def depth(worker: Worker) -> int:
    """Messages ready in our trace queue now (a passive declare: one round trip)."""
    return worker.counts([worker.queue]).get(worker.queue, [0])[0]


def main() -> int:
    # No nice value: `Pace` says why, and what does its work instead.
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
    worker.emit(
        {
            "ready": worker.queue,
            "was_on": worker.was_on,
            "lifecycle": worker.lifecycle,
            "clients_queue": worker.events_queue,
        }
    )
    last_flush = time.monotonic()
    pace = Pace(last_flush, time.process_time())
    received = 0  # trace messages received before the last turn of the loop
    clients_acked = 0  # the client-event queue's messages that the last flush acked
    stopping = False

    def flush() -> None:
        nonlocal last_flush, clients_acked
        worker.flush()
        last_flush = time.monotonic()
        clients_acked = getattr(worker, "events_received", 0)

    def held() -> int:
        """Trace messages we hold unacknowledged: what fills our prefetch window."""
        return worker.unacked - (getattr(worker, "events_received", 0) - clients_acked)

    try:
        while not stopping and not worker.kernel_gone:
            if os.getppid() != parent:
                break  # the kernel is gone
            wake.clear()  # before looking, so that a command arriving now still wakes us
            waited_for = worker.markers_back != worker.markers or not commands.empty()
            # A polite rest comes when our window is full, or nothing more came to read.
            full = held() >= PREFETCH or worker.received == received
            rest = pace.rest() if full and not waited_for else 0.0
            received = worker.received
            if rest:
                # What we read goes out, and is acked, after the rests (below): meanwhile
                # the broker can send us no more than our window's room, so if we hold
                # (nearly) a full one, our queue grows by what comes in (Pace.judge).
                room = PREFETCH - held()
                before = depth(worker) if room <= PREFETCH // 4 else 0
                started = time.monotonic()
                wake.wait(rest)
                if before:
                    pace.judge(before, depth(worker), time.monotonic() - started, room)
            else:
                worker.connection.process_data_events(time_limit=0.01)
                worker.poll_clients()  # the client-event queue's connection, if we have one
                now = time.monotonic()
                if pace.probe_due(now, worker.received):
                    pace.observe(now, worker.received, depth(worker))
            pace.account(time.monotonic(), time.process_time(), waited_for)
            while not commands.empty():
                command = commands.get()
                if "stop" in command:
                    stopping = True
                elif "sync" in command:
                    worker.send_marker(int(command["sync"]))
                elif "counts" in command:
                    flush()
                    worker.emit(
                        {"counts": command["id"], "result": worker.counts(command["counts"])}
                    )
            now = time.monotonic()
            if pace.polite and worker.markers_back == worker.markers:
                # A full window is held through the rests that follow it (see above).
                ready = held() >= PREFETCH or now - last_flush >= POLITE_BATCH_SECONDS
                due = ready and not pace.rest()
            else:
                due = now - last_flush >= BATCH_SECONDS or len(worker.batch) >= BATCH_EVENTS
            if worker.synced or (due and (worker.batch or worker.unacked)):
                flush()
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
