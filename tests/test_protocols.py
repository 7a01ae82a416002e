"""Chapter 09's broker side, on the real node: MQTT and STOMP listeners (loopback only, ports
chosen and kept, enabled online in a node an older checkout started), `broker status`, and one
diagram that shows the programs of three protocols with their protocol and node."""

from __future__ import annotations

import json
import re
import time

import paho.mqtt.client as mqtt
import pika
import pytest
import stomp
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_node import _is_loopback, _listening

from helpers import find_broker
from helpers.__main__ import main
from helpers.broker import MQTT_PORT, Broker, broker_from_url
from helpers.demo import ch09 as demo
from helpers.node import HOST, private
from helpers.widgets import FlowDiagram

PREFIX = "test.p09."


def test_the_private_node_listens_for_mqtt_and_stomp_on_loopback(broker: Broker):
    ports = broker.node.ports
    assert ports.mqtt and ports.stomp, "chosen at start and saved in node.json"
    assert broker.mqtt == (HOST, ports.mqtt)
    assert broker.stomp == (HOST, ports.stomp)
    sockets = {
        (address, port) for address, port in _listening() if port in (ports.mqtt, ports.stomp)
    }
    assert {port for _, port in sockets} == {ports.mqtt, ports.stomp}
    assert all(_is_loopback(address) for address, _ in sockets), sockets


def test_status_lists_every_listener(broker: Broker, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_BROKER", "private")
    assert main(["broker", "status"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("listeners:"))
    ports = broker.node.ports
    for name, port in (
        ("AMQP", ports.amqp),
        ("management", ports.management),
        ("MQTT", ports.mqtt),
        ("STOMP", ports.stomp),
    ):
        assert f"{name} {HOST}:{port}" in line, line


def test_a_broker_named_by_a_url_is_tried_on_the_usual_ports():
    named = broker_from_url("amqp://someone:secret@127.0.0.1:5672/%2F")
    assert named.mqtt_port is None and named.stomp_port is None
    assert named.mqtt in (None, ("127.0.0.1", MQTT_PORT))


def test_an_older_node_gets_mqtt_and_stomp_online(tmp_path, monkeypatch):
    """A node an older checkout started has neither plugin, no MQTT/STOMP ports in its
    node.json and no listener lines in its rabbitmq.conf. Finding it again chooses and saves
    the ports, and enables both plugins in the running node, on loopback, without a restart."""
    from conftest import throwaway_node

    with throwaway_node(tmp_path / "node", "protocols") as n:
        old = subprocess_ok(n, "disable", "--online", "rabbitmq_mqtt", "rabbitmq_stomp")
        assert old, "disabled"
        state = json.loads(n.state_file.read_text())
        for key in ("mqtt", "stomp"):
            state["ports"].pop(key)
        n.state_file.write_text(json.dumps(state))
        config = n.base / "rabbitmq.conf"
        config.write_text(
            "".join(
                line
                for line in config.read_text().splitlines(keepends=True)
                if not re.match(r"(mqtt|stomp)\.listeners", line)
            )
        )
        assert n.missing_plugins() == ["rabbitmq_mqtt", "rabbitmq_stomp"]
        assert n.ports.mqtt is None
        private._plugins_tried.discard(n.base)
        pid = n.pid()
        ports = n.ports
        monkeypatch.setenv("TUTORIAL_NODE_DIR", str(n.base))
        monkeypatch.setenv("TUTORIAL_NODE_NAME", n.name)
        monkeypatch.setenv("TUTORIAL_NODE_AMQP_PORT", str(ports.amqp))
        monkeypatch.setenv("TUTORIAL_NODE_MANAGEMENT_PORT", str(ports.management))
        monkeypatch.setenv("TUTORIAL_NODE_DIST_PORT", str(ports.dist))
        said: list[str] = []
        found = find_broker(private_only=True, progress=said.append)
        assert said == []
        assert n.missing_plugins() == [] and n.pid() == pid, "enabled online, no restart"
        saved = json.loads(n.state_file.read_text())["ports"]
        assert saved["mqtt"] and saved["stomp"]
        assert f"mqtt.listeners.tcp.1 = {HOST}:{saved['mqtt']}" in config.read_text()
        assert found.mqtt == (HOST, saved["mqtt"]) and found.stomp == (HOST, saved["stomp"])
        listening = {(a, p) for a, p in _listening() if p in (saved["mqtt"], saved["stomp"])}
        assert listening and all(_is_loopback(a) for a, _ in listening), listening


def subprocess_ok(node, *args: str) -> bool:
    import subprocess

    result = subprocess.run(
        node._ctl_argv(*args, script="rabbitmq-plugins"),
        env=node._ctl_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode == 0


@pytest.fixture
def queue(broker: Broker):
    params = broker.connection_parameters()
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=PREFIX + "in", durable=True)
        channel.queue_bind(queue=PREFIX + "in", exchange="amq.topic", routing_key="test.p09.#")
    yield PREFIX + "in"
    with pika.BlockingConnection(params) as connection:
        connection.channel().queue_delete(queue=PREFIX + "in")


def test_one_diagram_shows_the_programs_of_every_protocol(broker: Broker, queue: str):
    with FlowDiagram(broker, prefix=(PREFIX,)) as diagram:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="test.p09.sensor",
            protocol=mqtt.MQTTv5 if demo.mqtt5(broker) else mqtt.MQTTv311,
        )
        client.username_pw_set(broker.username, broker.password)
        if demo.mqtt5(broker):
            session = Properties(PacketTypes.CONNECT)
            session.SessionExpiryInterval = 0
            client.connect(*broker.mqtt, clean_start=True, properties=session)
        else:
            client.connect(*broker.mqtt)
        client.loop_start()
        try:
            client.publish("test/p09/kitchen/temp", b"mqtt", qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        talker = stomp.Connection12([broker.stomp], vhost=broker.vhost, heartbeats=(0, 0))
        talker.connect(broker.username, broker.password, wait=True)
        talker.send(f"/amq/queue/{queue}", body="stomp", headers={"receipt": "r1"})
        time.sleep(0.3)
        talker.disconnect()
        expected = {"MQTT", "STOMP 1.2"}
        if demo.version(broker) >= (4, 0):
            from rabbitmq_amqp_python_client import Environment, Message

            with Environment(uri=demo.amqp10_uri(broker)) as environment:
                connection = environment.connection()
                connection.dial()
                publisher = connection.publisher(f"/queues/{queue}")
                publisher.publish(Message(body=b"amqp 1.0"))
                publisher.close()
                connection.close()
            expected.add("AMQP 1-0")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            diagram.wait_until_caught_up()
            if diagram.state.totals()["published"] >= len(expected):
                break
            time.sleep(0.2)
        state = diagram.state
        producers = {conn for conn, _channel in state.producers}
        programs = {state.clients.program(conn) for conn in producers}
        nodes = {state.clients.node(conn) for conn in producers}
    assert state.totals()["published"] == len(expected), state.totals()
    for protocol in expected:
        assert any(f" · {protocol}" in p for p in programs), (protocol, programs)
    if demo.version(broker) >= (4, 0):  # 3.10's event leaves the client id out
        assert "test.p09.sensor · MQTT 5-0" in programs, programs
    assert nodes == {broker.node.name}, nodes
