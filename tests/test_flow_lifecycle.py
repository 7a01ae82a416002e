"""Client events from the broker's event exchange, through a real Tracer.

A connection that lives for a fraction of a second is never listed by the management API;
the event exchange (`rabbitmq_event_exchange`, which the private node enables) tells the
diagram about it at once. The exchange lives in the vhost "/" only. A diagram of "/" reads
it through its trace queue, so in the broker's order: those tests trace "/" of the shared
node and pick out their own clients by unique names. A diagram of another vhost (a private
`flowdev-...` one here) reads it over a second connection to "/", keeping its own vhost's
events; a user who may not use "/" (a classroom's student) shows the fallback: no client
events, everything else as before.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pytest
from flow_support import connect, private_vhost, settled_counters

from conftest import throwaway_node
from helpers import Broker
from helpers.broker import private_node_broker
from helpers.flow.events import TraceEvent
from helpers.flow.firehose import broker_name
from helpers.flow.lifecycle import EVENT_EXCHANGE, ClientEvent
from helpers.flow.tracer import Tracer
from helpers.widgets import FlowDiagram

P = "flowdev.lifecycle."


@contextmanager
def tracing(broker: Broker, with_clients: bool = True) -> Iterator[tuple[Tracer, list[Any]]]:
    """A started Tracer whose client events and trace events land in one list, in the order
    the tracer handed them over (one reading thread calls both)."""
    log: list[Any] = []
    tracer = Tracer(broker, log.extend, log.extend if with_clients else None).start()
    try:
        yield tracer, log
    finally:
        tracer.stop()


def _unique(what: str) -> str:
    return f"{P}{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    """A private vhost: not the event exchange's, so client events come over a second
    connection to "/"."""
    with private_vhost(broker, "lifecycle") as vb:
        yield vb


@pytest.fixture
def root(broker: Broker) -> Iterator[Broker]:
    """The shared node's "/" (where the event exchange is); no test queue is left there."""
    assert broker.vhost == "/"
    yield broker
    left = [q["name"] for q in broker.management.queues(broker.vhost) if q["name"].startswith(P)]
    assert not left, f"queues left in /: {left}"


@pytest.mark.usefixtures("root")
def test_a_short_lived_client_is_told_in_the_brokers_order(broker):
    name, queue = _unique("conn"), _unique("q")
    with tracing(broker) as (tracer, log):
        assert tracer.lifecycle, "the private node runs rabbitmq_event_exchange"
        started = time.monotonic()
        connection = pika.BlockingConnection(
            broker.connection_parameters(client_properties={"connection_name": name})
        )
        channel = connection.channel()
        channel.queue_declare(queue, exclusive=True)
        channel.basic_qos(prefetch_count=5)
        got: list[bytes] = []
        channel.basic_consume(queue, lambda *a: got.append(a[3]), consumer_tag="manual")
        channel.basic_consume(
            queue, lambda *a: got.append(a[3]), auto_ack=True, consumer_tag="auto"
        )
        channel.basic_publish("", queue, b"hello")
        while not got and time.monotonic() - started < 2:  # delivered before the close
            connection.process_data_events(time_limit=0.01)
        connection.close()
        lived = time.monotonic() - started
        assert tracer.settle()
    assert lived < 1.0, "shorter than the management API's statistics interval"

    created = [e for e in log if isinstance(e, ClientEvent) and e.name == name]
    assert len(created) == 1 and created[0].kind == "connection.created"
    conn = created[0].connection
    assert created[0].protocol == "AMQP 0-9-1"
    mine = [
        e
        for e in log
        if (isinstance(e, ClientEvent) and (e.connection == conn or e.queue == queue))
        or (isinstance(e, TraceEvent) and queue in (e.queue, *e.routed_queues))
    ]
    kinds = [e.kind for e in mine]
    # Client events in the broker's order among themselves, trace events among themselves:
    # the broker emits client events through its event manager, a process apart from the
    # channel that traces, so a publish may come before the consumer.created that preceded
    # it (seen under load).
    client_kinds = [
        e.kind for e in mine if isinstance(e, ClientEvent) and e.kind != "queue.deleted"
    ]
    assert _in_order(client_kinds, TWO_CONSUMERS_CLOSED), " ".join(kinds)
    assert [e.kind for e in mine if isinstance(e, TraceEvent)] == ["publish", "deliver"]
    assert "queue.deleted" in kinds, "the exclusive queue went with its connection"

    number = next(e for e in mine if e.kind == "channel.created").channel
    assert number == 1
    manual, auto = (e for e in mine if e.kind == "consumer.created")
    assert (manual.connection, manual.channel, manual.queue, manual.consumer_tag) == (
        conn,
        number,
        queue,
        "manual",
    )
    assert (manual.prefetch, manual.ack_required) == (5, True)
    assert (auto.consumer_tag, auto.prefetch, auto.ack_required) == ("auto", 5, False)
    for deleted in (e for e in mine if e.kind == "consumer.deleted"):
        assert (deleted.connection, deleted.channel, deleted.queue) == (conn, number, queue)
    publish = next(e for e in mine if e.kind == "publish")
    assert publish.client == (conn, number), "trace and client events name it alike"


