"""Every error of the index (helpers/error_index.py, docs/errors.md), provoked on a real broker.

Each test makes the broker (or pika) raise the error the way a learner would, then checks that
the index recognises it and that `explain()` says its meaning and, where it names chapters,
the chapter. Names start with a per-process prefix, and everything made is deleted.

The 406 for a consumer that never acks (RabbitMQ up to 4.2) and the blocked connection need
a broker that can be broken: both run on one throwaway node of the machine's RabbitMQ 3.10,
with `consumer_timeout` at 500 ms and the channels' timer (60 s by default, so 3.10 notices a
late ack within a minute) at 200 ms. On the 4.3 node the same mistake cancels the consumer
instead, which is checked too.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions as pe
import pytest

from conftest import free_ports
from helpers import error_index, explain
from helpers.broker import Broker, private_node_broker
from helpers.error_index import ErrorEntry, find_entry

P = f"errindex.{os.getpid()}."
ABOVE_ANY_DISK = str(10**18)  # bytes: a disk_free_limit no disk has free


def explained(exc: BaseException, key: str) -> str:
    """Assert that the index knows `exc` as entry `key` and explain() says so; the sentence."""
    entry: ErrorEntry = error_index.entry(key)
    assert find_entry(exc) is entry, (key, type(exc).__name__, exc, find_entry(exc))
    sentence = explain(exc)
    assert entry.headline() in sentence, sentence
    if entry.explain_names_chapter:
        assert f"(chapter {entry.chapter})" in sentence, sentence
    assert "\n" not in sentence, sentence
    return sentence


def raised(broker: Broker, action, **options) -> BaseException:
    """The exception `action(connection, channel)` raises on a fresh connection."""
    params = broker.connection_parameters(connection_attempts=1, socket_timeout=2, **options)
    with pytest.raises(Exception) as info:  # noqa: B017  which one is what the test checks
        with pika.BlockingConnection(params) as connection:
            action(connection, connection.channel())
    return info.value


@pytest.fixture(scope="module", autouse=True)
def cleanup(broker: Broker) -> Iterator[None]:
    yield
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        for queue in broker.management.queues("/"):
            if queue["name"].startswith(P):
                channel.queue_delete(queue["name"])


# -- channel and connection errors from the broker -------------------------------------------


def test_541_a_transient_shared_queue_on_rabbitmq_4_3(broker):
    def declare(connection, channel):
        # deliberately neither durable nor exclusive: the broker's answer is what is tested
        channel.queue_declare(P + "transient", durable=False, exclusive=False)
        channel.queue_delete(P + "transient")
        raise AssertionError("the broker permitted it")

    if broker.version.startswith("3."):
        pytest.skip("RabbitMQ 3.x permits transient non-exclusive queues")
    exc = raised(broker, declare)
    assert isinstance(exc, pe.ConnectionClosedByBroker) and exc.reply_code == 541, exc
    sentence = explained(exc, "541-deprecated")
    assert "transient_nonexcl_queues` is deprecated)" in sentence, sentence
    assert "4.3 and newer" in sentence and "4.0-4.2" in sentence, sentence


def test_406_a_queue_declared_again_without_durable(broker):
    def declare_twice(connection, channel):
        channel.queue_declare(P + "tasks", durable=True)
        connection.channel().queue_declare(P + "tasks")  # durable=False: forgotten on a re-run

    sentence = explained(raised(broker, declare_twice), "406-inequivalent")
    assert "(inequivalent arg 'durable')" in sentence, sentence


def test_406_a_delivery_acked_twice(broker):
    def ack_twice(connection, channel):
        channel.queue_declare(P + "acks", durable=True)
        channel.basic_publish("", P + "acks", b"once")
        method, _, _ = channel.basic_get(P + "acks")
        channel.basic_ack(method.delivery_tag)
        channel.basic_ack(method.delivery_tag)
        channel.queue_declare(P + "acks", passive=True)  # a round trip: the 406 arrives

    explained(raised(broker, ack_twice), "406-unknown-tag")


def test_404_publishing_to_a_missing_exchange(broker):
    def publish(connection, channel):
        channel.basic_publish(P + "no-such-exchange", "", b"lost")
        channel.basic_qos(prefetch_count=0)  # a round trip: the 404 arrives first

    sentence = explained(raised(broker, publish), "404-not-found")
    assert f"no exchange '{P}no-such-exchange'" in sentence, sentence


def test_403_declaring_a_reserved_name(broker):
    def declare(connection, channel):
        channel.exchange_declare("amq." + P + "mine", "direct")

    explained(raised(broker, declare), "403-access-refused")


def test_312_a_mandatory_message_no_queue_takes(broker):
    def publish(connection, channel):
        channel.confirm_delivery()
        channel.basic_publish("", P + "nobody", b"x", mandatory=True)

    exc = raised(broker, publish)
    assert exc.messages[0].method.reply_code == 312, exc.messages  # NO_ROUTE
    explained(exc, "312-no-route")


def test_nack_from_a_full_queue(broker):
    def publish(connection, channel):
        arguments = {"x-max-length": 0, "x-overflow": "reject-publish"}
        channel.queue_declare(P + "full", durable=True, arguments=arguments)
        channel.confirm_delivery()
        channel.basic_publish("", P + "full", b"x")

    explained(raised(broker, publish), "nack")


def test_320_an_operator_closes_the_connection(broker):
    name = P + "closed-by-operator"

    def close_from_outside(connection, channel):
        deadline = time.monotonic() + 10
        while True:
            found = [
                c["name"]
                for c in broker.management.connections()
                if c.get("client_properties", {}).get("connection_name") == name
            ]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        broker.management.close_connection(found[0])
        connection.process_data_events(time_limit=5)
        connection.channel()

    exc = raised(broker, close_from_outside, client_properties={"connection_name": name})
    assert isinstance(exc, pe.ConnectionClosedByBroker) and exc.reply_code == 320, exc
    explained(exc, "320-connection-forced")


def test_a_channel_used_after_its_error(broker):
    def use_again(connection, channel):
        try:
            channel.queue_declare(P + "missing", passive=True)
        except pe.ChannelClosedByBroker:
            pass
        channel.queue_declare(P + "missing", passive=True)

    explained(raised(broker, use_again), "channel-closed")


def test_a_connection_used_after_it_closed(broker):
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        pass
    with pytest.raises(pe.ConnectionWrongStateError) as info:
        connection.channel()
    explained(info.value, "connection-closed")


def test_stream_lost_after_missed_heartbeats(broker):
    connection = pika.BlockingConnection(broker.connection_parameters(heartbeat=1))
    time.sleep(3.5)  # pika answers no heartbeat while nothing runs it: the broker drops it
    with pytest.raises(pe.StreamLostError) as info:
        connection.channel()
    explained(info.value, "stream-lost")


def test_on_4_3_a_late_ack_cancels_the_consumer_of_a_quorum_queue(broker):
    """What the ack-timeout entry says of 4.3 and newer: no error, the consumer is cancelled."""
    if not broker.version.startswith("4.3"):
        pytest.skip("4.3 behaviour")
    queue = P + "quorum-late"
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"never acked")
        started = time.monotonic()
        deliveries = [
            m
            for m in channel.consume(
                queue, inactivity_timeout=0.2, arguments={"x-consumer-timeout": 500}
            )
            if m[0] is not None or time.monotonic() - started > 15
        ]
        assert time.monotonic() - started < 15, "the consumer was not cancelled"
        assert len(deliveries) == 1 and channel.is_open
    # Counted and deleted on a new connection: 4.3.6 still holds the timed-out consumer and
    # cancels it again when its queue is deleted, which pika 1.4.4 cannot take once the
    # consume() generator ended (its connection is then lost with StreamLostError).
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        assert connection.channel().queue_delete(queue).method.message_count == 1  # requeued
    assert "4.3 and newer check the timeout for quorum queues only" in (
        error_index.entry("406-ack-timeout").fix
    )


# -- connection errors (chapter 01) ----------------------------------------------------------


def connect(**options) -> BaseException:
    options.setdefault("socket_timeout", 2)
    params = pika.ConnectionParameters(connection_attempts=1, **options)
    with pytest.raises(Exception) as info:  # noqa: B017
        pika.BlockingConnection(params).close()
    return info.value


def test_wrong_password(broker):
    credentials = pika.PlainCredentials(broker.username, "not-the-password")
    explained(connect(host=broker.host, port=broker.port, credentials=credentials), "auth")


def test_unknown_vhost(broker):
    credentials = pika.PlainCredentials(broker.username, broker.password)
    exc = connect(
        host=broker.host, port=broker.port, credentials=credentials, virtual_host=P + "nowhere"
    )
    explained(exc, "vhost")


def test_nothing_listening(free_port):
    explained(connect(host="127.0.0.1", port=free_port), "refused")


def other_program(answer: bytes | None) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose program answers `answer` and hangs up (None: never answers).

    (The management port would do for the first, but its web server waits 5 s first.)"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        peer = server.accept()[0]
        held.append(peer)
        if answer is not None:
            peer.recv(8)
            peer.sendall(answer)
            peer.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, held


def test_another_program_on_the_port():
    server, held = other_program(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with server:
        explained(connect(host="127.0.0.1", port=server.getsockname()[1]), "not-amqp")


def test_a_program_that_never_answers_the_handshake():
    server, held = other_program(None)
    with server:
        exc = connect(host="127.0.0.1", port=server.getsockname()[1], stack_timeout=1)
        for peer in held:
            peer.close()
    explained(exc, "handshake-timeout")


def test_a_host_that_does_not_resolve():
    started = time.monotonic()
    exc = connect(host="no-such-host.invalid", port=5672)
    if time.monotonic() - started > 5:
        pytest.skip("this machine's resolver is slow")
    explained(exc, "dns")


def test_a_host_that_does_not_answer():
    """A listener whose backlog is full drops new SYNs (Linux), as a dead host would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
            fillers.append(filler)
        time.sleep(0.1)
        exc = connect(host="127.0.0.1", port=server.getsockname()[1], socket_timeout=0.5)
    finally:
        for filler in fillers:
            filler.close()
        server.close()
    if find_entry(exc) is not error_index.entry("timeout"):
        pytest.skip(f"this kernel did not drop the connection: {exc!r}")
    explained(exc, "timeout")


