"""Resource alarms (issue 19, finding 1): a disk alarm must not hang anything silently.

Everything that raises an alarm does it on a throwaway node of its own: an alarm blocks every
publisher of a node, and the checkout's shared nodes serve other tests meanwhile. The alarm is
real: `rabbitmqctl set_disk_free_limit` above the free disk space, the way chapter 02's
helper sets it off. The node's management port is 10000 above its AMQP port, RabbitMQ's
convention, by which `explain()` finds the API of a broker the helpers did not start.

Helper connections here give up after 2 s blocked (the helpers' default is 10 s), so that
the file takes seconds, not minutes.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from conftest import throwaway_node
from helpers.broker import Broker, private_node_broker
from helpers.errors import ManagementError, explain
from helpers.node import Node, Ports
from helpers.probe import port_is_free
from helpers.widgets import FlowDiagram

REPO = Path(__file__).resolve().parent.parent
P = "alarmtest."
ABOVE_ANY_DISK = str(10**18)  # bytes: a disk_free_limit no disk has free
DEFAULT_LIMIT = 50_000_000  # RabbitMQ's default disk_free_limit (50 MB, 3.x and 4.x)
BLOCKED_S = 2  # how long the test's publishers wait while blocked


@dataclasses.dataclass(frozen=True)
class QuickBroker(Broker):
    """The same broker, whose helper connections (the publish panel's) give up after
    BLOCKED_S seconds blocked instead of the helpers' default."""

    def connection_parameters(self, **options: Any) -> pika.ConnectionParameters:
        options.setdefault("blocked_connection_timeout", BLOCKED_S)
        return super().connection_parameters(**options)


def conventional_ports() -> Ports:
    """Free ports with the management API 10000 above AMQP (the kernel hands out neither
    20000-22000 nor 30000-32000 to outgoing connections)."""
    while True:
        amqp = random.randrange(20_000, 22_000)
        ports = Ports(amqp, amqp + 10_000, amqp + 1)
        if all(port_is_free("127.0.0.1", p) for p in (ports.amqp, ports.management, ports.dist)):
            return ports


@pytest.fixture(scope="module")
def alarm_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    directory = tmp_path_factory.mktemp("alarms") / "node"
    with throwaway_node(directory, "alarmtest", conventional_ports()) as node:
        yield node


@pytest.fixture
def broker(alarm_node: Node) -> Iterator[Broker]:
    """The throwaway node as a Broker; every test leaves it without alarm."""
    broker = private_node_broker(alarm_node)
    try:
        yield broker
    finally:
        if alarm_on(broker):
            lower_disk_alarm(alarm_node)


def raise_disk_alarm(node: Node, broker: Broker) -> None:
    """A real disk alarm, reported by /api/nodes too (a statistics interval later)."""
    out = node.rabbitmqctl("set_disk_free_limit", ABOVE_ANY_DISK)
    assert out.returncode == 0, out.stderr
    wait_for_disk_alarm(broker, True)


def alarm_on(broker: Broker) -> bool:
    """Whether the node has an alarm right now (its health check answers 503 then)."""
    try:
        broker.management.request("GET", "health/checks/alarms")
    except ManagementError as exc:
        assert exc.status == 503, exc
        return True
    return False


def lower_disk_alarm(node: Node) -> None:
    out = node.rabbitmqctl("set_disk_free_limit", str(DEFAULT_LIMIT))
    assert out.returncode == 0, out.stderr


def wait_for_disk_alarm(broker: Broker, on: bool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        nodes = broker.management.get("nodes")
        if all(bool(n.get("disk_free_alarm")) == on for n in nodes):
            return
        assert time.monotonic() < deadline, f"/api/nodes did not report disk_free_alarm={on}"
        time.sleep(0.1)


def declare(broker: Broker, queue: str) -> None:
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        connection.channel().queue_declare(queue, durable=True)


def delete(broker: Broker, queue: str) -> None:
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        connection.channel().queue_delete(queue)


# -- against the throwaway node ------------------------------------------------------------------


def test_a_blocked_publish_gets_one_sentence_naming_the_disk_alarm_then_goes_through(
    alarm_node, broker
):
    queue = P + "q"
    declare(broker, queue)
    params = broker.connection_parameters(blocked_connection_timeout=BLOCKED_S)
    try:
        raise_disk_alarm(alarm_node, broker)
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            started = time.monotonic()
            with pytest.raises(pika.exceptions.ConnectionBlockedTimeout) as blocked:
                channel.basic_publish("", queue, b"during the alarm")
            waited = time.monotonic() - started
        assert BLOCKED_S - 0.5 < waited < BLOCKED_S + 2, waited
        sentence = explain(blocked.value)
        assert "disk alarm" in sentence and "blocked_connection_timeout" in sentence, sentence
        assert "set_disk_free_limit" in sentence and "\n" not in sentence, sentence

        lower_disk_alarm(alarm_node)
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("", queue, b"after the alarm")  # acked, or it raises
    finally:
        lower_disk_alarm(alarm_node)
        delete(broker, queue)


def test_the_chapter_helper_lowers_the_alarm_even_when_the_body_raises(alarm_node, broker):
    from helpers.alarms import active_alarms, alarm_in_effect, disk_alarm

    said: list[str] = []
    for stop in (RuntimeError("a bug in the cell"), KeyboardInterrupt()):
        with pytest.raises(type(stop)):
            with disk_alarm(broker, progress=said.append) as on:
                assert on
                assert alarm_in_effect(broker.management) is True
                raise stop
        assert alarm_in_effect(broker.management) is False
    assert said[0] == (
        "The tutorial's node has a disk alarm now: its disk_free_limit is set above its free "
        "disk space."
    )
    assert said[1] == "The disk alarm is cleared: disk_free_limit is back to 50 MB."
    wait_for_disk_alarm(broker, False)
    assert [n["disk_free_limit"] for n in broker.management.get("nodes")] == [DEFAULT_LIMIT]
    assert active_alarms(broker) == []

    # A broker the helpers did not start: one line, and nothing happens.
    elsewhere = dataclasses.replace(broker, source="AMQP_URL", started_by_helpers=False)
    said.clear()
    with disk_alarm(elsewhere, progress=said.append) as on:
        assert not on
        assert alarm_in_effect(broker.management) is False
    assert len(said) == 1 and said[0].startswith("Skipped: "), said


def test_alarm_clear_puts_the_limit_back_after_a_kernel_died_inside_the_alarm(
    alarm_node, broker
):
    raise_disk_alarm(alarm_node, broker)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TUTORIAL_NODE_DIR": str(alarm_node.base),
        "TUTORIAL_NODE_NAME": alarm_node.name,
        "TUTORIAL_NODE_AMQP_PORT": str(alarm_node.ports.amqp),
        "TUTORIAL_NODE_MANAGEMENT_PORT": str(alarm_node.ports.management),
        "TUTORIAL_NODE_DIST_PORT": str(alarm_node.ports.dist),
        "TUTORIAL_BROKER": "private",
    }
    status = subprocess.run(
        [sys.executable, "-m", "helpers", "alarm", "status"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert "has a disk alarm" in status.stdout, status.stdout + status.stderr
    assert "python -m helpers alarm clear" in status.stdout, status.stdout
    cleared = subprocess.run(
        [sys.executable, "-m", "helpers", "alarm", "clear"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert cleared.returncode == 0, cleared.stderr
    assert "disk_free_limit 50 MB" in cleared.stdout, cleared.stdout
    wait_for_disk_alarm(broker, False)


def test_the_diagram_names_the_alarm_and_draws_the_blocked_producer(alarm_node, broker, capsys):
    queue = P + "drawn"
    declare(broker, queue)
    producer = pika.BlockingConnection(
        broker.connection_parameters(
            blocked_connection_timeout=30,  # stays open through the alarm
            client_properties={"connection_name": P + "producer"},
        )
    )
    try:
        with FlowDiagram(broker, prefix=P) as diagram:
            channel = producer.channel()
            channel.basic_publish("", queue, b"before the alarm")
            assert diagram.wait_until_caught_up()
            raise_disk_alarm(alarm_node, broker)
            channel.basic_publish("", queue, b"during the alarm")
            producer.process_data_events(time_limit=0.2)

            # The API shows a connection's state a statistics interval late: first
            # "blocking" (the alarm is on), then "blocked" (it published during it).
            deadline = time.monotonic() + 6
            while 'class="blocked-tag" data-state="blocked"' not in diagram.widget.value:
                assert time.monotonic() < deadline, "the producer's box has no blocked tag"
                time.sleep(0.1)
            assert 'class="blocked-tag" data-state="blocked"' in diagram.html(animate=True)

            capsys.readouterr()
            started = time.monotonic()
            caught = diagram.wait_until_caught_up(timeout=1)
            waited = time.monotonic() - started
            printed = capsys.readouterr().out
            assert not caught
            assert "the broker has a disk alarm: publishers are blocked" in printed, printed
            assert "firehose" not in printed, printed
            # Its timeout, plus the queues' counts it asks for once more (2 s at most).
            assert waited < 1 + 2.5, waited

            lower_disk_alarm(alarm_node)
            producer.process_data_events(time_limit=0.5)
            assert diagram.wait_until_caught_up(), "no catching up after the alarm"
            deadline = time.monotonic() + 6
            while 'class="blocked-tag"' in diagram.widget.value:
                assert time.monotonic() < deadline, "the blocked tag stayed after the alarm"
                time.sleep(0.1)
            assert diagram.state.totals()["published"] == 2
    finally:
        lower_disk_alarm(alarm_node)  # a blocked connection's close would wait 30 s
        if producer.is_open:
            producer.close()
        delete(broker, queue)


def test_the_publish_panel_answers_a_blocked_publish_with_one_sentence(alarm_node, broker):
    queue = P + "panel"
    declare(broker, queue)
    quick = QuickBroker(**{f.name: getattr(broker, f.name) for f in dataclasses.fields(broker)})
    try:
        with FlowDiagram(quick, prefix=P) as diagram:
            panel = diagram.publish_panel(show_diagram=False)
            raise_disk_alarm(alarm_node, broker)
            started = time.monotonic()
            answer = panel.publish("", queue, b"pressed during the alarm")
            assert time.monotonic() - started < BLOCKED_S + 3
            assert answer.startswith("could not publish: "), answer
            assert "disk alarm" in answer and "\n" not in answer, answer
            lower_disk_alarm(alarm_node)
            assert panel.publish("", queue, b"pressed after it") == f"routed to {queue}"
    finally:
        delete(broker, queue)


# -- without a broker ----------------------------------------------------------------------------


def test_the_topology_carries_blocked_connections_and_the_picture_escapes_their_names():
    from helpers.flow.state import FlowState
    from helpers.flow.topology import topology_from_api
    from helpers.view.svg import render_svg

    connections = [
        {"name": "a -> b", "state": "blocked", "client_properties": {"connection_name": "<i>x"}},
        {"name": "c -> d", "state": "blocking", "client_properties": {}},
        {"name": "e -> f", "state": "running", "client_properties": {}},
    ]
    topology = topology_from_api([], [], [], [], connections)
    assert topology.blocked == (("a -> b", "blocked"), ("c -> d", "blocking"))
    state = FlowState(prefix=P)
    state.set_topology(topology)
    picture = render_svg(state)
    assert "blocked by the broker (a resource alarm), publishes waiting: &lt;i&gt;x" in picture
    assert "<i>x" not in picture


def test_ipython_shows_a_blocked_timeout_as_one_line():
    script = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "from helpers.alarms import install_ipython_handler\n"
        "assert install_ipython_handler() and install_ipython_handler()\n"
        "result = shell.run_cell('import pika.exceptions\\n"
        "raise pika.exceptions.ConnectionBlockedTimeout(\"Blocked connection timeout "
        "expired.\")')\n"
        "print('error_in_exec:', type(result.error_in_exec).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, out.stdout + out.stderr
    assert lines[0].startswith("ConnectionBlockedTimeout: The broker blocked this"), lines
    assert "resource alarm" in lines[0], lines
    assert lines[1] == "error_in_exec: ConnectionBlockedTimeout", lines
