"""Programs of other protocols in the diagram (chapter 09): their protocol and node, from what
RabbitMQ 4.3.6 and 3.10.8 said about MQTT, STOMP and AMQP 1.0 clients (recorded by
scripts/record_protocol_events.py), and MQTT topics beside routing keys. No broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from recorded import DATA, decode_headers

from helpers.flow.clients import Clients
from helpers.flow.lifecycle import EventJoiner, client_id, protocol_name
from helpers.flow.state import FlowState
from helpers.flow.topology import Binding, Exchange, Queue, Topology, topology_from_api
from helpers.view.text import binding_label, mqtt_topic

VERSIONS = ("3.10", "4.3")


def recording(version: str) -> dict[str, Any]:
    document = json.loads((DATA / f"protocols-{version}.json").read_text(encoding="utf-8"))
    for event in document["events"]:
        event["headers"] = decode_headers(event["headers"])
    return document


def _created(version: str) -> list:
    joiner = EventJoiner()
    found = [joiner.feed(e["key"], e["headers"], "/") for e in recording(version)["events"]]
    return [e for e in found if e is not None and e.kind == "connection.created"]


@pytest.mark.parametrize("version", VERSIONS)
def test_events_name_the_protocol_as_the_api_does(version):
    document = recording(version)
    api = {c["name"]: c for c in document["api_connections"]}
    created = _created(version)
    assert {e.connection for e in created} == set(api), "one event per connection the API lists"
    for event in created:
        listed = api[event.connection]
        assert event.protocol == listed["protocol"]
        assert event.node == listed["node"] and event.node
    protocols = {e.protocol for e in created}
    expected = {"4.3": {"MQTT 5-0", "STOMP 1.2", "AMQP 1-0"}, "3.10": {"MQTT 3.1.1", "STOMP 1.2"}}
    assert protocols == expected[version]


def test_an_mqtt_client_is_named_by_its_client_id():
    (mqtt_event,) = [e for e in _created("4.3") if e.protocol.startswith("MQTT")]
    assert mqtt_event.name == "rec.mqtt"
    # 3.10 leaves the client id out of the event; the API's listing has it.
    topology = topology_from_api([], [], [], [], recording("3.10")["api_connections"])
    assert "rec.mqtt" in {label for _conn, label in topology.connections}


@pytest.mark.parametrize(
    ("term", "name"),
    [
        ("{0,9,1}", "AMQP 0-9-1"),
        ("{1,0}", "AMQP 1-0"),
        ("{'MQTT',{5,0}}", "MQTT 5-0"),
        ("{'MQTT',\"3.1.1\"}", "MQTT 3.1.1"),
        ("{'STOMP',\"1.2\"}", "STOMP 1.2"),
        ("something new", "something new"),
    ],
)
def test_protocol_names(term, name):
    assert protocol_name(term) == name


def test_client_id_from_client_properties():
    assert client_id(['{client_id,longstr,<<"dev-7">>}']) == "dev-7"
    assert client_id(['{<<"product">>,longstr,<<"STOMP client">>}']) == ""
    assert client_id(None) == ""


@pytest.mark.parametrize("version", VERSIONS)
def test_programs_carry_their_protocol_and_node(version):
    clients = Clients()
    for event in _created(version):
        clients.apply(event, 0.0)
    for event in _created(version):
        program = clients.program(event.connection)
        assert program.endswith(f" · {event.protocol}"), program
        assert clients.protocol(event.connection) == event.protocol
        assert clients.node(event.connection) == event.node
    if version == "4.3":
        mqtt = next(e for e in _created(version) if e.protocol == "MQTT 5-0")
        assert clients.program(mqtt.connection) == "rec.mqtt · MQTT 5-0"


def test_pika_programs_keep_their_plain_name():
    clients = Clients()
    topology = topology_from_api(
        [],
        [],
        [],
        [],
        [
            {
                "name": "127.0.0.1:1 -> 127.0.0.1:5672",
                "protocol": "AMQP 0-9-1",
                "node": "rabbit@a",
                "client_properties": {"connection_name": "ch09.protocols"},
            }
        ],
    )
    clients.note_topology(topology, 0.0, set())
    assert clients.program("127.0.0.1:1 -> 127.0.0.1:5672") == "ch09.protocols"
    assert clients.node("127.0.0.1:1 -> 127.0.0.1:5672") == "rabbit@a"


def test_mqtt_topics_beside_routing_keys():
    assert mqtt_topic("ch09.sensors.*.temp") == "ch09/sensors/+/temp"
    assert mqtt_topic("ch09.#") == "ch09/#"
    state = FlowState(("ch09.", "mqtt-subscription-ch09."))
    state.topology = Topology(
        exchanges=(Exchange("amq.topic", "topic"),),
        queues=(Queue("mqtt-subscription-ch09.displayqos1"), Queue("ch09.readings")),
    )
    to_mqtt = Binding("amq.topic", "mqtt-subscription-ch09.displayqos1", "queue", "ch09.alerts.*")
    to_pika = Binding("amq.topic", "ch09.readings", "queue", "ch09.sensors.#")
    assert binding_label(state, to_mqtt) == "ch09.alerts.* (MQTT ch09/alerts/+)"
    assert binding_label(state, to_pika) == "ch09.sensors.#"