def test_urls_pika_cannot_parse():
    with pytest.raises(IndexError) as no_scheme:
        pika.URLParameters("garbage")
    explained(no_scheme.value, "url")
    with pytest.raises(ValueError) as bad_port:
        pika.URLParameters("amqp://guest:guest@localhost:five/%2F")
    assert "(Port could not be cast" in explained(bad_port.value, "malformed")


# -- on a throwaway RabbitMQ 3.10 node -------------------------------------------------------


@pytest.fixture(scope="module")
def old_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Broker]]:
    """The machine's RabbitMQ (3.10 here) with a 500 ms consumer_timeout checked every 200 ms."""
    from helpers.node import Node, Ports, system_runtime

    runtime = system_runtime()
    if runtime is None or not runtime.version.startswith(("3.", "4.0", "4.1", "4.2")):
        pytest.skip("no RabbitMQ up to 4.2 on this machine")
    node = Node(
        Path(tmp_path_factory.mktemp("errindex")) / "node",
        runtime,
        name=f"errindex-{os.getpid()}@localhost",
        ports=Ports(*free_ports(3)),
        extra_config=("consumer_timeout = 500",),
    )
    node.start()
    try:
        out = node.rabbitmqctl("eval", "application:set_env(rabbit, channel_tick_interval, 200).")
        assert out.returncode == 0, out.stderr
        yield node, private_node_broker(node)
    finally:
        stop_quickly(node)


