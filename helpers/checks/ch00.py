"""Self-check for chapter 00 (concepts): one queue, one binding, one routed message.

The exercise asks the learner to build the smallest piece of topology that works: a durable
queue `ch00.exercise`, bound to the chapter's exchange `ch00.greetings` with the routing key
`practice`, holding a message that went through that exchange. The check reads the broker's
real state, in the order a learner builds it, and names the first thing that is missing or
wrong. It never routes anything itself.

The mistakes it names on their own: a queue that is not durable (RabbitMQ 4.3 and newer
refuse it by default and close the connection, so the queue is missing; 4.0-4.2 only warn in
their log, and 3.x or a build that permits the deprecated feature `transient_nonexcl_queues`
creates it), the lesson's key `hello` (or another) instead of `practice`, a message sent
straight to the queue through the default exchange instead of through `ch00.greetings`, and a
message published with another routing key (dropped, or routed by a binding an earlier
attempt left).

The latest attempt: queues and bindings are what the broker holds now, whatever attempt made
them. Messages pile up across attempts, so the check judges the newest message in the queue
(the last one published; a queue is first in, first out). When it finds that message wrong,
it takes every message it looked at out of the queue (they all came from attempts it has
judged), so that the next check sees only what the learner publishes after it: a publish
that matched no binding then gets the "holds no message" hint instead of the hint about an
earlier attempt. A passing message is put back, so checking again passes again.
"""

from __future__ import annotations

import time

import pika

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

EXCHANGE = "ch00.greetings"
QUEUE = "ch00.exercise"
ROUTING_KEY = "practice"
PEEK = 100  # messages looked at (and put back, or taken out) at most
# (vhost, queue) of the queues this check emptied after a wrong message: the next "holds no
# message" hint says so, because the learner may not know that the check took it out.
_EMPTIED: set[tuple[str, str]] = set()


def check_exercise(
    broker: Broker,
    exchange: str = EXCHANGE,
    queue: str = QUEUE,
    routing_key: str = ROUTING_KEY,
    wait_s: float = 2.0,
) -> CheckResult:
    """Is `queue` durable, bound to `exchange` with `routing_key`, and is its newest message
    one that came through `exchange` with `routing_key`?

    Why wait: a publish without confirms has no reply, so the check may run a moment before
    the queue has the message; it polls the queue's live count for up to `wait_s` seconds
    before saying the queue is empty.
    """
    api = broker.management
    if not any(e["name"] == exchange for e in api.exchanges(broker.vhost)):
        return hint(
            _(
                "The exchange {exchange!r} is gone: run the cells of the section 'The life of one "
                "message' again, then redo the exercise."
            ).format(exchange=exchange)
        )
    info = api.queue(queue, broker.vhost)
    if info is None:
        return hint(
            _(
                "There is no queue named {queue!r} yet: declare it with durable=True (RabbitMQ "
                "4.3 and newer refuse a queue that is neither durable nor exclusive by default, "
                "and close the connection; an exclusive queue disappears when your `with` block "
                "closes the connection)."
            ).format(queue=queue)
        )
    if not info.get("durable"):
        return hint(
            _(
                "{queue!r} exists but is not durable: delete it "
                "(channel.queue_delete(queue={queue!r})) and declare it again with durable=True."
            ).format(queue=queue)
        )

    keys = sorted(
        b["routing_key"]
        for b in api.bindings(broker.vhost)
        if b["source"] == exchange
        and b["destination"] == queue
        and b["destination_type"] == "queue"
    )
    if not keys:
        return hint(
            _(
                "{queue!r} exists, but nothing binds it to {exchange!r}: without a binding the "
                "exchange never sends it anything."
            ).format(queue=queue, exchange=exchange)
        )
    if routing_key not in keys:
        found = ", ".join(repr(k) for k in keys)
        return hint(
            _(
                "{queue!r} is bound to {exchange!r} with the key {found}, but the exercise asks "
                "for {routing_key!r} (keys are compared exactly, case included)."
            ).format(queue=queue, exchange=exchange, found=found, routing_key=routing_key)
        )

    if _wait_for_message(broker, queue, wait_s) == 0:
        since = (
            _(" since the check took out the one it judged")
            if (broker.vhost, queue) in _EMPTIED
            else ""
        )
        return hint(
            _(
                "{queue!r} is bound correctly but holds no message{since}: publish one to the "
                "exchange {exchange!r} with the routing key {routing_key!r} (a message whose "
                "routing key matches no binding is dropped)."
            ).format(queue=queue, since=since, exchange=exchange, routing_key=routing_key)
        )
    return _judge_newest(broker, exchange, queue, routing_key, keys)


