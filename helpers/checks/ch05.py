"""Self-check for chapter 05 (acknowledgements): park a poison message in a dead-letter queue.

The exercise: `ch05.ex.orders` dead-letters to the exchange `ch05.ex.dlx`, which feeds
`ch05.ex.parked`; the learner publishes three orders and one `poison`, acks the orders and
rejects `poison` without requeueing it. The check reads what the broker really holds: the
queue's arguments and live counts through the management API, and the messages themselves
(taken with `basic_get` and put back when the check's connection closes, so checking twice
gives the same answer).

The typical mistakes get a hint each: `basic_nack(tag)` or `basic_reject(tag)` without
`requeue=False` (the poison message goes back into the queue, again and again), orders that
were never acked (the broker puts them back when the learner's connection closes), and a
queue declared without its dead-letter exchange.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pika

from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.broker import Broker

ORDERS = "ch05.ex.orders"
DLX = "ch05.ex.dlx"
PARKED = "ch05.ex.parked"
POISON = b"poison"
LOOK_AT = 20  # messages read from a queue at most, to name what is in it


def _queue_rows(broker: Broker) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in broker.management.queue_totals(broker.vhost)}


def _orders_row(broker: Broker, orders: str, wait_s: float) -> dict[str, Any] | None:
    """The orders queue's row, once a consumer that just went away has handed its messages
    back (the broker requeues them a moment after the learner's connection closes)."""
    deadline = time.monotonic() + wait_s
    row = _queue_rows(broker).get(orders)
    while row is not None and row["messages_unacknowledged"] and time.monotonic() < deadline:
        time.sleep(0.05)
        row = _queue_rows(broker).get(orders)
    return row


def _settled_rows(broker: Broker, parked: str, wait_s: float) -> dict[str, dict[str, Any]]:
    """Queue rows once `parked` has a message: dead-lettering happens after the reject returns."""
    deadline = time.monotonic() + wait_s
    rows = _queue_rows(broker)
    while time.monotonic() < deadline and rows.get(parked, {}).get("messages", 1) == 0:
        time.sleep(0.05)
        rows = _queue_rows(broker)
    return rows


def _look(broker: Broker, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Bodies and first x-death entries of the ready messages of `queue`, left in place.

    They are fetched without an ack; closing the connection puts them back in their order.
    """
    found = []
    params = broker.connection_parameters(client_properties={"connection_name": "ch05.check"})
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        for _i in range(LOOK_AT):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            deaths = (properties.headers or {}).get("x-death") or [{}]
            found.append((body, deaths[0]))
    return found


def check_exercise(
    broker: Broker,
    orders: str = ORDERS,
    dlx: str = DLX,
    parked: str = PARKED,
    wait_s: float = 3.0,
) -> CheckResult:
    """Pass when every order was answered and only `poison` sits in the parking queue.

    The names are parameters so the unit tests can run the same check on their own queues.
    """
    queue = _orders_row(broker, orders, min(wait_s, 1.0))
    if queue is None:
        return hint(
            _(
                "There is no queue named {orders!r} yet: write your code in the cell above "
                "(inside `with pika.BlockingConnection(params) as connection:`) and run it."
            ).format(orders=orders)
        )
    if (queue.get("arguments") or {}).get("x-dead-letter-exchange") != dlx:
        return hint(
            _(
                "{orders!r} has no dead-letter exchange {dlx!r}: delete the queue and declare it "
                "again with durable=True, arguments={{'x-dead-letter-exchange': ...}}."
            ).format(orders=orders, dlx=dlx)
        )
    if queue["messages_unacknowledged"]:
        return hint(
            _(
                "{messages_unacknowledged} message(s) in {orders!r} are delivered but neither "
                "acked nor rejected: every delivery needs exactly one answer."
            ).format(messages_unacknowledged=queue['messages_unacknowledged'], orders=orders)
        )
    if queue["messages_ready"]:
        return hint(_waiting_hint(broker, orders, queue["messages_ready"]))

    rows = _settled_rows(broker, parked, wait_s)
    parking = rows.get(parked)
    if parking is None:
        return hint(_(
            "There is no queue named {parked!r}: declare it and bind it to {dlx!r}."
        ).format(parked=parked, dlx=dlx))
    if parking["messages"] == 0:
        return hint(
            _(
                "{parked!r} is empty: reject the poison message with requeue=False, and check "
                "that {dlx!r} exists and {parked!r} is bound to it."
            ).format(parked=parked, dlx=dlx)
        )
    if parking["messages"] > 1:
        return hint(
            _(
                "{parked!r} holds {messages} messages, but only the poison message belongs there: "
                "ack the good orders (and start your cell by deleting the queues, so that a "
                "second run does not add to the first)."
            ).format(parked=parked, messages=parking['messages'])
        )
    seen = _look(broker, parked)
    if not seen:
        return hint(_(
            "The message in {parked!r} is held by a consumer: close your channels."
        ).format(parked=parked))
    body, death = seen[0]
    if body != POISON:
        return hint(_(
            "{parked!r} holds {body!r}; it should hold {POISON!r}."
        ).format(parked=parked, body=body, POISON=POISON))
    if death.get("reason") != "rejected" or death.get("queue") != orders:
        return hint(
            _(
                "The parked message died for reason {value!r} in {value2!r}; it should be "
                "rejected from {orders!r}."
            ).format(value=death.get('reason'), value2=death.get('queue'), orders=orders)
        )
    return passed(
        _(
            "Every order was answered and the poison message is parked in {parked!r}, "
            "dead-lettered from {orders!r} with reason 'rejected'."
        ).format(parked=parked, orders=orders)
    )


def _waiting_hint(broker: Broker, orders: str, ready: int) -> str:
    """Messages wait in the orders queue: say which, and the likely reason."""
    bodies = [body for body, _death in _look(broker, orders)]
    named = ", ".join(repr(b.decode(errors="replace")) for b in bodies[:5])
    if len(bodies) > 5:
        named += ", ..."
    if bodies and bodies[0] == POISON:
        behind = (
            _(", holding up {more} more behind it").format(more=len(bodies) - 1)
            if len(bodies) > 1
            else ""
        )
        return (
            _(
                "'poison' is back in {orders!r}, first in line{behind}: basic_nack and "
                "basic_reject put a message back into its queue unless you pass requeue=False "
                "(requeue=True is their default), so it came straight back, again and again. "
                "Reject it with requeue=False, and the dead-letter exchange parks it."
            ).format(orders=orders, behind=behind)
        )
    if POISON not in bodies and bodies:
        return (
            _(
                "{ready} message(s) wait in {orders!r} ({named}): if your loop received them, it "
                "never acked them, and the broker put them back when your connection closed. "
                "basic_ack each order once its work is done."
            ).format(ready=ready, orders=orders, named=named)
        )
    return (
        _(
            "{ready} message(s) still wait in {orders!r} ({named}): consume all four (a loop over "
            "deliveries(channel, {orders!r})), ack the orders and reject the poison message with "
            "requeue=False."
        ).format(ready=ready, orders=orders, named=named)
    )
