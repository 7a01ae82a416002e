"""Self-check for chapter 00 (concepts): one queue, one binding, one routed message.

The exercise asks the learner to build the smallest piece of topology that works: a durable
queue `ch00.exercise`, bound to the chapter's exchange `ch00.greetings` with the routing key
`practice`, holding a message that went through that exchange. The check reads the broker's
real state through the management API, in the order a learner builds it, and names the
first thing that is missing or wrong. It never routes anything itself.

The mistakes it names on their own: a queue that is not durable (RabbitMQ 4 refuses it and
closes the connection, so the queue is missing; older brokers create it), the lesson's key
`hello` (or another) instead of `practice`, and a message sent straight to the queue through
the default exchange instead of through `ch00.greetings`.
"""

from __future__ import annotations

import time
from typing import Any

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed

EXCHANGE = "ch00.greetings"
QUEUE = "ch00.exercise"
ROUTING_KEY = "practice"
PEEK = 100  # messages looked at (and put back) to see which exchange they came through


def check_exercise(
    broker: Broker,
    exchange: str = EXCHANGE,
    queue: str = QUEUE,
    routing_key: str = ROUTING_KEY,
    wait_s: float = 2.0,
) -> CheckResult:
    """Is `queue` durable, bound to `exchange` with `routing_key`, and does it hold a message
    that came through `exchange`?

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
    info = api.queue(queue, broker.vhost)
    if info is None:
        return hint(
            f"There is no queue named {queue!r} yet: declare it with durable=True (RabbitMQ 4 "
            "refuses a queue that is neither durable nor exclusive and closes the connection; "
            "an exclusive queue disappears when your `with` block closes the connection)."
        )
    if not info.get("durable"):
        return hint(
            f"{queue!r} exists but is not durable: delete it "
            f"(channel.queue_delete(queue={queue!r})) and declare it again with durable=True."
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
    sources = {m.get("exchange", "") for m in _peek(broker, queue)}
    if sources and exchange not in sources:
        if "" in sources:
            return hint(
                f"Your message went straight to {queue!r} through the default exchange "
                f'(exchange="", routing key = the queue\'s name), not through {exchange!r}: '
                f"publish to the exchange {exchange!r}, so that your binding routes it."
            )
        found = ", ".join(repr(s) for s in sorted(sources))
        return hint(
            f"The messages in {queue!r} came through {found}, not through {exchange!r}: "
            f"publish to the exchange {exchange!r}."
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


def _peek(broker: Broker, queue: str) -> list[dict[str, Any]]:
    """The ready messages of `queue`, read and put back (the management UI's "Get messages"
    with "Nack message requeue true"): each says which exchange it was published to.
    Unacked messages (held by a consumer) are not seen; then the answer is empty."""
    return broker.management.peek(queue, broker.vhost, count=PEEK)
