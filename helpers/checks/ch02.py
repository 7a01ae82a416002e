"""Self-check for chapter 02 (producer): orders published so that none is lost unnoticed.

The exercise gives five orders and a queue with room for three that refuses more
(`x-max-length` 3, `x-overflow: reject-publish`). The learner declares it durable with that
limit, publishes every order as a persistent JSON message on a channel in confirm mode, and
collects in `refused` the orders the broker refused (`NackError`).

Whether confirm mode was used is observable: without it `basic_publish` never fails, so
`refused` stays empty while the queue holds only three of the five orders. The check reads
the real queue (its durability and arguments from the management API, its messages with
`basic_get` without acknowledging them, so they go back when the check's connection closes)
and compares what it holds with `refused`. Checking twice gives the same answer.

The latest attempt: the exercise's cell starts by deleting the queue, so the queue holds what
its last run published, and `refused` is what that run collected. A cell run again without
deleting the queue leaves the earlier run's messages in it; the check says so before it
judges any message, so that its hint is about the latest run and not about an earlier one's
messages. Two signs give it away: `refused` names orders the queue holds (the full queue
refused this run's copies), or the queue holds messages an earlier check has read (the broker
marks them `redelivered` when the check's connection puts them back) beside ones no check has
read yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pika
import pika.exceptions

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

QUEUE = "ch02.exercise.orders"
ROOM = 3
ARGUMENTS = {"x-max-length": ROOM, "x-overflow": "reject-publish"}
ORDERS: tuple[dict, ...] = (
    {"order_id": 41, "item": "book"},
    {"order_id": 42, "item": "lamp"},
    {"order_id": 43, "item": "pen"},
    {"order_id": 44, "item": "mug"},
    {"order_id": 45, "item": "map"},
)
CONTENT_TYPE = "application/json"
_IDS = [order["order_id"] for order in ORDERS]


def message_id(order: dict) -> str:
    return f"order-{order['order_id']}"


def check_exercise(broker: Broker, refused: object, queue: str = QUEUE) -> CheckResult:
    """Does `queue` hold the orders the broker took, and does `refused` name the others?"""
    info = broker.management.queue(queue, broker.vhost)
    if info is None:
        return hint(
            _(
                "There is no queue named {queue!r} yet: in the empty cell above, declare it with "
                "durable=True and arguments={ARGUMENTS!r}, then publish the orders."
            ).format(queue=queue, ARGUMENTS=ARGUMENTS)
        )
    if not info.get("durable"):
        return hint(
            _(
                "{queue!r} is not durable, so a restart would delete it with its messages: delete "
                "it (channel.queue_delete) and declare it again with durable=True."
            ).format(queue=queue)
        )
    arguments = info.get("arguments") or {}
    if any(arguments.get(key) != value for key, value in ARGUMENTS.items()):
        return hint(
            _(
                "{queue!r} was declared without the limit {ARGUMENTS!r} (it has {arguments!r}), "
                "so it would take every order and refuse none. Declaring it again with other "
                "arguments fails with 406 PRECONDITION_FAILED: delete it first "
                "(channel.queue_delete), then declare it with those arguments."
            ).format(queue=queue, ARGUMENTS=ARGUMENTS, arguments=arguments)
        )
    messages = _peek(broker, queue)
    if not messages:
        return hint(_(
            "{queue!r} is empty: publish the orders to it (exchange='')."
        ).format(queue=queue))
    earlier = _earlier_run(messages, refused, queue)
    if earlier is not None:
        return earlier
    held: list[int] = []
    for _redelivered, properties, body in messages:
        problem = _judge(properties, body)
        if isinstance(problem, CheckResult):
            return problem
        held.append(problem)
    twice = sorted({i for i in held if held.count(i) > 1})
    if twice:
        return hint(
            _(
                "Order(s) {value} are in {queue!r} more than once: publish each order once. Start "
                "your cell by deleting the queue, so that running it again starts over."
            ).format(value=_ids(twice), queue=queue)
        )
    return _compare(set(held), refused, queue)


def _earlier_run(
    messages: list[tuple[bool, pika.BasicProperties, bytes]], refused: object, queue: str
) -> CheckResult | None:
    """A hint when the queue holds messages of a run before the latest one, else None."""
    held = {order_id for _r, _p, body in messages if (order_id := _order_id(body)) is not None}
    said = _refused_ids(refused) or set()
    both = sorted(held & said)
    if both:
        return hint(
            _(
                "`refused` lists order(s) {value}, but {queue!r} holds them: they were taken by "
                "an earlier run of your cell, and refused this time because the queue was full. "
                "Start your cell by deleting the queue, so that each run starts over."
            ).format(value=_ids(both), queue=queue)
        )
    seen = sum(1 for redelivered, _p, _b in messages if redelivered)
    if 0 < seen < len(messages):
        return hint(
            _(
                "{queue!r} holds {seen} message(s) that an earlier check already read, beside "
                "{value} new one(s): your cell ran again and added to what an earlier run "
                "published. Start your cell by deleting the queue (channel.queue_delete), so that "
                "each run starts over."
            ).format(queue=queue, seen=seen, value=len(messages) - seen)
        )
    return None


def _order_id(body: bytes) -> int | None:
    try:
        order = json.loads(body)
    except ValueError:
        return None
    return order.get("order_id") if isinstance(order, dict) and order in ORDERS else None


def _peek(broker: Broker, queue: str) -> list[tuple[bool, pika.BasicProperties, bytes]]:
    """Every message of `queue` (redelivered?, properties, body), read without an ack:
    closing the connection puts them back, marked redelivered."""
    params = broker.connection_parameters(client_properties={"connection_name": "ch02.check"})
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        count = channel.queue_declare(queue=queue, passive=True).method.message_count
        messages = []
        for _i in range(count):
            method, properties, body = channel.basic_get(queue=queue, auto_ack=False)
            if method is None:  # a consumer of the learner's took it meanwhile
                break
            messages.append((bool(method.redelivered), properties, body))
    return messages


def _judge(properties: pika.BasicProperties, body: bytes) -> CheckResult | int:
    """One message against what the exercise asks: a hint, or the order id it carries."""
    if properties.delivery_mode != pika.DeliveryMode.Persistent.value:
        return hint(
            _(
                "The orders are transient: a restart would lose them even in a durable queue. Set "
                "delivery_mode=pika.DeliveryMode.Persistent in their properties."
            )
        )
    if properties.content_type != CONTENT_TYPE:
        return hint(
            _(
                "content_type is {properties_content_type!r}: set it to {CONTENT_TYPE!r} so a "
                "consumer knows how to decode the body."
            ).format(properties_content_type=properties.content_type, CONTENT_TYPE=CONTENT_TYPE)
        )
    try:
        order = json.loads(body)
    except ValueError:
        return hint(_(
            "A body is not JSON ({value!r}): send json.dumps(order)."
        ).format(value=body[:40]))
    if order not in ORDERS:
        return hint(_(
            "A body decodes to {order!r}, which is none of the orders in ORDERS."
        ).format(order=order))
    if properties.message_id != message_id(order):
        return hint(
            _(
                "The message_id of order {order_id} is {properties_message_id!r}; the exercise "
                "asks for {value!r} (f\"order-{{order['order_id']}}\")."
            ).format(
                order_id=order['order_id'],
                properties_message_id=properties.message_id,
                value=message_id(order),
            )
        )
    return order["order_id"]


def _compare(held: set[int], refused: object, queue: str) -> CheckResult:
    """The orders the queue holds against the ones the learner says were refused."""
    missing = [i for i in _IDS if i not in held]
    if refused is None:
        return hint(
            _(
                "The queue holds order(s) {value}, and `refused` is still None: collect in a list "
                "named refused the orders whose basic_publish the broker refused."
            ).format(value=_ids(sorted(held)))
        )
    said = _refused_ids(refused)
    if said is None:
        return hint(
            _(
                "`refused` is {refused!r}; it should be a list of the refused orders (the dicts "
                "from ORDERS, or their order_id)."
            ).format(refused=refused)
        )
    if not said and missing:
        return hint(
            _(
                "The queue took only order(s) {value}, yet `refused` is empty: order(s) {value2} "
                "were lost and nobody noticed. Only a channel in confirm mode "
                "(channel.confirm_delivery()) learns that the broker refused a message: its "
                "basic_publish then raises pika.exceptions.NackError. Collect those orders in "
                "refused."
            ).format(value=_ids(sorted(held)), value2=_ids(missing))
        )
    lost = [i for i in missing if i not in said]
    if lost:
        return hint(
            _(
                "Order(s) {value} are neither in {queue!r} nor in `refused`: publish every order "
                "of ORDERS, and add to refused each one whose basic_publish raised "
                "pika.exceptions.NackError."
            ).format(value=_ids(lost), queue=queue)
        )
    return passed(
        _(
            "Orders {value} wait in a durable queue as persistent JSON messages, and confirm mode "
            "told you that the broker refused order(s) {value2}, to retry later."
        ).format(value=_ids(sorted(held)), value2=_ids(sorted(said)))
    )


def _refused_ids(refused: object) -> set[int] | None:
    """The order ids in `refused` (dicts, ids or message ids), or None if it is not that."""
    if isinstance(refused, (str, bytes, dict)) or not isinstance(refused, Iterable):
        return None
    ids: set[int] = set()
    for item in refused:
        if isinstance(item, dict) and item.get("order_id") in _IDS:
            ids.add(item["order_id"])
        elif isinstance(item, int) and not isinstance(item, bool) and item in _IDS:
            ids.add(item)
        elif isinstance(item, str) and item in {message_id(o) for o in ORDERS}:
            ids.add(int(item.removeprefix("order-")))
        else:
            return None
    return ids


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)