# What a client that opens one channel, declares its exclusive queue, starts two consumers on
# it and closes causes, as client events (queue.deleted left out: its place differs by version).
TWO_CONSUMERS_CLOSED = [
    "connection.created",
    "channel.created",
    "queue.created",
    "consumer.created",
    "consumer.created",
    "consumer.deleted",
    "consumer.deleted",
    "channel.closed",
    "connection.closed",
]
TEARDOWN = {"consumer.deleted", "channel.closed", "connection.closed"}


def _in_order(kinds: list[str], expected: list[str]) -> bool:
    """Whether events came as expected, where the teardown events of one close may come in
    any order among themselves: the broker emits them from different processes (the
    connection's, the channel's, the queue's), and a CI run saw connection.closed before
    channel.closed."""
    def split(ks: list[str]) -> tuple[list[str], list[str]]:
        first = next((i for i, k in enumerate(ks) if k in TEARDOWN), len(ks))
        return ks[:first], sorted(ks[first:])

    return split(kinds) == split(expected)


@pytest.mark.usefixtures("root")
def test_other_vhosts_clients_are_not_seen(broker):
    other_name, other_queue, here_name = _unique("there"), _unique("there-q"), _unique("here")
    with private_vhost(broker, "lifecycle") as vb, tracing(broker) as (tracer, log):
        there = pika.BlockingConnection(
            vb.connection_parameters(client_properties={"connection_name": other_name})
        )
        there_conn = broker_name(there)
        channel = there.channel()
        channel.queue_declare(other_queue, exclusive=True)
        channel.basic_consume(other_queue, lambda *_a: None, consumer_tag="there")
        there.close()
        # A client in "/" afterwards: once it is seen, the other one's events were handled.
        here = pika.BlockingConnection(
            broker.connection_parameters(client_properties={"connection_name": here_name})
        )
        here_conn = broker_name(here)
        here.channel()
        here.close()
        assert tracer.settle()
    clients = [e for e in log if isinstance(e, ClientEvent)]
    assert _in_order(
        [e.kind for e in clients if e.connection == here_conn],
        ["connection.created", "channel.created", "channel.closed", "connection.closed"],
    )
    assert any(e.name == here_name for e in clients)
    assert not [e for e in clients if e.connection == there_conn or e.name == other_name]
    assert not [e for e in clients if e.queue == other_queue or e.consumer_tag == "there"]


def _owner(b: Broker, queue: str) -> str:
    """The name of the connection that owns an exclusive queue (the API's statistics list
    it within a second or so)."""
    deadline = time.monotonic() + 10
    while True:
        details = b.management.queue(queue, b.vhost).get("owner_pid_details") or {}
        if "name" in details or time.monotonic() > deadline:
            return details["name"]
        time.sleep(0.2)


@pytest.mark.parametrize("where", ["/", "private vhost"])
@pytest.mark.usefixtures("root")
def test_the_diagrams_own_connections_are_left_out(broker, where, request):
    """The firehose's consumer, and a channel it opens again after a 404 (`queue_counts` of a
    queue that is gone closes its channel), are not the learner's clients; nor, for another
    vhost, its second connection, to "/"."""
    b = broker if where == "/" else request.getfixturevalue("vbroker")
    with tracing(b) as (tracer, log):
        assert tracer.lifecycle
        owner = _owner(b, tracer.queue)
        for _ in range(2):
            assert tracer.queue_counts([_unique("gone")]) == {}
        marker = _unique("marker")
        with pika.BlockingConnection(
            b.connection_parameters(client_properties={"connection_name": marker})
        ):
            pass
        assert tracer.settle()
        second = _owner(broker, tracer.clients_queue) if tracer.clients_queue else ""
    assert bool(second) == (where != "/"), "a queue in / of its own for another vhost"
    clients = [e for e in log if isinstance(e, ClientEvent)]
    assert any(e.name == marker for e in clients), "client events did arrive"
    ours = {owner, second, tracer.queue, tracer.clients_queue} - {""}
    assert not [e for e in clients if e.connection in ours or e.queue in ours]
    # (Other diagrams' firehoses, of tests running beside this one in "/", are clients like
    # any other here: only this tracer's own connections must be missing.)


