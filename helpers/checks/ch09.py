"""Self-check for chapter 09 (protocols): a pika queue for the alarms MQTT sensors publish.

The exercise asks for a durable queue `ch09.exercise.alarms`, bound to `amq.topic` so that it
receives every MQTT publish to `ch09/exercise/<room>/alarm` (any one room) and nothing else.
The check publishes test messages over MQTT (over AMQP 0-9-1 to `amq.topic` with the same
routing keys where the broker has no MQTT listener) and looks at which of them the broker put
in the queue; the bindings are read only to word the hint.

Typical mistakes, each with its own hint: the binding key written the MQTT way
(`ch09/exercise/+/alarm`: the broker has already rewritten topics with dots), the queue bound
to another exchange than `amq.topic`, `#` where `*` is meant (`ch09/exercise/alarm` gets in),
and a binding left from an earlier attempt (the cell did not start by deleting the queue).
It judges the latest attempt: it empties the queue before it publishes, and reads back only
its own test messages.
"""

from __future__ import annotations

import threading
import time

import pika

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

QUEUE = "ch09.exercise.alarms"
EXCHANGE = "amq.topic"  # where MQTT publishes go
CONNECTION_NAME = "ch09.check"
# MQTT topic -> whether the queue must receive it.
PROBES: dict[str, bool] = {
    "ch09/exercise/kitchen/alarm": True,
    "ch09/exercise/hall/alarm": True,
    "ch09/exercise/kitchen/temp": False,
    "ch09/exercise/alarm": False,
    "ch09/exercise/hall/door/alarm": False,
    "ch09/elsewhere/kitchen/alarm": False,
}
WAIT_S = 5.0


def routing_key(topic: str) -> str:
    """What the MQTT plugin makes of a topic on amq.topic: each `/` becomes a `.` (a `.`
    stays one, so it is a word boundary too)."""
    return topic.replace("/", ".")


def check_exercise(broker: Broker, queue: str = QUEUE) -> CheckResult:
    """Publish the probes as MQTT messages and compare what reached the learner's queue."""
    api = broker.management
    if not any(q["name"] == queue for q in api.queues(broker.vhost)):
        return hint(
            _(
                "There is no queue named {queue!r} yet: declare it (durable) in the cell above, "
                "inside `with pika.BlockingConnection(params) as connection:`, and run that cell."
            ).format(queue=queue)
        )
    bindings = [
        (b["source"], b["routing_key"])
        for b in api.bindings(broker.vhost)
        if b["destination"] == queue and b["source"]
    ]
    topic_keys = [key for source, key in bindings if source == EXCHANGE]
    mqtt_spelled = [key for key in topic_keys if "/" in key or "+" in key]
    if mqtt_spelled:
        return hint(
            _(
                "The binding key {v_0!r} is written the MQTT way. On amq.topic the broker has "
                "already turned each `/` of a topic into `.`, and a binding key's one-word "
                "wildcard is `*`, not `+`."
            ).format(v_0=mqtt_spelled[0])
        )
    if not topic_keys:
        other = ", ".join(sorted({source for source, _key in bindings}))
        where = (
            _("it is bound to {other} only").format(other=other)
            if other
            else _("it has no binding")
        )
        return hint(
            _(
                "{queue} receives nothing from MQTT: {where}. MQTT clients publish to the "
                "exchange amq.topic: bind the queue there."
            ).format(queue=queue, where=where)
        )
    if len(topic_keys) > 1:
        return hint(
            _(
                "{queue} has {n_topic_keys} bindings on amq.topic ({value}): one is left from an "
                "earlier attempt. Start the cell with `channel.queue_delete(queue=...)`, then "
                "declare and bind once."
            ).format(
                queue=queue,
                n_topic_keys=len(topic_keys),
                value=', '.join(sorted(topic_keys)),
            )
        )
    received = _publish_probes(broker, queue)
    key = topic_keys[0]
    for topic, wanted in PROBES.items():
        if wanted and topic not in received:
            return hint(
                _(
                    "A message to the MQTT topic {topic!r} (routing key {value!r}) did not reach "
                    "{queue}: check the binding key {key!r} word by word."
                ).format(topic=topic, value=routing_key(topic), queue=queue, key=key)
            )
        if not wanted and topic in received:
            if "#" in key:
                why = _("`#` matches any number of words, none included: use `*`, exactly one")
            else:
                why = _("the binding key {key!r} matches it").format(key=key)
            return hint(_(
                "{queue} also received {topic!r}, which is no room's alarm: {why}."
            ).format(queue=queue, topic=topic, why=why))
    return passed(
        _(
            "{queue} receives every room's alarm and nothing else: binding key {key!r} on "
            "amq.topic, the MQTT filter `ch09/exercise/+/alarm` spelt the AMQP way."
        ).format(queue=queue, key=key)
    )


def _publish_probes(broker: Broker, queue: str) -> set[str]:
    """Empty the queue, publish every probe (over MQTT when the broker speaks it), and return
    the topics the queue then holds (taken out of it)."""
    params = broker.connection_parameters(client_properties={"connection_name": CONNECTION_NAME})
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_purge(queue=queue)
        if broker.mqtt is None or not _publish_mqtt(broker):
            channel.confirm_delivery()
            for topic in PROBES:
                channel.basic_publish(EXCHANGE, routing_key(topic), topic.encode())
        # Every probe was confirmed (PUBACK or publisher confirm), so it is in the queue now.
        received = set()
        while True:
            method, _properties, body = channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                return received
            received.add(body.decode(errors="replace"))


def _publish_mqtt(broker: Broker) -> bool:
    """Publish the probes with QoS 1 over MQTT and wait for every PUBACK; False when the
    broker would not take them (the caller then publishes over AMQP 0-9-1)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from helpers.demo.ch09 import mqtt5

    v5 = mqtt5(broker)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=CONNECTION_NAME,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    user = broker.username if broker.vhost == "/" else f"{broker.vhost}:{broker.username}"
    client.username_pw_set(user, broker.password)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    try:
        host, port = broker.mqtt
        if v5:
            session = Properties(PacketTypes.CONNECT)
            session.SessionExpiryInterval = 0
            client.connect(host, port, clean_start=True, properties=session)
        else:
            client.connect(host, port)
        client.loop_start()
        if not connected.wait(WAIT_S) or not client.is_connected():
            return False
        sent = [client.publish(topic, topic.encode(), qos=1) for topic in PROBES]
        deadline = time.monotonic() + WAIT_S
        for info in sent:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        return all(info.is_published() for info in sent)
    except (OSError, RuntimeError, ValueError):
        return False
    finally:
        client.disconnect()
        client.loop_stop()
