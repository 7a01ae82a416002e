"""Record real broker data for the flow diagram's unit tests, which then run with no broker.

The diagram reads two things from RabbitMQ: the management API (exchanges, queues and their
counts, bindings, consumers, connections) and the firehose (`amq.rabbitmq.trace`). Each
scenario here does a small, known thing on a real broker, in a throwaway vhost
`record-<scenario>` with tracing on, and writes what the broker answered, unchanged, to
`tests/unit/data/<scenario>-<major.minor>.json`:

- "steps": after each step (and ~1.5 s), the API snapshot and the raw trace messages
  (routing key, headers table as pika gives it, body) that arrived during the step;
- "readings": right after the last action, 30 polls 0.1 s apart of the API next to
  passive `queue_declare` counts ("exact"; a queue that refuses one, 404/405, is left out),
  which show how long the API's counts lag behind; a part of a reading's API answer equal
  to the previous reading's is written as `{"$same": "previous reading"}`;
- "expected": the queues' own ready counts at the end, and what the scenario did
  (published, routed, unroutable, delivered; "exchange|queue" keys, "" is the default
  exchange), written down here and checked against the recorded trace messages, so a wrong
  expectation fails the recording loudly.

API answers are kept as the API gave them, minus statistics (message_stats, rates,
garbage_collection, backing_queue_status, effective_policy_definition).

Headers are encoded with a small tagged scheme (`{"$bytes": base64}`, `{"$table": {...}}`,
`{"$array": [...]}`, `{"$time": iso}`, `{"$decimal": str}`); bodies are base64.
`tests/unit/recorded.py` decodes them again.

Re-record (overwrites the files) with this checkout's private nodes running:

    TUTORIAL_RABBITMQ=reference .venv/bin/python scripts/record_flow_cases.py [scenario ...]
    TUTORIAL_RABBITMQ=system .venv/bin/python scripts/record_flow_cases.py [scenario ...]

Only plain pika and the management client are used (not the diagram's own modules), so the
data does not depend on the code it is meant to test.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import decimal
import json
import signal
import sys
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "unit" / "data"
PREFIX = "rec."
STEP_WAIT_S = 1.5  # the API lists connections/consumers, trace messages arrive
READINGS = 30
READING_EVERY_S = 0.1
SCENARIO_TIMEOUT_S = 60  # SIGALRM: no scenario may hang the recording
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


class Recording:
    """One scenario on one broker: its vhost, connections, trace consumer and the file."""

    def __init__(self, broker: Broker, scenario: str, version: str):
        self.scenario = scenario
        self.version = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        self.vhost = f"record-{scenario}"
        self.api: ManagementClient = broker.management
        self.broker = dataclasses.replace(broker, vhost=self.vhost)
        self.connections: list[BlockingConnection] = []
        self.steps: list[Json] = []
        self.readings: list[Json] = []
        self.expected: Json = {}
        self.trace: list[Json] = []  # since the last step
        self.all_trace: list[Json] = []
        self.trace_queue = ""
        self.own_trace_left_out = 0
        self._tracer: BlockingConnection  # set by _start_tracing()
        self._probe: BlockingChannel | None = None
        self._probe_connection: BlockingConnection | None = None

    # connections

    def connect(self, role: str) -> BlockingConnection:
        """A named connection (`rec-<scenario>-<role>`) to the scenario's vhost."""
        params = self.broker.connection_parameters(
            client_properties={"connection_name": f"rec-{self.scenario}-{role}"},
            connection_attempts=1,
            socket_timeout=5,
            stack_timeout=10,
            blocked_connection_timeout=10,
            heartbeat=10,
        )
        connection = pika.BlockingConnection(params)
        self.connections.append(connection)
        return connection

    def close(self, connection: BlockingConnection) -> None:
        if connection.is_open:
            connection.close()

    def _start_tracing(self) -> None:
        self.api.set_tracing(self.vhost, True)
        connection = self.connect("tracer")
        channel = connection.channel()
        self.trace_queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self.trace_queue, "amq.rabbitmq.trace", "#")
        channel.basic_consume(self.trace_queue, self._on_trace, auto_ack=True)
        self._tracer = connection
        # The passive declares' connection, opened now so that the readings do not show
        # it appearing: every snapshot lists it, like the tracer's.
        self._probe_connection = self.connect("probe")

    def _on_trace(self, _ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        if method.routing_key == f"deliver.{self.trace_queue}":
            self.own_trace_left_out += 1  # our own trace queue (RabbitMQ sends none)
            return
        message = {
            "routing_key": method.routing_key,
            "headers": encode(props.headers),
            "body": base64.b64encode(body).decode("ascii"),
        }
        self.trace.append(message)
        self.all_trace.append({"routing_key": method.routing_key, "headers": props.headers})

    def pump(self, seconds: float) -> None:
        """Let `seconds` pass while the trace consumer takes what arrives."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._tracer.process_data_events(time_limit=min(left, 0.1))

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
        """End a step: (readings,) wait, then record the API and the step's trace messages."""
        if readings:
            self._take_readings()
        self.pump(STEP_WAIT_S)
        self.steps.append({"name": name, "api": self.snapshot(), "trace": self.trace})
        self.trace = []

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
            self._tracer.process_data_events(time_limit=0)

    def expect(
        self,
        published: dict[str, int],
        routed: dict[str, int],
        unroutable: dict[str, int],
        delivered: dict[str, int],
        missing_queues: tuple[str, ...] = (),
    ) -> None:
        """Write down what the scenario did; fail if the trace messages say otherwise.

        `missing_queues` are names published to that no queue has: the firehose lists them
        in `routed_queues` all the same (a default-exchange publish), so they count here as
        unroutable, as they are.
        """
        self.pump(0.5)  # the last trace messages
        if self.trace:
            self.steps[-1]["trace"].extend(self.trace)
            self.trace = []
        names = [q["name"] for q in self.api.queue_totals(self.vhost)]
        counts, refused = self.exact(names)
        self.expected = {
            "ready": {name: n for name, (n, _c) in counts.items()},
            "passive_refused": refused,
            "published": published,
            "routed": routed,
            "unroutable": unroutable,
            "delivered": delivered,
            "missing_queues": list(missing_queues),
        }
        seen = trace_counts(self.all_trace, set(missing_queues))
        problems = [
            f"{what}: the scenario says {self.expected[what]}, the trace says {seen[what]}"
            for what in ("published", "routed", "unroutable", "delivered")
            if _nonzero(self.expected[what]) != _nonzero(seen[what])
        ]
        if problems:
            raise AssertionError(f"{self.scenario}: " + "; ".join(problems))

    def document(self, version: str) -> Json:
        return {
            "scenario": self.scenario,
            "rabbitmq_version": version,
            "vhost": self.vhost,
            "prefix": PREFIX,
            "trace_queue": self.trace_queue,
            "own_trace_left_out": self.own_trace_left_out,
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
        rec._start_tracing()
        yield rec
    finally:
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


SCENARIOS: dict[str, Callable[[Recording], None]] = {
    f.__name__: f
    for f in (direct, exchanges, work_queue, dead_letter, rpc, queue_types, burst, exclusive_other)
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
    raise TimeoutError(f"a scenario took longer than {SCENARIO_TIMEOUT_S} s")


def record(broker: Broker, scenario: str, version: str) -> Path:
    """Run one scenario in its own vhost and write its file.

    A broker that drops us midway (a notebook restarting the private node, say) gets
    ATTEMPTS tries; a disagreement between the scenario and the trace fails at once.
    """
    signal.signal(signal.SIGALRM, _on_alarm)
    for attempt in range(1, ATTEMPTS + 1):
        signal.alarm(SCENARIO_TIMEOUT_S)
        try:
            with recording(broker, scenario, version) as rec:
                SCENARIOS[scenario](rec)
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
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    broker = find_broker(start=False, progress=None, private_only=True)
    if broker.host != "127.0.0.1":
        print(f"refusing to record on {broker.host}: only this machine's node", file=sys.stderr)
        return 2
    version = broker.management.rabbitmq_version()
    t0 = time.monotonic()
    for scenario in args.scenarios or list(SCENARIOS):
        started = time.monotonic()
        path = record(broker, scenario, version)
        size = path.stat().st_size
        print(f"{path}: {size} bytes in {time.monotonic() - started:.1f} s")
    print(f"RabbitMQ {version}: {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
