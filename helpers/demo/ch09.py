"""Chapter 09's harness: which protocols the broker speaks, and small printouts.

The chapter's own cells hold every client call it teaches (paho-mqtt, stomp-py, Team
RabbitMQ's AMQP 1.0 client and pika); this module only answers "does the broker speak it?"
in one line, reads what the management API lists, and bounds an AMQP 1.0 read with a timeout
(the client's `Consumer.run()` has none of its own).

Facts checked on RabbitMQ 4.3.6 and 3.10.8 (paho-mqtt 2.2.0, stomp-py 9.0.0,
rabbitmq-amqp-python-client 1.0.1): the management API names the protocols "MQTT 5-0"
("MQTT 3.1.1" on 3.10, which has no MQTT 5), "STOMP 1.2" and "AMQP 1-0"; the MQTT plugin
declares `mqtt-subscription-<client id>qos0` (type `rabbit_mqtt_qos0_queue` on 4.3, a classic
queue on 3.10) and `...qos1` (classic) per subscribing client, deleted with a clean session.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.broker import Broker

ENABLE = "rabbitmq-plugins enable {plugin}"
MQTT_QUEUE = "mqtt-subscription-"
STOMP_QUEUE = "stomp-subscription-"


def version(broker: Broker) -> tuple[int, int]:
    """The broker's (major, minor) version, e.g. (4, 3)."""
    numbers = re.findall(r"\d+", broker.version)[:2]
    return (int(numbers[0]), int(numbers[1])) if len(numbers) == 2 else (0, 0)


def mqtt5(broker: Broker) -> bool:
    """Whether the broker speaks MQTT 5.0 (RabbitMQ 3.13 and newer; 3.10-3.12: MQTT 3.1.1)."""
    return version(broker) >= (3, 13)


def missing(broker: Broker, protocol: str) -> str:
    """One line: what this broker lacks for `protocol` and how to get it; "" when it has it."""
    if protocol == "mqtt" and broker.mqtt is None:
        return _(
            "No MQTT listener on {host}: this section needs the MQTT plugin "
            "(`{command}`, port 1883); skipped."
        ).format(host=broker.host, command=ENABLE.format(plugin="rabbitmq_mqtt"))
    if protocol == "stomp" and broker.stomp is None:
        return _(
            "No STOMP listener on {host}: this section needs the STOMP plugin "
            "(`{command}`, port 61613); skipped."
        ).format(host=broker.host, command=ENABLE.format(plugin="rabbitmq_stomp"))
    if protocol == "amqp10" and version(broker) < (4, 0):
        return _(
            "This broker runs RabbitMQ {version}: Team RabbitMQ's AMQP 1.0 client "
            "needs RabbitMQ 4.0 or newer, where AMQP 1.0 is built in; skipped."
        ).format(version=broker.version)
    return ""


def ready(broker: Broker, protocol: str) -> bool:
    """True when the broker speaks `protocol`; else print the line that says what is missing."""
    line = missing(broker, protocol)
    if line:
        print(line)
    return not line


def shown_name(name: str) -> str:
    """A queue name with its random part replaced, so printouts stay the same every run."""
    if name.startswith(STOMP_QUEUE):
        return STOMP_QUEUE + "…"
    return name


def queues_named(broker: Broker, *starts: str) -> list[dict[str, Any]]:
    """The vhost's queues whose names start with one of `starts`, as the API lists them."""
    return sorted(
        (q for q in broker.management.queues(broker.vhost) if q["name"].startswith(starts)),
        key=lambda q: q["name"],
    )


def describe_queue(queue: dict[str, Any]) -> str:
    """A queue's name, type and flags, as the management API reports them."""
    flags = [f for f in ("durable", "exclusive", "auto_delete") if queue.get(f)]
    return f"{shown_name(queue['name'])}: type {queue.get('type')}, " + (
        ", ".join(flags) or "transient"
    )


def bindings_to(broker: Broker, queue: str) -> list[tuple[str, str]]:
    """(exchange, routing key) of each binding into `queue`, the default exchange's left out."""
    return sorted(
        (b["source"], b["routing_key"])
        for b in broker.management.bindings(broker.vhost)
        if b["destination"] == queue and b["source"]
    )


def amqp10_uri(broker: Broker) -> str:
    """The broker's address for Team RabbitMQ's AMQP 1.0 client (it holds the password)."""
    from rabbitmq_amqp_python_client import AmqpUri

    scheme = "amqps" if broker.tls else "amqp"
    return AmqpUri(
        schema=scheme,
        host=broker.host,
        port=broker.port,
        user=broker.username,
        password=broker.password,
        vhost=broker.vhost,
    ).to_uri()


class Stop(Exception):
    """Raise it in an AMQP 1.0 message handler to end `Consumer.run()` (as Ctrl+C does)."""


def run_for(consumer: Any, seconds: float) -> None:
    """`consumer.run()`, ended by a `Stop` from its handler or after `seconds` at the latest
    (the client's run() has no timeout of its own)."""
    from rabbitmq_amqp_python_client.qpid.proton.handlers import MessagingHandler

    class Timeout(MessagingHandler):
        def on_timer_task(self, event: Any) -> None:
            raise Stop()

    task = consumer._receiver.container.schedule(seconds, Timeout())
    try:
        consumer.run()
    except Stop:
        pass
    finally:
        task.cancel()
