"""Harness for chapter 05 (acknowledgements): what the chapter uses but does not teach.

The chapter teaches `basic_ack`, `basic_nack`, `basic_reject` and dead-lettering in plain
pika, in its own cells. What lives here only keeps those cells short and repeatable: a queue
that starts empty, the counts the broker reports (polled, because acks have no reply), a
bounded consumer loop, waiting for a dead letter, and the live diagrams' bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pika
import pika.spec

from helpers.i18n import _

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

    from helpers.broker import Broker

Delivery = tuple[pika.spec.Basic.Deliver, pika.spec.BasicProperties, bytes]


def deliveries(channel: BlockingChannel, queue: str, limit: int = 20,
               idle: float = 0.3) -> Iterator[Delivery]:
    """Consume `queue` with manual acks: (method, properties, body), `limit` of them at most.

    Stops when nothing has arrived for `idle` seconds. The limit is a safety net for the
    chapter's favourite mistake: a message put back with requeue=True comes straight back,
    and a loop that keeps doing that would never end; when it stops that way, it says why.
    """
    count = redelivered = 0
    try:
        for method, properties, body in channel.consume(queue, inactivity_timeout=idle):
            if method is None:                 # nothing arrived for `idle` seconds
                return
            count += 1
            redelivered += method.redelivered
            yield method, properties, body
            if count == limit:
                if redelivered:
                    print(_("deliveries() stopped after {count} deliveries from {queue}, "
                            "{redelivered} of them redelivered: a message keeps coming back. "
                            "basic_nack and basic_reject put it back with requeue=True, their "
                            "default; requeue=False drops it or dead-letters it.")
                          .format(count=count, queue=queue, redelivered=redelivered))
                else:
                    print(_("deliveries() stopped after {count} deliveries from {queue}, "
                            "its limit; more may be waiting.").format(count=count, queue=queue))
                return
    finally:
        if channel.is_open:
            channel.cancel()   # stop consuming; what pika holds but did not hand out goes back


def next_from(channel: BlockingChannel, queue: str, timeout: float = 2.0) -> tuple[Any, Any, Any]:
    """basic_get, waiting up to `timeout` s for a message (a returned one comes back
    asynchronously to a quorum queue)."""
    deadline = time.monotonic() + timeout
    method, properties, body = channel.basic_get(queue)
    while method is None and time.monotonic() < deadline:
        time.sleep(0.02)
        method, properties, body = channel.basic_get(queue)
    return method, properties, body


class Harness:
    """The chapter's helpers bound to its broker and connection settings.

    Each method that talks to the broker opens a connection of its own, as every cell does,
    so a learner's pause between cells never breaks one.
    """

    def __init__(self, broker: Broker, params: pika.ConnectionParameters,
                 diagrams: dict[tuple[str, ...], Any]) -> None:
        self.broker, self.params, self.diagrams = broker, params, diagrams

    def fresh_queue(self, name: str, arguments: dict[str, Any] | None = None) -> None:
        """Declare `name` durable and empty: delete whatever an earlier run left first."""
        with pika.BlockingConnection(self.params) as connection:
            channel = connection.channel()
            channel.queue_delete(name)
            channel.queue_declare(name, durable=True, arguments=arguments)

    def purge(self, *queues: str) -> None:
        """Empty the queues, so that a cell sees only the messages it publishes itself."""
        with pika.BlockingConnection(self.params) as connection:
            channel = connection.channel()
            for queue in queues:
                channel.queue_purge(queue)

    def counts(self, queue: str) -> tuple[int, int]:
        """(ready, unacked) for `queue`, as the broker holds them right now (live totals,
        not the sampled statistics, which can be a few seconds old)."""
        for q in self.broker.management.queue_totals(self.broker.vhost):
            if q["name"] == queue:
                return q["messages_ready"], q["messages_unacknowledged"]
        raise LookupError(_("no queue named {queue!r}").format(queue=queue))

    def show_counts(self, queue: str, expect: tuple[int, int], timeout: float = 5.0) -> None:
        """Wait (at most `timeout` s) until the counts equal `expect`, then print them.

        The broker applies acks asynchronously (a basic_ack has no reply), so this polls for
        a moment; if the broker disagrees with the text, the printed line shows it.
        """
        deadline = time.monotonic() + timeout
        while (now := self.counts(queue)) != expect and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"  {queue}: ready={now[0]} unacked={now[1]}")

    def next_dead_letter(self, timeout: float = 5.0, queue: str = "ch05.dead-letters") -> None:
        """Take the next message from `queue` and print why it died (x-death, without time)."""
        with pika.BlockingConnection(self.params) as connection:
            channel = connection.channel()
            method, properties, body = next_from(channel, queue, timeout)
            if method is None:
                print(_("  no dead letter arrived"))
                return
            channel.basic_ack(method.delivery_tag)
        death = properties.headers["x-death"][0]
        print(_("  {body!r} via {exchange!r}, routing key {key!r}").format(
            body=body.decode(), exchange=method.exchange, key=method.routing_key))
        for field in sorted(death):
            if field != "time":
                value = int(death[field]) if field == "count" else death[field]
                print(f"      x-death.{field} = {value!r}")

    def open_diagram(self, *prefix: str) -> Any:
        """A live FlowDiagram of the names starting with `prefix`. Running its cell again
        replaces it, and the old one is closed, so nothing is left running."""
        from helpers.widgets import FlowDiagram

        if prefix in self.diagrams:
            self.diagrams[prefix].close()
        self.diagrams[prefix] = FlowDiagram(self.broker,
                                            prefix=prefix[0] if len(prefix) == 1 else prefix)
        return self.diagrams[prefix]

    def caught_up(self) -> None:
        """Wait until every open diagram shows all that happened so far (for the saved copy)."""
        for diagram in self.diagrams.values():
            diagram.wait_until_caught_up()

    def close_diagrams(self) -> None:
        """Close every open diagram: its picture stays as it is, its firehose queue goes."""
        for diagram in self.diagrams.values():
            diagram.close()
        self.diagrams.clear()