@pytest.mark.usefixtures("root")
def test_without_on_clients_the_tracer_works_as_before(broker):
    queue = _unique("q")
    with tracing(broker, with_clients=False) as (tracer, log), connect(broker) as connection:
        assert tracer.lifecycle
        channel = connection.channel()
        channel.queue_declare(queue, exclusive=True)
        channel.basic_publish("", queue, b"x")
        assert tracer.settle()
    assert all(isinstance(e, TraceEvent) for e in log)
    assert [e.kind for e in log if queue in e.routed_queues] == ["publish"]


def test_a_private_vhost_gets_its_clients_over_a_second_connection(broker, vbroker):
    """The event exchange is in "/": a diagram of another vhost reads it over a connection
    of its own to "/", and is told of a client that lived a fraction of a second."""
    name, queue = _unique("conn"), _unique("q")
    with tracing(vbroker) as (tracer, log):
        assert tracer.lifecycle and tracer.clients_queue
        in_root = [q["name"] for q in broker.management.queues("/")]
        assert tracer.clients_queue in in_root and tracer.queue not in in_root
        started = time.monotonic()
        connection = pika.BlockingConnection(
            vbroker.connection_parameters(client_properties={"connection_name": name})
        )
        channel = connection.channel()
        channel.queue_declare(queue, exclusive=True)
        channel.basic_qos(prefetch_count=3)
        got: list[bytes] = []
        channel.basic_consume(queue, lambda *a: got.append(a[3]), consumer_tag="eater")
        channel.basic_consume(queue, lambda *a: got.append(a[3]), auto_ack=True, consumer_tag="x")
        connection.process_data_events(time_limit=0.2)  # consuming for a while
        channel.basic_publish("", queue, b"hello")
        while not got and time.monotonic() - started < 2:  # delivered before the close
            connection.process_data_events(time_limit=0.01)
        connection.close()
        lived = time.monotonic() - started
        assert tracer.settle()
        counters = settled_counters(vbroker, tracer, {"published": 1, "delivered": 1})
    assert lived < 1.0, "shorter than the management API's statistics interval"
    assert got == [b"hello"]

    created = [e for e in log if isinstance(e, ClientEvent) and e.name == name]
    assert len(created) == 1 and created[0].kind == "connection.created"
    conn = created[0].connection
    assert (created[0].protocol, created[0].user) == ("AMQP 0-9-1", vbroker.username)
    mine = [
        e for e in log if isinstance(e, ClientEvent) and (e.connection == conn or e.queue == queue)
    ]
    # One queue of client events: among themselves, they are in the broker's order.
    assert _in_order(
        [e.kind for e in mine if e.kind != "queue.deleted"],
        TWO_CONSUMERS_CLOSED,
    ), " ".join(e.kind for e in mine)
    assert "queue.deleted" in [e.kind for e in mine]
    eater, auto = (e for e in mine if e.kind == "consumer.created")
    assert (eater.connection, eater.channel, eater.queue, eater.consumer_tag) == (
        conn,
        1,
        queue,
        "eater",
    )
    assert (eater.prefetch, eater.ack_required) == (3, True)
    assert (auto.consumer_tag, auto.prefetch, auto.ack_required) == ("x", 3, False)
    traced = [e for e in log if isinstance(e, TraceEvent) and queue in (e.queue, *e.routed_queues)]
    assert [e.kind for e in traced] == ["publish", "deliver"]
    assert traced[0].client == (conn, 1), "trace and client events name it alike"
    # The second queue's deliveries and markers are "/"'s: the vhost's counters are the
    # client's own traffic.
    assert counters == {"published": 1, "delivered": 1}
    assert not _in_root(broker, tracer.clients_queue), "its queue in / went with it"


