"""Self-check for chapter 04 (exchanges): a topic exchange that routes log lines.

The exercise asks for a topic exchange and two queues: one that receives every `critical`
line whatever its facility, one that receives everything from the `kern` facility. The
check does not match the learner's binding keys in Python (that would be a second, possibly
wrong, implementation of topic routing); it publishes test messages into the learner's
exchange on the real broker and looks at where the broker put them. The binding keys are
read only to word the hint: which wildcard, or which leftover binding, made a line go wrong.
"""

from __future__ import annotations

import pika

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import N_, _

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
# Translated where it is used (the language is chosen when the check runs, not at import).
REMINDER = N_(
    "Remember: `*` stands for exactly one word, `#` for zero or more words, and keys are "
    "case-sensitive."
)


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
    queues = {"critical": critical_queue, "kern": kern_queue}
    problem = _topology_problem(broker, exchange, queues)
    if problem:
        return hint(problem)

    received = _route_probes(broker, exchange, queues)
    for key, expected in PROBES.items():
        got = received[key]
        if got != expected:
            return hint(_routing_hint(broker, exchange, queues, key, got, expected))
    return passed(
        _(
            "{n_probes} test lines landed exactly where they should: {critical_queue} gets every "
            "critical line, {kern_queue} everything from kern."
        ).format(n_probes=len(PROBES), critical_queue=critical_queue, kern_queue=kern_queue)
    )


def _binding_keys(broker: Broker, exchange: str, queue: str) -> list[str]:
    """The binding keys from `exchange` to `queue`, as the broker holds them."""
    return sorted(
        b["routing_key"]
        for b in broker.management.bindings(broker.vhost)
        if b["source"] == exchange
        and b["destination"] == queue
        and b.get("destination_type", "queue") == "queue"
    )


def _topology_problem(broker: Broker, exchange: str, queues: dict[str, str]) -> str | None:
    """Say what is missing before any message is sent, in the order a learner builds it."""
    api = broker.management
    found = api.exchange(exchange, broker.vhost)
    if found is None:
        return (
            _(
                "There is no exchange named {exchange!r} yet: declare it (a topic exchange) in "
                "the cell above, inside `with pika.BlockingConnection(params) as connection:`, "
                "and run that cell."
            ).format(exchange=exchange)
        )
    if found["type"] != "topic":
        return (
            _(
                "{exchange!r} is a {type} exchange; the wildcards `*` and `#` only work on a "
                "topic exchange. Delete it (exchange_delete) and declare it again with "
                "exchange_type='topic': declaring it again with another type, without deleting it "
                "first, fails with 406 PRECONDITION_FAILED."
            ).format(exchange=exchange, type=found['type'])
        )
    for queue in queues.values():
        row = api.queue(queue, broker.vhost)
        if row is None:
            return _(
                "There is no queue named {queue!r} yet: declare it and bind it."
            ).format(queue=queue)
        if not row.get("durable") and not row.get("exclusive"):
            return (
                _(
                    "{queue!r} is not durable: delete it and declare it again with durable=True, "
                    "like every named queue of this chapter."
                ).format(queue=queue)
            )
        if not _binding_keys(broker, exchange, queue):
            return (
                _(
                    "{queue!r} is not bound to {exchange!r} yet: queue_bind it, with a binding "
                    "key made of words, `*` and `#`."
                ).format(queue=queue, exchange=exchange)
            )
    return None


def _routing_hint(
    broker: Broker,
    exchange: str,
    queues: dict[str, str],
    key: str,
    got: frozenset[str],
    expected: frozenset[str],
) -> str:
    """What went wrong with one test line, naming the binding that did it where we can."""
    text = (
        _(
            "A line with routing key {key!r} reached {got}, but it should reach {expected}."
        ).format(key=key, got=_describe(got, queues), expected=_describe(expected, queues))
    )
    label = next(lb for lb in sorted(queues) if (lb in got) != (lb in expected))
    queue = queues[label]
    keys = _binding_keys(broker, exchange, queue)
    shown = ", ".join(repr(k) for k in keys)
    if len(keys) > 1:
        return (
            _(
                "{text} {queue!r} has {n_keys} bindings ({shown}); it needs one, so one is "
                "probably left from an earlier attempt: delete the queue (queue_delete) and "
                "declare and bind it again, once."
            ).format(text=text, queue=queue, n_keys=len(keys), shown=shown)
        )
    binding = keys[0] if keys else ""
    words = binding.split(".")
    if label in expected and "*" in words:
        return (
            _(
                "{text} `*` matches exactly one word, so {binding!r} misses {key!r}; `#` matches "
                "zero or more words."
            ).format(text=text, binding=binding, key=key)
        )
    if "*" not in words and "#" not in words:
        return (
            _(
                "{text} A binding key without `*` or `#` ({binding!r}) matches only that exact "
                "routing key, as on a direct exchange. "
            ).format(text=text, binding=binding) + _(REMINDER)
        )
    if label not in expected and binding == "#":
        return _(
            "{text} {queue!r} is bound with '#' alone, which matches every routing key."
        ).format(text=text, queue=queue)
    return _(
        "{text} {queue!r} is bound with {binding!r}. {reminder}"
    ).format(text=text, queue=queue, binding=binding, reminder=_(REMINDER))


def _route_probes(
    broker: Broker, exchange: str, queues: dict[str, str]
) -> dict[str, frozenset[str]]:
    """Publish each probe (with confirms, so it has been routed) and read both queues."""
    params = broker.connection_parameters(
        client_properties={"connection_name": "ch04.check"},
    )
    with pika.BlockingConnection(params) as connection:
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


def _describe(labels: frozenset[str], queues: dict[str, str]) -> str:
    if not labels:
        return _("no queue")
    return " and ".join(queues[label] for label in sorted(labels))
