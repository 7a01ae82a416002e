"""Self-check for chapter 05 (acknowledgements): park a poison message in a dead-letter queue.

The exercise: `ch05.ex.orders` dead-letters to the exchange `ch05.ex.dlx`, which feeds
`ch05.ex.parked`; the learner publishes three orders and one `poison`, acks the orders and
rejects `poison` without requeueing it. The check reads what the broker really holds: the
queue's arguments and live counts through the management API, and the parked message
itself (taken with `basic_get` and put back with `basic_nack(requeue=True)`, so checking
twice gives the same answer).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pika

from helpers.checks import CheckResult, hint, passed

if TYPE_CHECKING:
    from helpers.broker import Broker

ORDERS = "ch05.ex.orders"
DLX = "ch05.ex.dlx"
PARKED = "ch05.ex.parked"
POISON = b"poison"


def _queue_rows(broker: Broker) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in broker.management.queue_totals(broker.vhost)}


def _settled_rows(broker: Broker, parked: str, wait_s: float) -> dict[str, dict[str, Any]]:
    """Queue rows once `parked` has a message: dead-lettering happens after the reject returns."""
    deadline = time.monotonic() + wait_s
    rows = _queue_rows(broker)
    while time.monotonic() < deadline and rows.get(parked, {}).get("messages", 0) == 0:
        time.sleep(0.05)
        rows = _queue_rows(broker)
    return rows


def _peek(broker: Broker, queue: str) -> tuple[bytes, dict[str, Any]] | None:
    """Body and first x-death entry of the message at the head of `queue`, left in place."""
    params = broker.connection_parameters()
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return None
        channel.basic_nack(method.delivery_tag, requeue=True)  # put it back for the next check
        deaths = (properties.headers or {}).get("x-death") or [{}]
        return body, deaths[0]


def check_parking(
    broker: Broker,
    orders: str = ORDERS,
    dlx: str = DLX,
    parked: str = PARKED,
    wait_s: float = 3.0,
) -> CheckResult:
    """Pass when every order was answered and only `poison` sits in the parking queue.

    The names are parameters so the unit tests can run the same check on their own queues.
    """
    rows = _settled_rows(broker, parked, wait_s)
    queue = rows.get(orders)
    if queue is None:
        return hint(f"There is no queue named {orders!r} yet: declare it (and run your cell).")
    if (queue.get("arguments") or {}).get("x-dead-letter-exchange") != dlx:
        return hint(
            f"{orders!r} has no dead-letter exchange {dlx!r}: delete the queue and declare it "
            "again with durable=True, arguments={'x-dead-letter-exchange': ...}."
        )
    if queue["messages_unacknowledged"]:
        return hint(
            f"{queue['messages_unacknowledged']} message(s) in {orders!r} are delivered but "
            "neither acked nor rejected: every delivery needs exactly one answer."
        )
    if queue["messages_ready"]:
        return hint(
            f"{queue['messages_ready']} message(s) still wait in {orders!r}: consume all four "
            "(did you requeue something?)."
        )
    parking = rows.get(parked)
    if parking is None:
        return hint(f"There is no queue named {parked!r}: declare it and bind it to {dlx!r}.")
    if parking["messages"] == 0:
        return hint(
            f"{parked!r} is empty: reject the poison message with requeue=False, and check that "
            f"{dlx!r} exists and {parked!r} is bound to it."
        )
    if parking["messages"] > 1:
        return hint(
            f"{parked!r} holds {parking['messages']} messages, but only the poison message "
            "belongs there: ack the good orders (run the reset cell first if you ran the "
            "exercise twice)."
        )
    peeked = _peek(broker, parked)
    if peeked is None:
        return hint(f"The message in {parked!r} is held by a consumer: close your channels.")
    body, death = peeked
    if body != POISON:
        return hint(f"{parked!r} holds {body!r}; it should hold {POISON!r}.")
    if death.get("reason") != "rejected" or death.get("queue") != orders:
        return hint(
            f"The parked message died for reason {death.get('reason')!r} in "
            f"{death.get('queue')!r}; it should be rejected from {orders!r}."
        )
    return passed(
        f"Every order was answered and the poison message is parked in {parked!r}, "
        f"dead-lettered from {orders!r} with reason 'rejected'."
    )
