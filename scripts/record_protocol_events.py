"""Record what the event exchange and the management API say about MQTT, STOMP and AMQP 1.0
clients, for the unit tests of the diagram's protocol labels (tests/unit/test_protocol_labels.py).

Run it against a node of your own that nothing else uses (a throwaway TUTORIAL_NODE_DIR: the
recording takes every connection event of the node), with the MQTT and STOMP plugins on:

    TUTORIAL_BROKER=private TUTORIAL_RABBITMQ=reference TUTORIAL_NODE_DIR=/tmp/rec-node \\
      .venv/bin/python scripts/record_protocol_events.py
    TUTORIAL_BROKER=private TUTORIAL_RABBITMQ=system TUTORIAL_NODE_DIR=/tmp/rec-sys-node \\
      .venv/bin/python scripts/record_protocol_events.py

Scenario: an MQTT client `rec.mqtt` connects (MQTT 5 where the broker has it, else 3.1.1),
subscribes and disconnects; a STOMP 1.2 client connects and disconnects; on 4.x an AMQP 1.0
client (Team RabbitMQ's) connects and closes. The connection events (routing key and headers,
`$`-tagged as in scripts/record_flow_cases.py) and the API's connections, read while all three
are open, go to tests/unit/data/protocols-<major.minor>.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pika
import stomp
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_flow_cases import DATA, encode  # noqa: E402

from helpers.broker import find_broker  # noqa: E402
from helpers.demo.ch09 import amqp10_uri, mqtt5, version  # noqa: E402

KEEP = ("name", "protocol", "node", "client_properties", "user_provided_name", "vhost")


def main() -> None:
    broker = find_broker(start=False, progress=None)
    assert broker.mqtt and broker.stomp, "the node needs the MQTT and STOMP plugins"
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "amq.rabbitmq.event", "connection.*")

        v5 = mqtt5(broker)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="rec.mqtt",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        client.username_pw_set(broker.username, broker.password)
        if v5:
            session = Properties(PacketTypes.CONNECT)
            session.SessionExpiryInterval = 0
            client.connect(*broker.mqtt, clean_start=True, properties=session)
        else:
            client.connect(*broker.mqtt)
        client.loop_start()
        talker = stomp.Connection12([broker.stomp], vhost=broker.vhost, heartbeats=(0, 0))
        talker.connect(broker.username, broker.password, wait=True)
        amqp10 = None
        if version(broker) >= (4, 0):
            from rabbitmq_amqp_python_client import Environment

            amqp10 = Environment(uri=amqp10_uri(broker))
            amqp10.connection().dial()
        time.sleep(1.5)  # the API lists connections from statistics, about once a second
        listed = [
            {k: c.get(k) for k in KEEP}
            for c in broker.management.connections()
            if c.get("protocol") != "AMQP 0-9-1"
        ]
        client.disconnect()
        client.loop_stop()
        talker.disconnect()
        if amqp10 is not None:
            amqp10.close()
        time.sleep(1)
        events = []
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            if (properties.headers or {}).get("protocol") in ("{0,9,1}", None) and (
                method.routing_key == "connection.created"
            ):
                continue  # pika's own
            events.append({"key": method.routing_key, "headers": encode(properties.headers)})
    major_minor = ".".join(str(n) for n in version(broker))
    path = DATA / f"protocols-{major_minor}.json"
    document = {"rabbitmq": broker.version, "events": events, "api_connections": listed}
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(events)} events, {len(listed)} connections")


if __name__ == "__main__":
    main()
