"""Chapter 10's check (helpers/checks/ch10.py) on a real cluster: a node is killed under the
learner's consumer. A right answer passes (twice); each typical mistake gets the hint that
names it; a wrong attempt followed by a different wrong one gets the second hint."""

from __future__ import annotations

import threading
import time

import pika
import pika.exceptions
from cluster_fixture import cluster_under_test  # noqa: F401 - the fixture

from helpers.checks import ch10

QUEUE = "test.ch10.ex"


def right(hosts, queue, work, stop):
    seen = set()
    attempt = 0
    while not stop.is_set():
        first = attempt % len(hosts)
        try:
            with pika.BlockingConnection(hosts[first:] + hosts[:first]) as connection:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=20)
                for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    if properties.message_id not in seen:
                        work(properties.message_id, body)
                        seen.add(properties.message_id)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            attempt += 1
            time.sleep(0.2)


def no_reconnect(hosts, queue, work, stop):
    seen = set()
    with pika.BlockingConnection(hosts) as connection:
        channel = connection.channel()
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
            if stop.is_set():
                break
            if method is None:
                continue
            if properties.message_id not in seen:
                work(properties.message_id, body)
                seen.add(properties.message_id)
            channel.basic_ack(method.delivery_tag)


def first_host_only(hosts, queue, work, stop):
    seen = set()
    while not stop.is_set():
        try:
            with pika.BlockingConnection(hosts[0]) as connection:
                channel = connection.channel()
                for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    if properties.message_id not in seen:
                        work(properties.message_id, body)
                        seen.add(properties.message_id)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            time.sleep(0.2)


def no_dedupe(hosts, queue, work, stop):
    while not stop.is_set():
        try:
            with pika.BlockingConnection(hosts) as connection:
                channel = connection.channel()
                for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    work(properties.message_id, body)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            time.sleep(0.2)


def dedupe_on_body(hosts, queue, work, stop):
    seen = set()
    while not stop.is_set():
        try:
            with pika.BlockingConnection(hosts) as connection:
                channel = connection.channel()
                for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    if body not in seen:
                        work(properties.message_id, body)
                        seen.add(body)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            time.sleep(0.2)


def auto_ack(hosts, queue, work, stop):
    with pika.BlockingConnection(hosts) as connection:
        channel = connection.channel()
        for method, properties, body in channel.consume(queue, auto_ack=True,
                                                        inactivity_timeout=0.1):
            if stop.is_set():
                break
            if method is not None:
                work(properties.message_id, body)


def test_missing_and_malformed(cluster_under_test):  # noqa: F811
    assert "no function named consume" in repr(ch10.check_exercise(cluster_under_test, None))
    assert "not a function" in repr(ch10.check_exercise(cluster_under_test, 3))
    result = ch10.check_exercise(cluster_under_test, lambda hosts: None)
    assert "four arguments" in repr(result)


def test_right_answer_passes_twice(cluster_under_test):  # noqa: F811
    for _ in range(2):
        result = ch10.check_exercise(cluster_under_test, right, QUEUE)
        assert result.passed, result
    assert [n.short for n in cluster_under_test.cluster.ready()] == ["node1", "node2", "node3"]
    assert not threading.active_count() > 20


def test_no_reconnect_loop(cluster_under_test):  # noqa: F811
    result = ch10.check_exercise(cluster_under_test, no_reconnect, QUEUE)
    assert not result.passed and "connect again" in result.message, result


def test_first_host_only(cluster_under_test):  # noqa: F811
    result = ch10.check_exercise(cluster_under_test, first_host_only, QUEUE)
    assert not result.passed and "whole list of hosts" in result.message, result


def test_no_deduplication(cluster_under_test):  # noqa: F811
    result = ch10.check_exercise(cluster_under_test, no_dedupe, QUEUE)
    assert not result.passed and "by message_id" in result.message, result


def test_wrong_then_a_different_wrong_then_right(cluster_under_test):  # noqa: F811
    first = ch10.check_exercise(cluster_under_test, auto_ack, QUEUE)
    assert not first.passed and "auto_ack=True" in first.message, first
    second = ch10.check_exercise(cluster_under_test, dedupe_on_body, QUEUE)
    assert not second.passed and "not on the body" in second.message, second
    assert ch10.check_exercise(cluster_under_test, right, QUEUE).passed


def test_a_fresh_queue_gets_every_member_though_the_old_ones_linger(cluster_under_test):  # noqa: F811
    """What deleting a quorum queue and at once declaring it again met on a busy machine: the
    deleted queue's member on node2 was still registered under the queue's Ra name, so the new
    member there did not start (already_started), and the node the check kills would have
    taken the majority with it. A process registered under that name on node2 for half a
    second stands in for the old member; the check's fresh queue must still get all three
    members. (Without the pause between delete and declare, node2's member fails.)"""
    cluster = cluster_under_test
    queue = "test.ch10.member-race"
    lingering = f"register('%2F_{queue}', spawn(fun() -> timer:sleep(500) end)), ok."
    held = cluster.cluster.node(2).rabbitmqctl("eval", lingering)
    assert held.returncode == 0, held.stdout + held.stderr
    try:
        ch10._fresh_quorum_queue(cluster.connection_parameters()[0], queue)
        time.sleep(3)  # the management API shows a member that did not start within ~1.5 s
        state = cluster.queue_state(queue)
        assert sorted(state.online) == sorted(cluster.nodes), state
    finally:
        with pika.BlockingConnection(cluster.connection_parameters()[0]) as connection:
            connection.channel().queue_delete(queue)
