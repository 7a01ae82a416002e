"""Record real broker data for the flow diagram's unit tests, which then run with no broker.

The diagram reads three things from RabbitMQ: the management API (exchanges, queues and their
counts, bindings, consumers, connections), the firehose (`amq.rabbitmq.trace`) and the client
events of the `rabbitmq_event_exchange` plugin (`amq.rabbitmq.event`). Each scenario here
does a small, known thing on a real broker, in a throwaway vhost `record-<scenario>` with
tracing on, and writes what the broker answered, unchanged, to
`tests/unit/data/<scenario>-<major.minor>.json`:

- "steps": after each step (and ~1.5 s), the API snapshot, the raw trace messages (routing
  key, headers table as pika gives it, body) that arrived during the step, and the raw
  client events among them ("events": routing key, headers, and "after": how many of the
  step's trace messages arrived before it; `tests/unit/recorded.py` `arrivals()` merges the
  two lists back into one). Events are those of EVENT_KEYS (connection, channel, consumer
  and queue created/closed/deleted) about the scenario's vhost; `connection.closed` and
  `channel.closed` name no vhost and are kept when their pid was created in it;
- "readings": right after the last action, 30 polls 0.1 s apart of the API next to
  passive `queue_declare` counts ("exact"; a queue that refuses one, 404/405, is left out),
  which show how long the API's counts lag behind; a part of a reading's API answer equal
  to the previous reading's is written as `{"$same": "previous reading"}`;
- "expected": the queues' own ready counts at the end, and what the scenario did
  (published, routed, unroutable, delivered; "exchange|queue" keys, "" is the default
  exchange), written down here and checked against the recorded trace messages, so a wrong
  expectation fails the recording loudly (and what was recorded goes to
  $TMPDIR/<scenario>-failed.json). What a program does on a clock (Celery's heartbeats) is
  checked as a range and written down as the trace counted it ("approximate").

The order of trace messages and events: the event exchange lives in one vhost ("/") and
carries every vhost's events, while a vhost's trace exchange is in that vhost, and an AMQP
connection opens one vhost: no one queue can hold both. So `Listener` reads two connections,
turning from one to the other every POLL_S in a thread of its own for the whole scenario,
and keeps what comes in the order it came. Within a few milliseconds that is the broker's
order, but not exactly: the broker publishes an event from its event handler after the
fact, and when both connections have something in the same turn the trace is read first.
Seen: a fast RPC client's `consumer.created` after the first delivery to its reply queue.

The first scenarios use only plain pika. `celery`, `kombu` and `tutorials` run programs
nobody here wrote, in subprocesses (`record_flow_programs.py`): a Celery 5.7 worker and
client, a kombu producer and consumer, and RabbitMQ's official Python tutorials 1-6. Their
names are their own, so their files have prefix "" (kombu's: "kombu.").

API answers are kept as the API gave them, minus statistics (message_stats, rates,
garbage_collection, backing_queue_status, effective_policy_definition).

Headers are encoded with a small tagged scheme (`{"$bytes": base64}`, `{"$table": {...}}`,
`{"$array": [...]}`, `{"$time": iso}`, `{"$decimal": str}`); bodies are base64.
`tests/unit/recorded.py` decodes them again.

Re-record (overwrites the files) with this checkout's private nodes running; the recorder
turns `rabbitmq_event_exchange` on (`rabbitmq-plugins enable --online`) where it is off:

    .venv/bin/pip install 'celery==5.7.*'   # for celery and kombu only; not a requirement
    git clone https://github.com/rabbitmq/rabbitmq-tutorials /tmp/rabbitmq-tutorials
    TUTORIAL_RABBITMQ=reference .venv/bin/python scripts/record_flow_cases.py \
        --tutorials /tmp/rabbitmq-tutorials/python [scenario ...]
    TUTORIAL_RABBITMQ=system .venv/bin/python scripts/record_flow_cases.py \
        --tutorials /tmp/rabbitmq-tutorials/python [scenario ...]

For 3.10 with no system node of this checkout running, a throwaway one does: set
TUTORIAL_NODE_DIR (a new directory), TUTORIAL_NODE_NAME and TUTORIAL_NODE_AMQP_PORT (plus
..._MANAGEMENT_PORT and ..._DIST_PORT below 32768) for both commands, start it with
`.venv/bin/python -m helpers broker start`, record, then `python -m helpers broker stop`.

Only plain pika and the management client are used to record (not the diagram's own
modules), so the data does not depend on the code it is meant to test.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import decimal
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from helpers import Broker, find_broker
from helpers.errors import ManagementError
from helpers.management import ManagementClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_flow_programs import (  # noqa: E402
    CELERY_CLIENT,
    CELERY_TASKS,
    CELERY_WORKER_NAME,
    KOMBU_COMMON,
    KOMBU_CONSUMER,
    KOMBU_PRODUCER,
    Programs,
    copy_tutorials,
    tutorials_digest,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "unit" / "data"
PREFIX = "rec."
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STEP_WAIT_S = 1.5  # the API lists connections/consumers, trace messages arrive
READINGS = 30
READING_EVERY_S = 0.1
SCENARIO_TIMEOUT_S = 60  # SIGALRM: no scenario may hang the recording
TUTORIALS_DIR: Path | None = None  # --tutorials
TIME_LIMITS_S = {"celery": 240, "tutorials": 240, "kombu": 90}  # programs start slowly
POLL_S = 0.002  # the listener's turn on each of its two connections
EVENT_EXCHANGE = "amq.rabbitmq.event"
EVENTS_VHOST = "/"  # where rabbitmq_event_exchange declares its exchange (for every vhost)
EVENT_PLUGIN = "rabbitmq_event_exchange"
# The client events recorded (the plugin publishes many more: vhost, user, binding, ...).
EVENT_KEYS = (
    "connection.created",
    "connection.closed",
    "channel.created",
    "channel.closed",
    "consumer.created",
    "consumer.deleted",
    "queue.created",
    "queue.deleted",
)
ATTEMPTS = 3
PUMP_TIMEOUT_S = 10.0  # waiting for deliveries in a scenario
# Keys the diagram never reads that make the files large (statistics and internals).
DROP_KEYS = {
    "message_stats",
    "garbage_collection",
    "backing_queue_status",
    "effective_policy_definition",
}

SAME = {"$same": "previous reading"}

Json = dict[str, Any]

# Every type pika can put in a header table (not float: pika cannot encode one).
RICH_HEADERS: Json = {
    "format": "pdf",
    "pages": 12,
    "big": 2**40,
    "urgent": True,
    "draft": False,
    "price": decimal.Decimal("9.99"),
    "sent": datetime.datetime(2024, 5, 17, 9, 30, tzinfo=datetime.timezone.utc),
    "raw": b"\x00\xffbytes",
    "tags": ["a", 1, True, ["nested"]],
    "meta": {"by": "rec", "inner": {"level": 2}},
    "nothing": None,
}


# -- encoding ---------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A pika header value as JSON: natives pass through, the rest get a `$tag`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {"$table": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"$array": [encode(v) for v in value]}
    if isinstance(value, datetime.datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot encode header value {value!r} ({type(value).__name__})")


def slim(value: Any) -> Any:
    """API JSON without statistics: drops DROP_KEYS and rate samples (`x_details: {rate}`)."""
    if isinstance(value, list):
        return [slim(v) for v in value]
    if isinstance(value, dict):
        return {
            k: slim(v)
            for k, v in value.items()
            if k not in DROP_KEYS
            and not (k.endswith("_details") and isinstance(v, dict) and "rate" in v)
        }
    return value


# -- the recorder -----------------------------------------------------------------------------


class Listener:
    """The firehose of the scenario's vhost and the broker's client events, as they come.

    A connection can open one vhost only, and the event exchange lives in "/" whatever vhost
    the events are about, so this takes two connections: one in the scenario's vhost with a
    queue bound to `amq.rabbitmq.trace` (#), one in "/" with a queue bound to
    `amq.rabbitmq.event` for EVENT_KEYS. A thread of its own turns from one to the other every
    POLL_S, from the start of the scenario to its end, so each message is taken as it arrives
    and `arrived` holds both kinds in the order they came, within a few milliseconds (the
    scenario's own connections are never read here). Events about other vhosts (a shared
    node) are dropped; `connection.closed` and `channel.closed` name no vhost, so they are
    kept when their pid is one the scenario's vhost created.
    """

    def __init__(self, rec: Recording):
        self.vhost = rec.vhost
        self.lock = threading.Lock()
        self.arrived: list[tuple[str, Json]] = []  # ("trace" | "event", message)
        self.all_trace: list[Json] = []  # decoded headers, for the expected counts
        self.own_trace_left_out = 0
        self.events_left_out = 0  # about other vhosts
        self.events_seen: list[tuple[str, Json]] = []  # (routing key, headers) for waiting
        self._pids: set[str] = set()  # connections and channels of the scenario's vhost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        # Events first, so that the tracer's own connection is among the recorded events.
        self.events = rec.open(EVENTS_VHOST, "events")
        try:
            channel = self.events.channel()
            self.event_queue = channel.queue_declare("", exclusive=True).method.queue
            for key in EVENT_KEYS:
                channel.queue_bind(self.event_queue, EVENT_EXCHANGE, key)
            channel.basic_consume(self.event_queue, self._on_event, auto_ack=True)
            self.tracer = rec.open(self.vhost, "tracer")
        except BaseException:
            self.events.close()
            raise
        channel = self.tracer.channel()
        self.trace_queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self.trace_queue, "amq.rabbitmq.trace", "#")
        channel.basic_consume(self.trace_queue, self._on_trace, auto_ack=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rec-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.tracer.process_data_events(time_limit=POLL_S)
                self.events.process_data_events(time_limit=POLL_S)
        except BaseException as exc:  # handed to the scenario's thread by take()
            self.error = exc

    def stop(self) -> None:
        """End the thread, then close both connections (from this thread: it owns them now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for connection in (self.tracer, self.events):
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # best effort: deleting the vhost closes the tracer anyway
                pass

    def _on_trace(self, _ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        if method.routing_key == f"deliver.{self.trace_queue}":
            self.own_trace_left_out += 1  # our own trace queue (RabbitMQ sends none)
            return
        message = {
            "routing_key": method.routing_key,
            "headers": encode(props.headers),
            "body": base64.b64encode(body).decode("ascii"),
        }
        with self.lock:
            self.arrived.append(("trace", message))
            self.all_trace.append(
                {"routing_key": method.routing_key, "headers": props.headers, "body": body}
            )

    def _on_event(self, _ch: BlockingChannel, method: Any, props: Any, _body: bytes) -> None:
        headers = props.headers or {}
        vhost = _text(headers.get("vhost", ""))
        pid = _text(headers.get("pid", ""))
        if vhost == self.vhost:
            if method.routing_key in ("connection.created", "channel.created"):
                self._pids.add(pid)
        elif vhost or pid not in self._pids:
            self.events_left_out += 1
            return
        message = {"routing_key": method.routing_key, "headers": encode(props.headers)}
        with self.lock:
            self.arrived.append(("event", message))
            self.events_seen.append((method.routing_key, headers))

    def take(self) -> tuple[list[Json], list[Json]]:
        """What arrived since the last call: (trace messages, events with their place).

        An event's "after" is how many of the returned trace messages came before it.
        """
        if self.error is not None:
            raise self.error
        with self.lock:
            arrived, self.arrived = self.arrived, []
        trace: list[Json] = []
        events: list[Json] = []
        for kind, message in arrived:
            if kind == "trace":
                trace.append(message)
            else:
                events.append({**message, "after": len(trace)})
        return trace, events


class Recording:
    """One scenario on one broker: its vhost, connections, listener and the file."""

    prefix = PREFIX  # what the diagram of this scenario draws (the tests replay with it)

    def __init__(self, broker: Broker, scenario: str, version: str):
        self.scenario = scenario
        self.version = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        self.vhost = f"record-{scenario}"
        self.api: ManagementClient = broker.management
        self.root_broker = broker
        self.broker = dataclasses.replace(broker, vhost=self.vhost)
        self.connections: list[BlockingConnection] = []
        self.steps: list[Json] = []
        self.readings: list[Json] = []
        self.expected: Json = {}
        self.listener: Listener  # set by _start_listening()
        self._probe: BlockingChannel | None = None
        self._probe_connection: BlockingConnection | None = None

    # connections

    def open(self, vhost: str, role: str) -> BlockingConnection:
        """A named connection (`rec-<scenario>-<role>`) to `vhost`, not in `connections`."""
        params = dataclasses.replace(self.root_broker, vhost=vhost).connection_parameters(
            client_properties={"connection_name": f"rec-{self.scenario}-{role}"},
            connection_attempts=1,
            socket_timeout=5,
            stack_timeout=10,
            blocked_connection_timeout=10,
            heartbeat=10,
        )
        return pika.BlockingConnection(params)

    def connect(self, role: str) -> BlockingConnection:
        """A named connection (`rec-<scenario>-<role>`) to the scenario's vhost."""
        connection = self.open(self.vhost, role)
        self.connections.append(connection)
        return connection

    def close(self, connection: BlockingConnection) -> None:
        if connection.is_open:
            connection.close()

    @property
    def trace_queue(self) -> str:
        return self.listener.trace_queue

    @property
    def all_trace(self) -> list[Json]:
        """Every trace message so far (headers decoded, body bytes), for the expectations."""
        with self.listener.lock:
            return list(self.listener.all_trace)

    def _start_listening(self) -> None:
        self.api.set_tracing(self.vhost, True)
        self.listener = Listener(self)
        self.listener.start()
        # The passive declares' connection, opened now so that the readings do not show
        # it appearing: every snapshot lists it, like the tracer's.
        self._probe_connection = self.connect("probe")

    def pump(self, seconds: float) -> None:
        """Let `seconds` pass while the listener takes what arrives."""
        time.sleep(seconds)
        if self.listener.error is not None:
            raise self.listener.error

    def queues_created(self, since: int) -> list[str]:
        """The queues the client events said were declared, after the first `since` events."""
        with self.listener.lock:
            seen = self.listener.events_seen[since:]
        return [_text(h.get("name")) for k, h in seen if k == "queue.created"]

    def events_so_far(self) -> int:
        with self.listener.lock:
            return len(self.listener.events_seen)

    def wait_for_events(
        self, key: str, n: int, since: int, timeout: float = PUMP_TIMEOUT_S
    ) -> list[Json]:
        """The headers of the first `n` client events `key` after the first `since` events,
        once they came (a program's consumer is subscribed when its consumer.created is)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.listener.lock:
                found = [h for k, h in self.listener.events_seen[since:] if k == key]
            if len(found) >= n:
                return found[:n]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {n} {key} events after {timeout} s")
            self.pump(0.05)

    # snapshots

    def snapshot(self) -> Json:
        """The API's view of the vhost, as the API returns it (minus statistics)."""
        vhost = self.vhost

        def guarded(read: Callable[[], Any]) -> Any:
            try:
                return slim(read())
            except ManagementError as exc:
                return {"error_status": exc.status}

        return {
            "exchanges": slim(self.api.exchanges(vhost)),
            "queue_totals": slim(self.api.queue_totals(vhost)),
            "bindings": slim(self.api.bindings(vhost)),
            "consumers": guarded(lambda: self.api.consumers(vhost)),
            "connections": guarded(
                lambda: [c for c in self.api.connections() if c.get("vhost") == vhost]
            ),
        }

    def step(self, name: str, readings: bool = False) -> None:
        """End a step: (readings,) wait, then record the API, the step's trace messages and
        the client events among them."""
        if readings:
            self._take_readings()
        self.pump(STEP_WAIT_S)
        api = self.snapshot()
        trace, events = self.listener.take()
        self.steps.append({"name": name, "api": api, "trace": trace, "events": events})

    def _passive(self, queue: str) -> tuple[int, int] | int:
        """(messages, consumers) from a passive declare, or the reply code that refused it."""
        if self._probe is None or not self._probe.is_open:
            if self._probe_connection is None or not self._probe_connection.is_open:
                self._probe_connection = self.connect("probe")
            self._probe = self._probe_connection.channel()
        try:
            ok = self._probe.queue_declare(queue, passive=True).method
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._probe = None
            return exc.reply_code
        return ok.message_count, ok.consumer_count

    def exact(self, names: list[str]) -> tuple[Json, Json]:
        """Passive-declare counts per queue, and the reply codes of the refused ones."""
        counts: Json = {}
        refused: Json = {}
        for name in names:
            if name == self.trace_queue:
                continue
            answer = self._passive(name)
            if isinstance(answer, int):
                refused[name] = answer
            else:
                counts[name] = list(answer)
        return counts, refused

    def _take_readings(self) -> None:
        """30 polls of the API and of passive declares, 0.1 s apart, right after an action.

        A part of a reading's "api" equal to the previous reading's is written as SAME
        (`tests/unit/recorded.py` puts it back), which keeps the files small.
        """
        t0 = time.monotonic()
        previous: Json = {}
        for i in range(READINGS):
            wait = t0 + i * READING_EVERY_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            at = time.monotonic() - t0
            api = self.snapshot()
            counts, _ = self.exact([q["name"] for q in api["queue_totals"]])
            written = {k: SAME if previous.get(k) == v else v for k, v in api.items()}
            self.readings.append({"at": round(at, 3), "api": written, "exact": counts})
            previous = api

    def expect(
        self,
        published: dict[str, int],
        routed: dict[str, int],
        unroutable: dict[str, int],
        delivered: dict[str, int],
        missing_queues: tuple[str, ...] = (),
        approximate: dict[str, dict[str, tuple[int, int]]] | None = None,
    ) -> None:
        """Write down what the scenario did; fail if the trace messages say otherwise.

        `missing_queues` are names published to that no queue has: the firehose lists them
        in `routed_queues` all the same (a default-exchange publish), so they count here as
        unroutable, as they are.

        `approximate` is for what a program does on a clock (Celery's worker heartbeats):
        {"published": {"celeryev": (lo, hi)}, ...}. The trace's count must lie in the range;
        the count is then written down as expected, and the ranges under "approximate".
        """
        self.pump(0.5)  # the last trace messages
        self._late_to_last_step()
        names = [q["name"] for q in self.api.queue_totals(self.vhost)]
        counts, refused = self.exact(names)
        seen = trace_counts(self.all_trace, set(missing_queues))
        said = {
            "published": dict(published),
            "routed": dict(routed),
            "unroutable": dict(unroutable),
            "delivered": dict(delivered),
        }
        problems = []
        for what, ranges in (approximate or {}).items():
            for key, (lo, hi) in ranges.items():
                n = seen[what].get(key, 0)
                if key in said[what] or not lo <= n <= hi:
                    problems.append(f"{what}[{key!r}]: the scenario says {lo}-{hi}, trace {n}")
                said[what][key] = n
        problems += [
            f"{what}: the scenario says {said[what]}, the trace says {seen[what]}"
            for what in ("published", "routed", "unroutable", "delivered")
            if _nonzero(said[what]) != _nonzero(seen[what])
        ]
        self.expected = {
            "ready": {name: n for name, (n, _c) in counts.items()},
            "passive_refused": refused,
            **said,
            "missing_queues": list(missing_queues),
        }
        if approximate:
            self.expected["approximate"] = {
                what: {key: list(r) for key, r in ranges.items()}
                for what, ranges in approximate.items()
            }
        if problems:
            raise AssertionError(f"{self.scenario}: " + "; ".join(problems))

    def _late_to_last_step(self) -> None:
        """What arrived after the last step's snapshot belongs to that step."""
        trace, events = self.listener.take()
        last = self.steps[-1]
        for event in events:
            event["after"] += len(last["trace"])
        last["trace"].extend(trace)
        last["events"].extend(events)

    def document(self, version: str) -> Json:
        return {
            "scenario": self.scenario,
            "rabbitmq_version": version,
            "vhost": self.vhost,
            "prefix": self.prefix,
            "trace_queue": self.trace_queue,
            "own_trace_left_out": self.listener.own_trace_left_out,
            "event_queue": self.listener.event_queue,
            "events_vhost": EVENTS_VHOST,
            "event_keys": list(EVENT_KEYS),
            "steps": self.steps,
            "readings": self.readings,
            "expected": self.expected,
        }


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def trace_counts(messages: list[Json], missing: set[str]) -> dict[str, dict[str, int]]:
    """What the firehose says happened: publishes, routes, unroutables, deliveries."""
    published: Counter[str] = Counter()
    routed: Counter[str] = Counter()
    unroutable: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    for m in messages:
        kind, _, name = m["routing_key"].partition(".")
        if kind == "publish":
            published[name] += 1
            queues = [_text(q) for q in (m["headers"] or {}).get("routed_queues", [])]
            queues = [q for q in queues if q not in missing]
            for q in queues:
                routed[f"{name}|{q}"] += 1
            if not queues:
                unroutable[name] += 1
        elif kind == "deliver":
            delivered[name] += 1
    return {
        "published": dict(published),
        "routed": dict(routed),
        "unroutable": dict(unroutable),
        "delivered": dict(delivered),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def recording(broker: Broker, scenario: str, version: str) -> Iterator[Recording]:
    """A fresh vhost with tracing on; afterwards tracing off and the vhost deleted."""
    rec = Recording(broker, scenario, version)
    api = rec.api
    api.delete_vhost(rec.vhost)  # a leftover of an interrupted run
    api.create_vhost(rec.vhost, description="scripts/record_flow_cases.py")
    try:
        api.set_permissions(rec.vhost, broker.username)
        rec._start_listening()
        yield rec
    finally:
        listener = getattr(rec, "listener", None)
        if listener is not None:
            listener.stop()
        for connection in reversed(rec.connections):
            try:
                rec.close(connection)
            except Exception:  # best effort: deleting the vhost closes them anyway
                pass
        try:
            api.set_tracing(rec.vhost, False)
            api.delete_vhost(rec.vhost)
        except ManagementError as exc:  # the next run deletes it first
            print(f"could not delete vhost {rec.vhost}: {exc}", file=sys.stderr)


def publish(
    channel: BlockingChannel,
    exchange: str,
    key: str,
    body: str,
    headers: Json | None = None,
    **props: Any,
) -> None:
    channel.basic_publish(
        exchange, key, body.encode(), pika.BasicProperties(headers=headers, **props)
    )


def pump_until(
    done: Callable[[], bool], *connections: BlockingConnection, timeout: float = PUMP_TIMEOUT_S
) -> None:
    """Drive the connections' callbacks until `done()`; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting after {timeout} s")
        for connection in connections:
            connection.process_data_events(time_limit=0.02)


# -- scenarios --------------------------------------------------------------------------------


def direct(rec: Recording) -> None:
    """A direct exchange routing by key; an unroutable key; the default exchange."""
    ch = rec.connect("publisher").channel()
    ch.exchange_declare("rec.direct", "direct", durable=True)
    for severity in ("info", "error"):
        ch.queue_declare(f"rec.{severity}", durable=True)
        ch.queue_bind(f"rec.{severity}", "rec.direct", severity)
    rec.step("declare")
    publish(ch, "rec.direct", "info", "disk at 40%")
    publish(ch, "rec.direct", "error", "disk full")
    publish(ch, "rec.direct", "info", "disk at 41%")
    publish(ch, "rec.direct", "debug", "nobody listens")
    publish(ch, "", "rec.info", "straight to the queue")
    publish(ch, "", "rec.nope", "no such queue")
    rec.step("publish", readings=True)
    rec.expect(
        published={"rec.direct": 4, "": 2},
        routed={"rec.direct|rec.info": 2, "rec.direct|rec.error": 1, "|rec.info": 1},
        unroutable={"rec.direct": 1, "": 1},
        delivered={},
        missing_queues=("rec.nope",),
    )


def exchanges(rec: Recording) -> None:
    """Fanout, topic, headers, an exchange-to-exchange binding and an alternate exchange."""
    ch = rec.connect("publisher").channel()
    ch.exchange_declare("rec.fanout", "fanout", durable=True)
    for n in (1, 2, 3):
        ch.queue_declare(f"rec.f{n}", durable=True)
        ch.queue_bind(f"rec.f{n}", "rec.fanout")
    ch.exchange_declare("rec.topic", "topic", durable=True)
    ch.queue_declare("rec.errors", durable=True)
    ch.queue_bind("rec.errors", "rec.topic", "*.error")
    ch.queue_declare("rec.all", durable=True)
    ch.queue_bind("rec.all", "rec.topic", "#")
    ch.exchange_declare("rec.headers", "headers", durable=True)
    ch.queue_declare("rec.pdf", durable=True)
    ch.queue_bind("rec.pdf", "rec.headers", arguments={"x-match": "all", "format": "pdf"})
    ch.exchange_declare("rec.upstream", "direct", durable=True)
    ch.exchange_bind("rec.topic", "rec.upstream", "app.error")
    ch.exchange_declare("rec.ae", "fanout", durable=True)
    ch.queue_declare("rec.unrouted", durable=True)
    ch.queue_bind("rec.unrouted", "rec.ae")
    ch.exchange_declare(
        "rec.main", "direct", durable=True, arguments={"alternate-exchange": "rec.ae"}
    )
    ch.queue_declare("rec.orders", durable=True)
    ch.queue_bind("rec.orders", "rec.main", "order")
    rec.step("declare")
    publish(ch, "rec.fanout", "", "to everyone")
    publish(ch, "rec.topic", "app.error", "an error")
    publish(ch, "rec.topic", "app.info", "some info")
    rec.step("fanout_topic")
    # The matching message carries every field-table type, so the trace headers hold them.
    publish(ch, "rec.headers", "", "a report", headers=RICH_HEADERS)
    publish(ch, "rec.headers", "", "an archive", headers={"format": "zip"})
    publish(ch, "rec.upstream", "app.error", "via the upstream exchange")
    publish(ch, "rec.upstream", "app.info", "upstream has no such binding")
    publish(ch, "rec.main", "order", "an order")
    publish(ch, "rec.main", "refund", "caught by the alternate exchange")
    rec.step("headers_e2e_alternate", readings=True)
    rec.expect(
        published={
            "rec.fanout": 1,
            "rec.topic": 2,
            "rec.headers": 2,
            "rec.upstream": 2,
            "rec.main": 2,
        },
        routed={
            "rec.fanout|rec.f1": 1,
            "rec.fanout|rec.f2": 1,
            "rec.fanout|rec.f3": 1,
            "rec.topic|rec.errors": 1,
            "rec.topic|rec.all": 2,
            "rec.headers|rec.pdf": 1,
            "rec.upstream|rec.errors": 1,
            "rec.upstream|rec.all": 1,
            "rec.main|rec.orders": 1,
            "rec.main|rec.unrouted": 1,
        },
        unroutable={"rec.headers": 1, "rec.upstream": 1},
        delivered={},
    )


@dataclasses.dataclass
class Worker:
    """A consumer on its own connection whose deliveries wait in `pending` to be settled."""

    connection: BlockingConnection
    channel: BlockingChannel
    pending: list[tuple[Any, bytes]] = dataclasses.field(default_factory=list)

    def on_message(self, _ch: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        self.pending.append((method, body))


def work_queue(rec: Recording) -> None:
    """Two competing consumers with prefetch 1 and manual acks, a nack, a basic_get."""
    ch = rec.connect("publisher").channel()
    ch.queue_declare("rec.tasks", durable=True)
    for n in range(10):
        publish(ch, "", "rec.tasks", f"task {n}", delivery_mode=2)
    rec.step("publish")
    workers = []
    for n in (1, 2):
        connection = rec.connect(f"worker-{n}")
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        worker = Worker(connection, channel)
        channel.basic_consume("rec.tasks", worker.on_message, consumer_tag=f"rec-worker-{n}")
        workers.append(worker)
    connections = [w.connection for w in workers]
    pump_until(lambda: all(w.pending for w in workers), *connections)
    rec.step("consumers_attached")  # each worker holds one unacked task
    settled = 0
    nacked = False
    deadline = time.monotonic() + PUMP_TIMEOUT_S
    while settled < 10:
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not get all ten tasks")
        for w in workers:
            while w.pending:
                method, body = w.pending.pop(0)
                if body == b"task 3" and not nacked:
                    w.channel.basic_nack(method.delivery_tag, requeue=True)
                    nacked = True
                else:
                    w.channel.basic_ack(method.delivery_tag)
                    settled += 1
            w.connection.process_data_events(time_limit=0.02)
    rec.step("work")
    for w in workers:
        rec.close(w.connection)
    publish(ch, "", "rec.tasks", "task 10", delivery_mode=2)
    method, _props, _body = ch.basic_get("rec.tasks")
    assert method is not None, "basic_get found no message"
    ch.basic_ack(method.delivery_tag)
    rec.step("basic_get", readings=True)
    rec.expect(
        published={"": 11},
        routed={"|rec.tasks": 11},
        unroutable={},
        delivered={"rec.tasks": 12},  # 10 tasks + task 3 again + the basic_get
    )


def dead_letter(rec: Recording) -> None:
    """Two messages rejected without requeue go to the dead-letter exchange's queue."""
    ch = rec.connect("worker").channel()
    ch.exchange_declare("rec.dlx", "fanout", durable=True)
    ch.queue_declare("rec.dead", durable=True)
    ch.queue_bind("rec.dead", "rec.dlx")
    ch.queue_declare("rec.work", durable=True, arguments={"x-dead-letter-exchange": "rec.dlx"})
    rec.step("declare")
    for n in range(4):
        publish(ch, "", "rec.work", f"job {n}")
    rec.step("publish")
    for _ in range(2):
        method, _props, _body = ch.basic_get("rec.work")
        assert method is not None, "basic_get found no message"
        ch.basic_reject(method.delivery_tag, requeue=False)
    method, _props, _body = ch.basic_get("rec.work")
    assert method is not None, "basic_get found no message"
    ch.basic_ack(method.delivery_tag)
    rec.step("reject", readings=True)
    rec.expect(
        published={"": 4},
        routed={"|rec.work": 4},
        unroutable={},
        delivered={"rec.work": 3},
    )


def rpc(rec: Recording) -> None:
    """A server on rec.rpc; calls with a server-named reply queue, then with direct reply-to."""
    server_connection = rec.connect("server")
    server = server_connection.channel()
    server.queue_declare("rec.rpc", durable=True)
    server.basic_qos(prefetch_count=1)
    reply_tos: list[str] = []

    def on_request(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        reply_tos.append(props.reply_to)
        ch.basic_publish(
            "",
            props.reply_to,
            b"re: " + body,
            pika.BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(method.delivery_tag)

    server.basic_consume("rec.rpc", on_request, consumer_tag="rec-rpc-server")
    client_connection = rec.connect("client")
    client = client_connection.channel()
    reply_queue = client.queue_declare("", exclusive=True).method.queue
    replies: list[bytes] = []

    def on_reply(_ch: BlockingChannel, _method: Any, _props: Any, body: bytes) -> None:
        replies.append(body)

    client.basic_consume(reply_queue, on_reply, auto_ack=True, consumer_tag="rec-rpc-replies")
    for n in range(3):
        publish(client, "", "rec.rpc", f"call {n}", reply_to=reply_queue, correlation_id=f"c{n}")
    pump_until(lambda: len(replies) == 3, server_connection, client_connection)
    rec.step("reply_queue")
    direct_client = client_connection.channel()
    direct_replies: list[bytes] = []

    def on_direct(_ch: BlockingChannel, _method: Any, _props: Any, body: bytes) -> None:
        direct_replies.append(body)

    direct_client.basic_consume(
        "amq.rabbitmq.reply-to", on_direct, auto_ack=True, consumer_tag="rec-rpc-direct"
    )
    for n in range(3):
        publish(
            direct_client,
            "",
            "rec.rpc",
            f"direct call {n}",
            reply_to="amq.rabbitmq.reply-to",
            correlation_id=f"d{n}",
        )
    pump_until(lambda: len(direct_replies) == 3, server_connection, client_connection)
    rec.step("direct_reply_to", readings=True)
    direct_address = reply_tos[-1]  # amq.rabbitmq.reply-to.<encoded channel>
    assert set(reply_tos[3:]) == {direct_address}, reply_tos
    routed = {"|rec.rpc": 6, f"|{reply_queue}": 3}
    delivered = {"rec.rpc": 6, reply_queue: 3}
    unroutable = {}
    if rec.version >= (4, 2):
        # RabbitMQ 4.2 made direct reply-to a (volatile) queue: the firehose shows the three
        # replies routed to the address and delivered from it.
        routed[f"|{direct_address}"] = 3
        delivered[direct_address] = 3
    else:
        # Before, a direct reply went straight to the client's channel: no queue routed it
        # (routed_queues is empty), and no deliver.* trace message follows.
        unroutable[""] = 3
    rec.expect(published={"": 12}, routed=routed, unroutable=unroutable, delivered=delivered)
    rec.expected["reply_queue"] = reply_queue
    rec.expected["direct_reply_to"] = direct_address


def queue_types(rec: Recording) -> None:
    """A quorum queue and a stream: 5 in each, 2 consumed from each."""
    ch = rec.connect("publisher").channel()
    ch.queue_declare("rec.q", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare("rec.s", durable=True, arguments={"x-queue-type": "stream"})
    ch.confirm_delivery()
    for n in range(5):
        publish(ch, "", "rec.q", f"q{n}", delivery_mode=2)
        publish(ch, "", "rec.s", f"s{n}", delivery_mode=2)
    rec.step("publish")
    connection = rec.connect("consumer")
    taken: dict[str, Worker] = {}
    for queue, args in (("rec.q", None), ("rec.s", {"x-stream-offset": "first"})):
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2)
        worker = Worker(connection, channel)
        channel.basic_consume(
            queue, worker.on_message, arguments=args, consumer_tag=f"rec-{queue}-reader"
        )
        taken[queue] = worker
    pump_until(lambda: all(len(w.pending) == 2 for w in taken.values()), connection)
    rec.step("consumers_attached")
    for queue, worker in taken.items():
        worker.channel.basic_cancel(f"rec-{queue}-reader")
        for method, _body in worker.pending:
            worker.channel.basic_ack(method.delivery_tag)
    rec.step("acked", readings=True)
    rec.expect(
        published={"": 10},
        routed={"|rec.q": 5, "|rec.s": 5},
        unroutable={},
        delivered={"rec.q": 2, "rec.s": 2},
    )


def burst(rec: Recording) -> None:
    """500 messages from one channel; an auto-ack consumer takes 200 of them.

    An auto-ack consumer gets everything the queue holds at once (prefetch does not limit it),
    so it is attached between the first 200 and the other 300 to take exactly 200.
    """
    ch = rec.connect("publisher").channel()
    ch.queue_declare("rec.burst", durable=True)
    for n in range(200):
        publish(ch, "", "rec.burst", f"m{n}")
    rec.step("publish_200")
    connection = rec.connect("consumer")
    consumer = connection.channel()
    got: list[bytes] = []

    def on_message(_ch: BlockingChannel, _method: Any, _props: Any, body: bytes) -> None:
        got.append(body)

    consumer.basic_consume("rec.burst", on_message, auto_ack=True, consumer_tag="rec-burst")
    pump_until(lambda: len(got) >= 200, connection)
    rec.step("consumed_200")
    left = consumer.basic_cancel("rec-burst")
    assert len(got) == 200 and not left, f"the consumer got {len(got)} + {len(left)}"
    for n in range(200, 500):
        publish(ch, "", "rec.burst", f"m{n}")
    rec.step("publish_300", readings=True)
    rec.expect(
        published={"": 500},
        routed={"|rec.burst": 500},
        unroutable={},
        delivered={"rec.burst": 200},
    )


def exclusive_other(rec: Recording) -> None:
    """Another connection's exclusive queue: the API lists it, a passive declare gets 405."""
    owner = rec.connect("owner").channel()
    owner.queue_declare("rec.excl", exclusive=True)
    publish(owner, "", "rec.excl", "mine 1")
    publish(owner, "", "rec.excl", "mine 2")
    ch = rec.connect("other").channel()
    ch.queue_declare("rec.shared", durable=True)
    publish(ch, "", "rec.shared", "for anyone")
    rec.step("declare")
    try:
        ch.queue_declare("rec.excl", passive=True)
        raise AssertionError("a passive declare of another connection's exclusive queue passed")
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 405, exc
    rec.step("probe", readings=True)
    rec.expect(
        published={"": 3},
        routed={"|rec.excl": 2, "|rec.shared": 1},
        unroutable={},
        delivered={},
    )


# -- programs nobody here wrote (scripts/record_flow_programs.py) ---------------------------


def celery(rec: Recording) -> None:
    """A Celery worker (-E) runs 20 tasks for a client: one retries, three are a group;
    `celery inspect ping`; the worker stops (warm shutdown, SIGTERM).

    What Celery does on a clock is checked as a range (`approximate`): the worker's
    heartbeats (`worker.heartbeat` every 2 s, to its own gossip queue) and how many messages
    its task events travel in (it buffers them and sends lists, routing key `task.multi`,
    which no queue is bound to). The task events inside those messages are counted exactly.
    """
    rec.prefix = ""  # Celery names its own things: draw everything
    with Programs(rec.broker.amqp_url) as programs:
        programs.write("rec_tasks.py", CELERY_TASKS)
        programs.write("rec_client.py", CELERY_CLIENT)
        worker = programs.start(
            "-m", "celery", "-A", "rec_tasks", "worker", "-E", "-n", CELERY_WORKER_NAME,
            "-c", "2", "-l", "INFO",
        )  # fmt: skip
        programs.wait_for_output(worker, " ready.")
        ready = time.monotonic()
        rec.step("worker_ready")
        mark = rec.events_so_far()
        assert "20 tasks done" in programs.run("rec_client.py")
        rec.step("tasks")
        (results,) = [q for q in rec.queues_created(mark) if UUID.match(q)]
        mark = rec.events_so_far()
        assert "pong" in programs.run("-m", "celery", "-A", "rec_tasks", "inspect", "ping")
        rec.step("inspect_ping")
        (replies,) = [q for q in rec.queues_created(mark) if q.endswith(".reply.celery.pidbox")]
        lived = time.monotonic() - ready
        code = programs.stop(worker, signal.SIGTERM, group=False)
        log = programs.log(worker)
        rec.step("worker_stopped", readings=True)
    assert code == 0, f"the worker ended with {code}:\n{log}"
    (gossip,) = [q for q in rec.queues_created(0) if q.startswith("celeryev.")]
    pidbox = f"{CELERY_WORKER_NAME}.celery.pidbox"
    # The events inside the celeryev messages, exactly: every task was received and started
    # (the retried one twice), 20 succeeded, one was retried; the worker came and went.
    events = celery_events(rec.all_trace)
    heartbeats = events.pop("worker-heartbeat", 0)
    told = {
        "task-received": 21,
        "task-started": 21,
        "task-succeeded": 20,
        "task-retried": 1,
        "worker-online": 1,
        "worker-offline": 1,
    }
    assert events == told, f"celeryev carried {events}, not {told}"
    low, high = int(lived / 2) - 2, int(lived / 2) + 2  # one each 2 s while it ran
    assert low <= heartbeats <= high, f"{heartbeats} heartbeats in {lived:.1f} s"
    # worker-online and worker-offline reach the gossip queue, or come before it is bound
    # and after it is gone (seen both ways): so 0-2 of them, and the heartbeats.
    gossiped = (heartbeats, heartbeats + 2)
    rec.expect(
        published={"": 42, "celery.pidbox": 2, "reply.celery.pidbox": 1},
        routed={
            "|celery": 21,  # 20 tasks and the retried one again, through the default exchange
            f"|{results}": 21,  # the rpc:// results: 20, and the retry's RETRY state
            f"celery.pidbox|{pidbox}": 1,  # the ping
            f"reply.celery.pidbox|{replies}": 1,  # its pong
        },
        unroutable={"celery.pidbox": 1},  # the worker's mingle "hello": no other worker
        delivered={"celery": 21, results: 21, pidbox: 1, replies: 1},
        approximate={
            # 63 task events in 1-63 lists (task.multi, bound nowhere), the worker's own
            "published": {"celeryev": (heartbeats + 2 + 1, heartbeats + 2 + 63)},
            "routed": {f"celeryev|{gossip}": gossiped},
            "unroutable": {"celeryev": (1, 63 + 2)},
            "delivered": {gossip: gossiped},
        },
    )
    rec.expected["celery_events"] = {**told, "worker-heartbeat": heartbeats}
    rec.expected["worker_ready_s"] = round(lived, 1)


def kombu(rec: Recording) -> None:
    """A kombu Producer publishes 6 messages to a topic exchange with two queues (`*.error`
    and `#`), declaring them as it goes; a kombu Consumer on both takes all 9 and acks."""
    rec.prefix = "kombu."
    with Programs(rec.broker.amqp_url) as programs:
        programs.write("kombu_common.py", KOMBU_COMMON)
        programs.write("kombu_producer.py", KOMBU_PRODUCER)
        programs.write("kombu_consumer.py", KOMBU_CONSUMER)
        assert "published 6" in programs.run("kombu_producer.py")
        rec.step("produce")
        assert "consumed 9" in programs.run("kombu_consumer.py")
        rec.step("consume", readings=True)
    rec.expect(
        published={"kombu.logs": 6},
        routed={"kombu.logs|kombu.errors": 3, "kombu.logs|kombu.all": 6},
        unroutable={},
        delivered={"kombu.errors": 3, "kombu.all": 6},
    )


def tutorials(rec: Recording) -> None:
    """RabbitMQ's official Python tutorials 1-6, unmodified but for where they connect:
    each consumer started in the background and subscribed (its consumer.created event
    came) before its producer runs; every program stopped with Ctrl+C (SIGINT) at the end.
    Needs their directory: --tutorials PATH (rabbitmq-tutorials/python)."""
    rec.prefix = ""
    if TUTORIALS_DIR is None:
        raise SystemExit("tutorials: pass --tutorials PATH/TO/rabbitmq-tutorials/python")
    with Programs(rec.broker.amqp_url) as programs:
        b = rec.broker
        copy_tutorials(TUTORIALS_DIR, programs.dir, b.host, b.port, b.vhost, b.username, b.password)

        def consumers(*argvs: tuple[str, ...]) -> list[str]:
            """Start them; the queues they consume, once every one is subscribed."""
            mark = rec.events_so_far()
            for argv in argvs:
                programs.start(*argv)
            found = rec.wait_for_events("consumer.created", len(argvs), mark, timeout=30)
            return [_text(h["queue"]) for h in found]

        consumers(("receive.py",))
        for _ in range(3):
            programs.run("send.py")
        rec.step("hello_world")
        consumers(("worker.py",), ("worker.py",))
        for n in range(4):
            programs.run("new_task.py", f"task {n}")  # no dots: the workers sleep 0 s
        rec.step("work_queues")
        logs = consumers(("receive_logs.py",), ("receive_logs.py",))
        for n in range(3):
            programs.run("emit_log.py", f"log {n}")
        rec.step("publish_subscribe")
        # one program at a time, so that the queues come in the order of the arguments
        errors = consumers(("receive_logs_direct.py", "error"))[0]
        infos = consumers(("receive_logs_direct.py", "info", "warning"))[0]
        for severity in ("error", "info", "debug"):  # debug: nobody listens
            programs.run("emit_log_direct.py", severity, f"a {severity} message")
        rec.step("routing")
        everything = consumers(("receive_logs_topic.py", "#"))[0]
        kernel = consumers(("receive_logs_topic.py", "kern.*"))[0]
        for key in ("kern.critical", "anonymous.info"):
            programs.run("emit_log_topic.py", key, "a topic message")
        rec.step("topics")
        consumers(("rpc_server.py",))
        mark = rec.events_so_far()
        for _ in range(3):  # a connection and a server-named reply queue each
            assert "Got 832040" in programs.run("rpc_client.py")
        rec.step("rpc")
        reply_queues = rec.queues_created(mark)
        assert len(reply_queues) == 3, reply_queues
        for process, _log in programs.background:
            programs.stop(process)  # Ctrl+C
        rec.step("stopped", readings=True)
    assert len(set(logs)) == 2, logs
    routed = {
        "|hello": 3,
        "|task_queue": 4,
        **{f"logs|{q}": 3 for q in logs},
        f"direct_logs|{errors}": 1,
        f"direct_logs|{infos}": 1,
        f"topic_logs|{everything}": 2,
        f"topic_logs|{kernel}": 1,
        "|rpc_queue": 3,
        **{f"|{q}": 1 for q in reply_queues},
    }
    rec.expect(
        published={"": 13, "logs": 3, "direct_logs": 3, "topic_logs": 2},
        routed=routed,
        unroutable={"direct_logs": 1},
        delivered={k.partition("|")[2]: n for k, n in routed.items()},
    )
    rec.expected["tutorials_sha256"] = tutorials_digest(TUTORIALS_DIR)


def celery_events(messages: list[Json]) -> Counter[str]:
    """The Celery events in the celeryev publishes (one per message, or a list)."""
    found: Counter[str] = Counter()
    for m in messages:
        if m["routing_key"] == "publish.celeryev":
            body = json.loads(m["body"])
            for event in body if isinstance(body, list) else [body]:
                found[event["type"]] += 1
    return found


SCENARIOS: dict[str, Callable[[Recording], None]] = {
    f.__name__: f
    for f in (
        direct,
        exchanges,
        work_queue,
        dead_letter,
        rpc,
        queue_types,
        burst,
        exclusive_other,
        celery,
        kombu,
        tutorials,
    )
}


# -- main -------------------------------------------------------------------------------------


def _wait_for(broker: Broker, timeout: float = 60.0) -> None:
    """Until the broker's API and AMQP answer again (after a restart), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            broker.management.overview()
            pika.BlockingConnection(
                broker.connection_parameters(
                    client_properties={"connection_name": "rec-wait"},
                    connection_attempts=1,
                    socket_timeout=3,
                )
            ).close()
            return
        except (pika.exceptions.AMQPError, ManagementError, OSError):
            continue


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise TimeoutError("a scenario took longer than its time limit (SCENARIO_TIMEOUT_S)")


def event_plugin_works(broker: Broker, wait: float = 3.0) -> bool:
    """Whether the event exchange says so when a channel opens (the management API's node
    list lags, and the exchange, durable, outlives a disabled plugin)."""
    connection = pika.BlockingConnection(
        dataclasses.replace(broker, vhost=EVENTS_VHOST).connection_parameters(
            client_properties={"connection_name": "rec-event-probe"},
            connection_attempts=1,
            socket_timeout=5,
        )
    )
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        try:
            channel.queue_bind(queue, EVENT_EXCHANGE, "channel.created")
        except pika.exceptions.ChannelClosedByBroker:  # 404: no event exchange
            return False
        connection.channel()  # an event about it, if the plugin runs
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            method, _props, _body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return True
            connection.process_data_events(time_limit=0.1)
        return False
    finally:
        if connection.is_open:
            connection.close()


def ensure_event_plugin(broker: Broker) -> None:
    """`rabbitmq-plugins enable --online rabbitmq_event_exchange` on the private node, unless
    it runs already (a node this checkout started recently enables it itself)."""
    if event_plugin_works(broker):
        return
    node = broker.node
    if node is None:
        raise SystemExit(f"{EVENT_PLUGIN} is off and this is no private node to turn it on")
    env = node.environment()
    argv = node.runtime.command(
        "rabbitmq-plugins", ["-n", node.name, "enable", "--online", EVENT_PLUGIN], env
    )
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    if done.returncode:
        raise SystemExit(f"rabbitmq-plugins enable {EVENT_PLUGIN} failed:\n{done.stderr}")
    deadline = time.monotonic() + 30
    while not event_plugin_works(broker):
        if time.monotonic() > deadline:
            raise SystemExit(f"{EVENT_PLUGIN} was enabled but does not run after 30 s")
        time.sleep(1)


def record(broker: Broker, scenario: str, version: str) -> Path:
    """Run one scenario in its own vhost and write its file.

    A broker that drops us midway (a notebook restarting the private node, say) gets
    ATTEMPTS tries; a disagreement between the scenario and the trace fails at once.
    """
    signal.signal(signal.SIGALRM, _on_alarm)
    for attempt in range(1, ATTEMPTS + 1):
        signal.alarm(TIME_LIMITS_S.get(scenario, SCENARIO_TIMEOUT_S))
        try:
            with recording(broker, scenario, version) as rec:
                try:
                    SCENARIOS[scenario](rec)
                except AssertionError:
                    # What the broker did, for finding out what the scenario got wrong.
                    failed = Path(tempfile.gettempdir()) / f"{scenario}-failed.json"
                    failed.write_text(json.dumps(rec.document(version), sort_keys=True))
                    print(f"{scenario}: what was recorded is in {failed}", file=sys.stderr)
                    raise
                document = rec.document(version)
            break
        except (
            pika.exceptions.AMQPConnectionError,
            pika.exceptions.AMQPChannelError,
            ManagementError,
            TimeoutError,
            OSError,
        ) as exc:
            if attempt == ATTEMPTS:
                raise
            print(f"{scenario}: attempt {attempt} failed ({exc!r}); again", file=sys.stderr)
        finally:
            signal.alarm(0)
        _wait_for(broker)
    major_minor = ".".join(version.split(".")[:2])
    path = DATA / f"{scenario}-{major_minor}.json"
    DATA.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, sort_keys=True, indent=None, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Record the named scenarios (default: all) on the private node TUTORIAL_RABBITMQ names."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=", ".join(SCENARIOS))
    parser.add_argument(
        "--tutorials",
        type=Path,
        metavar="PATH",
        help="the official tutorials' python/ directory (for the tutorials scenario)",
    )
    args = parser.parse_args(argv)
    global TUTORIALS_DIR
    TUTORIALS_DIR = args.tutorials
    chosen = args.scenarios or list(SCENARIOS)
    if "tutorials" in chosen and (TUTORIALS_DIR is None or not TUTORIALS_DIR.is_dir()):
        parser.error("the tutorials scenario needs --tutorials PATH/TO/rabbitmq-tutorials/python")
    for needed, by in (("celery", "celery"), ("kombu", "kombu")):
        if by in chosen and importlib.util.find_spec(needed) is None:
            parser.error(f"the {by} scenario needs {needed}: .venv/bin/pip install celery")
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    broker = find_broker(start=False, progress=None, private_only=True)
    if broker.host != "127.0.0.1":
        print(f"refusing to record on {broker.host}: only this machine's node", file=sys.stderr)
        return 2
    version = broker.management.rabbitmq_version()
    ensure_event_plugin(broker)
    t0 = time.monotonic()
    for scenario in chosen:
        started = time.monotonic()
        path = record(broker, scenario, version)
        size = path.stat().st_size
        print(f"{path}: {size} bytes in {time.monotonic() - started:.1f} s")
    print(f"RabbitMQ {version}: {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