def _judge_newest(
    broker: Broker, exchange: str, queue: str, routing_key: str, keys: list[str]
) -> CheckResult:
    """Read the queue's messages without acknowledging them and judge the newest one.

    Passed: closing the connection puts them all back, in their order. A hint: they are all
    acknowledged (taken out), so that the next check judges only newer messages.
    """
    params = broker.connection_parameters(client_properties={"connection_name": "ch00.check"})
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        taken = []
        for _i in range(PEEK):
            method, _properties, _body = channel.basic_get(queue=queue, auto_ack=False)
            if method is None:
                break
            taken.append(method)
        if not taken:
            return hint(
                _(
                    "The message in {queue!r} is held by a consumer that has not acknowledged it: "
                    "close that consumer's connection, then run the check again."
                ).format(queue=queue)
            )
        result = _verdict(taken[-1], exchange, queue, routing_key, keys)
        if result.passed:
            _EMPTIED.discard((broker.vhost, queue))
        else:
            channel.basic_ack(delivery_tag=taken[-1].delivery_tag, multiple=True)
            _EMPTIED.add((broker.vhost, queue))
        return result


def _verdict(
    newest: pika.spec.Basic.GetOk, exchange: str, queue: str, routing_key: str, keys: list[str]
) -> CheckResult:
    took_out = (
        _(
            " (The check took the messages it looked at out of {queue!r}, so that the next check "
            "sees only what you publish after this one.)"
        ).format(queue=queue)
    )
    if newest.exchange == "":
        return hint(
            _(
                "Your latest message went straight to {queue!r} through the default exchange "
                "(exchange=\"\", routing key = the queue's name), not through {exchange!r}: "
                "publish to the exchange {exchange!r}, so that your binding routes it."
            ).format(queue=queue, exchange=exchange) + took_out
        )
    if newest.exchange != exchange:
        return hint(
            _(
                "Your latest message in {queue!r} came through {newest_exchange!r}, not through "
                "{exchange!r}: publish to the exchange {exchange!r}."
            ).format(queue=queue, newest_exchange=newest.exchange, exchange=exchange) + took_out
        )
    if newest.routing_key != routing_key:
        others = [k for k in keys if k != routing_key]
        left = (
            _(
                " It reached {queue!r} through the binding {newest_routing_key!r}, left from an "
                "earlier attempt: remove it with channel.queue_unbind(...)."
            ).format(queue=queue, newest_routing_key=newest.routing_key)
            if newest.routing_key in others
            else ""
        )
        return hint(
            _(
                "Your latest message came through {exchange!r} with the routing key "
                "{newest_routing_key!r}, but the exercise asks for {routing_key!r}.{left}"
            ).format(
                exchange=exchange,
                newest_routing_key=newest.routing_key,
                routing_key=routing_key,
                left=left,
            ) + took_out
        )
    return passed(
        _(
            "{queue} is bound to {exchange} with the key {routing_key!r}, and the broker routed a "
            "message into it."
        ).format(queue=queue, exchange=exchange, routing_key=routing_key)
    )


def _wait_for_message(broker: Broker, queue: str, wait_s: float) -> int:
    """The queue's live message count (ready + unacked), polled until non-zero or timeout."""
    deadline = time.monotonic() + wait_s
    while True:
        total = 0
        for q in broker.management.queue_totals(broker.vhost):
            if q["name"] == queue:
                total = q.get("messages", 0)
        if total or time.monotonic() >= deadline:
            return total
        time.sleep(0.1)