def _in_root(broker: Broker, queue: str) -> bool:
    """Whether a queue is still in "/" (a deleted one may be listed a moment longer)."""
    deadline = time.monotonic() + 5
    while True:
        there = queue in [q["name"] for q in broker.management.queues("/")]
        if not there or time.monotonic() > deadline:
            return there
        time.sleep(0.2)


@pytest.mark.usefixtures("root")
def test_clients_of_root_and_of_other_vhosts_do_not_leak_in(broker, vbroker):
    names = {tag: _unique(tag) for tag in ("root", "other", "here")}
    conns: dict[str, str] = {}
    with private_vhost(broker, "lifecycle-other") as other, tracing(vbroker) as (tracer, log):
        assert tracer.lifecycle
        for b, tag in ((broker, "root"), (other, "other"), (vbroker, "here")):
            # The client here last: once seen, the others' events were handled (one queue).
            connection = pika.BlockingConnection(
                b.connection_parameters(client_properties={"connection_name": names[tag]})
            )
            conns[tag] = broker_name(connection)
            channel = connection.channel()
            channel.queue_declare(names[tag] + "-q", exclusive=True)
            channel.basic_consume(names[tag] + "-q", lambda *_a: None, consumer_tag=tag)
            connection.close()
        assert tracer.settle()
    clients = [e for e in log if isinstance(e, ClientEvent)]
    here = [e for e in clients if e.connection == conns["here"] or e.queue == names["here"] + "-q"]
    assert _in_order(
        [e.kind for e in here if e.kind != "queue.deleted"],
        [
            "connection.created",
            "channel.created",
            "queue.created",
            "consumer.created",
            "consumer.deleted",
            "channel.closed",
            "connection.closed",
        ],
    ), " ".join(e.kind for e in here)
    assert here[0].name == names["here"]
    for tag in ("root", "other"):
        assert not [e for e in clients if e.connection == conns[tag] or e.name == names[tag]]
        assert not [e for e in clients if e.queue == names[tag] + "-q" or e.consumer_tag == tag]
    # Nothing else of another vhost's; only the closes of connections older than the
    # tracer, whose vhost nothing says (see helpers.flow.lifecycle), may be anybody's.
    others = {e.kind for e in clients if e.connection not in ("", conns["here"])}
    assert others <= {"connection.closed"}, others


def test_one_sync_covers_the_client_event_queue(vbroker):
    """A sync marker goes through the client-event queue too, so one sync returns only after
    every client event the broker sent before it. A backlog there: the firehose process is
    held stopped while a client makes more events than its prefetch window."""
    name, queue, channels = _unique("many"), _unique("many-q"), 200
    with tracing(vbroker) as (tracer, log):
        assert tracer.lifecycle and tracer.sync()
        process = tracer._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:
            with pika.BlockingConnection(
                vbroker.connection_parameters(client_properties={"connection_name": name})
            ) as connection:
                conn = broker_name(connection)
                connection.channel().queue_declare(queue, exclusive=True)
                for _ in range(channels):  # 8 events each: 1600 in all
                    channel = connection.channel()
                    for n in range(3):
                        channel.basic_consume(queue, lambda *_a: None, consumer_tag=f"c{n}")
                    channel.close()
            time.sleep(0.5)  # the broker has sent them all by now
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert tracer.sync(timeout=15)
        mine = [e for e in log if isinstance(e, ClientEvent) and e.connection == conn]
    kinds = [e.kind for e in mine]
    assert kinds.count("consumer.deleted") == 3 * channels
    assert "connection.closed" in kinds[-4:], "seen after one sync"


def test_losing_the_client_event_connection_ends_the_process(broker, vbroker):
    """Either connection lost (a restart, an operator closing it) ends the process with the
    broker's words, as the first one's does; it cleans up on its way out."""
    with tracing(vbroker) as (tracer, _log):
        second = _owner(broker, tracer.clients_queue)
        broker.management.close_connection(second, "closed by a test")
        deadline = time.monotonic() + 10
        while tracer.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = tracer.lost
    assert (
        lost == "the broker closed the diagram's connection (CONNECTION_FORCED: closed by a test)"
    )
    assert not vbroker.management.tracing(vbroker.vhost), "tracing switched off on its way out"
    assert tracer.queue not in [q["name"] for q in vbroker.management.queues(vbroker.vhost)]


