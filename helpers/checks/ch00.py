"""Self-check for chapter 00 (concepts): one queue, one binding, one routed message.

The exercise asks the learner to build the smallest piece of topology that works: a queue
`ch00.exercise`, bound to the chapter's exchange `ch00.greetings` with the routing key
`practice`, holding a message that went through that exchange. The check reads the broker's
real state through the management API, in the order a learner builds it, and names the
first thing that is missing. It never routes anything itself.
"""

from __future__ import annotations

import time

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed

EXCHANGE = "ch00.greetings"
QUEUE = "ch00.exercise"
ROUTING_KEY = "practice"


def check_exercise(
    broker: Broker,
    exchange: str = EXCHANGE,
    queue: str = QUEUE,
    routing_key: str = ROUTING_KEY,
    wait_s: float = 2.0,
) -> CheckResult:
    """Is `queue` bound to `exchange` with `routing_key`, and does it hold a message?

    Why wait: a publish without confirms has no reply, so the check may run a moment before
    the queue has the message; it polls the queue's live count for up to `wait_s` seconds
    before saying the queue is empty.
    """
    api = broker.management
    if not any(e["name"] == exchange for e in api.exchanges(broker.vhost)):
        return hint(
            f"The exchange {exchange!r} is gone: run the cells of the section "
            "'The life of one message' again, then redo the exercise."
        )
    if api.queue(queue, broker.vhost) is None:
        return hint(
            f"There is no queue named {queue!r} yet: declare it first (durable=True)."
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
            f"{queue!r} exists, but nothing binds it to {exchange!r}: without a binding the "
            "exchange never sends it anything."
        )
    if routing_key not in keys:
        found = ", ".join(repr(k) for k in keys)
        return hint(
            f"{queue!r} is bound to {exchange!r} with the key {found}, but the exercise asks "
            f"for {routing_key!r} (keys are compared exactly, case included)."
        )

    if _wait_for_message(broker, queue, wait_s) == 0:
        return hint(
            f"{queue!r} is bound correctly but holds no message: publish one to the exchange "
            f"{exchange!r} with the routing key {routing_key!r}."
        )
    return passed(
        f"{queue} is bound to {exchange} with the key {routing_key!r}, and the broker routed "
        "a message into it."
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
