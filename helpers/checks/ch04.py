"""Self-check for chapter 04 (exchanges): a topic exchange that routes log lines.

The exercise asks for a topic exchange and two queues: one that receives every `critical`
line whatever its facility, one that receives everything from the `kern` facility. The
check does not read the learner's binding keys and match them in Python (that would be a
second, possibly wrong, implementation of topic routing); it publishes test messages into
the learner's exchange on the real broker and looks at where the broker put them.
"""

from __future__ import annotations

import pika

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed

EXCHANGE = "ch04.exercise.logs"
CRITICAL_QUEUE = "ch04.exercise.critical"
KERN_QUEUE = "ch04.exercise.kern"

# Routing key -> which of the two queues ("critical", "kern") must receive it. Each key
# separates a right binding from a near miss: `*.critical` misses "mail.queue.critical",
# `kern.*` misses "kern.disk.warning", and keys are case-sensitive.
PROBES: dict[str, frozenset[str]] = {
    "kern.critical": frozenset({"critical", "kern"}),
    "kern.disk.warning": frozenset({"kern"}),
    "auth.critical": frozenset({"critical"}),
    "mail.queue.critical": frozenset({"critical"}),
    "auth.info": frozenset(),
    "kernel.info": frozenset(),
    "KERN.critical": frozenset({"critical"}),
}


def check_exercise(
    broker: Broker,
    exchange: str = EXCHANGE,
    critical_queue: str = CRITICAL_QUEUE,
    kern_queue: str = KERN_QUEUE,
) -> CheckResult:
    """Publish test log lines into the learner's exchange and compare where they land.

    Why purge: the check must know that whatever it reads back came from its own test
    messages, so it empties both queues first (the exercise text says so).
    """
    problem = _topology_problem(broker, exchange, (critical_queue, kern_queue))
    if problem:
        return hint(problem)

    queues = {"critical": critical_queue, "kern": kern_queue}
    received = _route_probes(broker, exchange, queues)
    for key, expected in PROBES.items():
        got = received[key]
        if got != expected:
            return hint(
                f"A line with routing key {key!r} reached {_describe(got, queues)}, but it "
                f"should reach {_describe(expected, queues)}. Remember: `*` stands for "
                "exactly one word, `#` for zero or more words, and keys are case-sensitive."
            )
    return passed(
        f"{len(PROBES)} test lines landed exactly where they should: {critical_queue} gets "
        f"every critical line, {kern_queue} everything from kern."
    )


def _topology_problem(broker: Broker, exchange: str, queues: tuple[str, ...]) -> str | None:
    """Say what is missing before any message is sent, in the order a learner builds it."""
    api = broker.management
    found = [e for e in api.exchanges(broker.vhost) if e["name"] == exchange]
    if not found:
        return f"There is no exchange named {exchange!r} yet: declare it first."
    if found[0]["type"] != "topic":
        return (
            f"{exchange!r} is a {found[0]['type']} exchange; the wildcards `*` and `#` only "
            "work on a topic exchange (delete it and declare it again with "
            "exchange_type='topic')."
        )
    for queue in queues:
        if api.queue(queue, broker.vhost) is None:
            return f"There is no queue named {queue!r} yet: declare it and bind it."
    return None


def _route_probes(
    broker: Broker, exchange: str, queues: dict[str, str]
) -> dict[str, frozenset[str]]:
    """Publish each probe (with confirms, so it has been routed) and read both queues."""
    params = broker.connection_parameters(
        client_properties={"connection_name": "ch04.check"},
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for queue in queues.values():
            channel.queue_purge(queue=queue)
        received: dict[str, frozenset[str]] = {}
        for key in PROBES:
            channel.basic_publish(exchange=exchange, routing_key=key, body=key.encode())
            reached = set()
            for label, queue in queues.items():
                while True:
                    method, _properties, body = channel.basic_get(queue=queue, auto_ack=True)
                    if method is None:
                        break
                    if body.decode() == key:
                        reached.add(label)
            received[key] = frozenset(reached)
        return received
    finally:
        connection.close()


def _describe(labels: frozenset[str], queues: dict[str, str]) -> str:
    if not labels:
        return "no queue"
    return " and ".join(queues[label] for label in sorted(labels))