def stop_quickly(node) -> None:
    """The node's data is thrown away with it, so it need not stop gracefully: SIGKILL takes
    a moment where `rabbitmqctl stop` (or SIGTERM) takes 6-7 s on 3.10. `node.stop()` then
    finds nothing left, or finishes the job."""
    pid = node.pid()
    if pid is not None and node.is_own_process(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and node.is_own_process(pid):
            time.sleep(0.1)
    node.stop()


def test_406_a_delivery_never_acked_up_to_rabbitmq_4_2(old_broker):
    _node, broker = old_broker

    def hold(connection, channel):
        channel.queue_declare(P + "late", durable=True)
        channel.basic_publish("", P + "late", b"never acked")
        started = time.monotonic()
        for _ in channel.consume(P + "late", inactivity_timeout=0.2):
            assert time.monotonic() - started < 10, "the channel stayed open"

    exc = raised(broker, hold)
    assert isinstance(exc, pe.ChannelClosedByBroker) and exc.reply_code == 406, exc
    assert "delivery acknowledgement on channel 1 timed out" in exc.reply_text
    explained(exc, "406-ack-timeout")


def test_a_publish_blocked_by_a_disk_alarm(old_broker):
    node, broker = old_broker
    assert node.rabbitmqctl("set_disk_free_limit", ABOVE_ANY_DISK).returncode == 0
    try:

        def publish(connection, channel):
            channel.confirm_delivery()
            channel.basic_publish("", P + "late", b"during the alarm")

        exc = raised(broker, publish, blocked_connection_timeout=1)
    finally:
        assert node.rabbitmqctl("set_disk_free_limit", "50MB").returncode == 0
    assert isinstance(exc, pe.ConnectionBlockedTimeout), exc
    entry = error_index.entry("blocked")
    assert find_entry(exc) is entry
    sentence = explain(exc)
    assert "blocked_connection_timeout" in sentence and "(chapter 02)" in sentence, sentence
    assert entry.label in entry.one_line(exc) and "(chapter 02)" in entry.one_line(exc)