@pytest.mark.usefixtures("root")
def test_a_diagram_of_root_does_not_draw_the_client_event_queue(broker, vbroker):
    """Another vhost's firehose has a queue in "/", and sends its markers through it: a
    diagram of "/" takes it for a diagram's own (bound to amq.rabbitmq.event) and draws
    neither, once it has read the topology (what it counted before that is reset here)."""
    with (
        FlowDiagram(broker, prefix="amq.gen-") as root_diagram,
        tracing(vbroker) as (tracer, _log),
    ):
        root_diagram.wait_until_caught_up()
        root_diagram.reset()
        for _ in range(3):
            assert tracer.sync()
        root_diagram.wait_until_caught_up()
        drawn = {q.name for q in root_diagram.state.visible_queues()}
        listed = {q.name for q in root_diagram.state.topology.queues}
        delivered = root_diagram.state.delivered[tracer.clients_queue]
    assert tracer.clients_queue in listed, "the diagram of / did read it"
    assert tracer.clients_queue not in drawn
    assert delivered == 0


@pytest.fixture
def student(broker: Broker, vbroker: Broker) -> Iterator[Broker]:
    """A user as a classroom makes one: the management tag, permissions on the private
    vhost only (none on "/"), where an administrator switched tracing on."""
    api = broker.management
    name, password = f"flowdev-student-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    api.put_user(name, password, ["management"])
    try:
        api.set_permissions(vbroker.vhost, name)
        api.set_tracing(vbroker.vhost, True)
        yield dataclasses.replace(vbroker, username=name, password=password)
    finally:
        api.delete_user(name)


def test_a_user_who_may_not_use_root_falls_back(vbroker, student):
    """Only "/" has amq.rabbitmq.event, and a student may not use "/" (530 NOT_ALLOWED):
    the tracer says so and traces as before (the diagram then reads clients from the API)."""
    with tracing(student) as (tracer, log), connect(student) as connection:
        assert not tracer.lifecycle and tracer.clients_queue == ""
        assert tracer.was_on, "the administrator switched tracing on"
        channel = connection.channel()
        channel.queue_declare(P + "q", exclusive=True)
        for i in range(3):
            channel.basic_publish("", P + "q", str(i).encode())
        channel.basic_consume(P + "q", lambda *_a: None, auto_ack=True)
        connection.process_data_events(time_limit=0.1)
        assert tracer.settle()
        bindings = vbroker.management.bindings(vbroker.vhost)
        # While the tracer runs: it takes its own last trace messages too.
        counters = settled_counters(vbroker, tracer, {"published": 3, "delivered": 3})
    assert not [e for e in log if isinstance(e, ClientEvent)]
    assert [e.kind for e in log] == ["publish"] * 3 + ["deliver"] * 3
    assert not [b for b in bindings if b["source"] == EVENT_EXCHANGE]
    assert counters == {"published": 3, "delivered": 3}


def test_the_brokers_counters_still_match_with_client_events(tmp_path):
    """The event messages delivered to the diagram's queue are deliveries in the broker's
    counters: `received` counts them, so the broker's totals less the diagram's own traffic
    are still what the clients did. On a node of its own, where "/" is ours alone."""
    with throwaway_node(tmp_path / "node", f"flowdev-lifecycle-{os.getpid()}") as node:
        nb = private_node_broker(node)
        with tracing(nb) as (tracer, log):
            assert tracer.lifecycle
            for n in range(3):  # short-lived clients: many client events
                with connect(nb) as connection:
                    channel = connection.channel()
                    # A name of its own each time: the broker deletes an exclusive queue
                    # after the owner's close-ok, so the next client could find it locked.
                    queue = f"{P}q{n}"
                    channel.queue_declare(queue, exclusive=True)
                    for i in range(n + 1):
                        channel.basic_publish("", queue, str(i).encode())
                    channel.basic_consume(queue, lambda *_a: None, auto_ack=True)
                    connection.process_data_events(time_limit=0.1)
            assert tracer.settle()
            counters = settled_counters(nb, tracer, {"published": 6, "delivered": 6})
    clients = [e for e in log if isinstance(e, ClientEvent)]
    assert len(clients) >= 3 * 7, "connection, channel, queue and consumer, each way"
    assert counters == {"published": 6, "delivered": 6}
    assert sum(e.repeat for e in log if isinstance(e, TraceEvent) and e.kind == "deliver") == 6
