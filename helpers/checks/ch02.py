"""Self-check for chapter 02 (producer): one order published so that it survives a restart.

The exercise asks for a durable queue holding exactly one JSON order, sent as a persistent
message with a content type and a message id. The check reads the real queue: its
durability from the management API, the message itself with `basic_get`, which it then
hands back to the queue (`basic_nack(requeue=True)`), so checking twice gives the same answer.
"""

from __future__ import annotations

import json

import pika
import pika.exceptions

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed

QUEUE = "ch02.exercise.orders"
ORDER = {"order_id": 42, "item": "book"}
MESSAGE_ID = "order-42"
CONTENT_TYPE = "application/json"


def check_exercise(broker: Broker, queue: str = QUEUE) -> CheckResult:
    """Does `queue` hold one persistent JSON order that a broker restart would not lose?"""
    info = broker.management.queue(queue, broker.vhost)
    if info is None:
        return hint(f"There is no queue named {queue!r} yet: declare it (durable=True).")
    if not info.get("durable"):
        return hint(
            f"{queue!r} is not durable, so a restart would delete it with its messages: "
            "delete it and declare it again with durable=True."
        )
    connection = pika.BlockingConnection(_params(broker))
    try:
        channel = connection.channel()
        count = channel.queue_declare(queue=queue, passive=True).method.message_count
        if count == 0:
            return hint(f"{queue!r} is empty: publish the order to it (exchange='').")
        if count > 1:
            return hint(
                f"{queue!r} holds {count} messages, but the exercise wants exactly one: "
                "purge it (channel.queue_purge) and publish the order once."
            )
        method, properties, body = channel.basic_get(queue=queue, auto_ack=False)
        if method is None:  # a consumer of the learner's took it in the meantime
            return hint(f"{queue!r} had a message but it was taken: stop other consumers.")
        channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
    finally:
        connection.close()
    return _judge(properties, body)


def _judge(properties: pika.BasicProperties, body: bytes) -> CheckResult:
    """Compare one message with what the exercise asks, one hint at a time."""
    if properties.delivery_mode != pika.DeliveryMode.Persistent.value:
        return hint(
            "The message is transient: a restart would lose it even in a durable queue. "
            "Set delivery_mode=pika.DeliveryMode.Persistent in its properties."
        )
    if properties.content_type != CONTENT_TYPE:
        return hint(
            f"content_type is {properties.content_type!r}: set it to {CONTENT_TYPE!r} so a "
            "consumer knows how to decode the body."
        )
    if properties.message_id != MESSAGE_ID:
        return hint(
            f"message_id is {properties.message_id!r}; the exercise asks for {MESSAGE_ID!r}."
        )
    try:
        order = json.loads(body)
    except ValueError:
        return hint(f"The body is not JSON ({body[:40]!r}): send json.dumps(order).")
    if order != ORDER:
        return hint(f"The body decodes to {order!r}, but the order is {ORDER!r}.")
    return passed(
        "One persistent JSON order (order-42) waits in a durable queue: it would survive a "
        "broker restart."
    )


def _params(broker: Broker) -> pika.ConnectionParameters:
    return broker.connection_parameters(
        client_properties={"connection_name": "ch02.check"},
    )
