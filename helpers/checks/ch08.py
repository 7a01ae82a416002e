"""Self-check for chapter 08 (a reliable pipeline): an idempotent message handler.

The learner writes `handle(channel, method, properties, body, seen, work)`, the callback of
an idempotent consumer: skip (and acknowledge) a message whose `message_id` is in `seen`,
otherwise call `work(body)`, remember the id, and acknowledge, in that order.

The check feeds it, through a real quorum queue, what a reliable pipeline really delivers:

- two different orders with the same body (`order-1`, `order-2`: "1 coffee" each);
- a duplicate publish (`order-1` again, as a producer sends it after a lost confirm);
- a crash in the middle of the work (`order-3`: the first `work` call raises, the check
  closes the connection, the broker redelivers the unacknowledged message);
- a lost acknowledgement (`order-4`: the work is done, then the first `basic_ack` raises as
  if the connection had dropped; the broker redelivers a message that was processed already).

It passes when every order was processed exactly once and every delivery was answered. The
typical mistakes get their own hint: deduplicating on the body (order-2 is never processed),
acknowledging before the work (order-3 is lost), marking the id as seen before the work
(order-3 is skipped when it comes back), no deduplication (order-1 or order-4 twice), and
duplicates skipped without an ack. Each run declares the queue afresh and deletes it, so
checking twice gives the same answer.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.broker import Broker

QUEUE = "ch08.ex.orders"
MESSAGES: tuple[tuple[str, bytes], ...] = (
    ("order-1", b"1 coffee"),
    ("order-2", b"1 coffee"),  # another order, with the same body
    ("order-1", b"1 coffee"),  # the producer published order-1 again
    ("order-3", b"2 tea"),  # its work crashes the first time
    ("order-4", b"1 cake"),  # its first ack is lost
)
ORDERS = ("order-1", "order-2", "order-3", "order-4")
CRASHES = "order-3"
LOSES_ACK = "order-4"
IDLE_S = 0.4  # a round ends when nothing has arrived for this long
MAX_ROUNDS = 5  # connections opened at most (each crash or lost ack costs one)
MAX_DELIVERIES = 30  # a handler that requeues forever is stopped here


class WorkerCrashed(Exception):
    """Raised by the check's `work` the first time it processes order-3."""


class AckLost(Exception):
    """Raised by the first `basic_ack` of order-4: the connection "dropped" before it went."""


@dataclass
class _Run:
    deliveries: Counter = field(default_factory=Counter)  # message_id -> deliveries
    processed: list[str] = field(default_factory=list)  # message_id per completed work call
    unanswered: list[str] = field(default_factory=list)  # handle returned, no ack/nack/reject
    ack_before_work: str | None = None  # an id acked before its work was called
    acked_failed_work: str | None = None  # an id acked although its work raised
    error: BaseException | None = None  # anything the learner's code raised
    channel_closed: bool = False  # the broker closed the channel (a double ack, say)
    lost_ack_sent: bool = False


class _Delivery:
    """What one call of the learner's handler did, in order."""

    def __init__(self, message_id: str):
        self.message_id = message_id
        self.answered = False
        self.worked = False
        self.work_failed = False


class _Channel:
    """The real channel, watched: records when the handler answers a delivery."""

    def __init__(self, channel: Any, run: _Run, delivery: _Delivery):
        self._channel, self._run, self._delivery = channel, run, delivery

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        d = self._delivery
        if d.work_failed:
            self._run.acked_failed_work = self._run.acked_failed_work or d.message_id
        if d.message_id == LOSES_ACK and d.worked and not self._run.lost_ack_sent:
            self._run.lost_ack_sent = True
            d.answered = True
            raise AckLost(_("the connection dropped before this ack reached the broker"))
        d.answered = True
        self._channel.basic_ack(delivery_tag=delivery_tag, multiple=multiple)

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True):
        self._delivery.answered = True
        self._channel.basic_nack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._delivery.answered = True
        self._channel.basic_reject(delivery_tag=delivery_tag, requeue=requeue)


def check_exercise(broker: Broker, handle: object, queue: str = QUEUE) -> CheckResult:
    """Feed `handle` duplicates, a crash and a lost ack; judge what it processed and acked."""
    if handle is None:
        return hint(
            _(
                "There is no function named handle yet: write def handle(channel, method, "
                "properties, body, seen, work): in the cell above, run it, then run this check "
                "again."
            )
        )
    if not callable(handle):
        return hint(_(
            "handle is {handle_type}, not a function: define it with def."
        ).format(handle_type=type(handle).__name__))
    try:
        inspect.signature(handle).bind(None, None, None, None, set(), None)
    except (TypeError, ValueError):
        return hint(
            _(
                "handle must take six arguments, in this order: (channel, method, properties, "
                "body, seen, work)."
            )
        )
    run = _feed(broker, handle, queue)
    return _judge(run)


def _judge(run: _Run) -> CheckResult:
    # A second ack of one delivery closes the channel with 406; whether pika raises that
    # inside handle or only after it depends on timing, so both count as answering twice.
    double_ack = run.error is not None and "unknown delivery tag" in str(run.error)
    if run.error is not None and not double_ack:
        return hint(
            _(
                "Your handle raised {error_type}: {run_error}. Fix that first: "
                "properties.message_id is the id, work(body) does the work, and each delivery "
                "gets one channel.basic_ack(delivery_tag=method.delivery_tag)."
            ).format(error_type=type(run.error).__name__, run_error=run.error)
        )
    if run.channel_closed or double_ack:
        return hint(
            _(
                "The broker closed the check's channel while handle ran: a delivery was answered "
                "twice (406 PRECONDITION_FAILED - unknown delivery tag). Answer each delivery "
                "exactly once: one basic_ack, on every path through handle."
            )
        )
    if run.ack_before_work:
        return hint(
            _(
                "handle acknowledged {run_ack_before_work} before its work was done: ack only "
                "after work(body) has returned. An ack sent before the work removes the message "
                "from the broker, and a crash in between loses it."
            ).format(run_ack_before_work=run.ack_before_work)
        )
    if run.acked_failed_work:
        return hint(
            _(
                "{run_acked_failed_work} was acknowledged although work(body) raised: let the "
                "exception out (no ack), so that the broker delivers the message again."
            ).format(run_acked_failed_work=run.acked_failed_work)
        )
    if run.unanswered:
        return hint(
            _(
                "handle returned without acknowledging {v_0}: every delivery needs a basic_ack, "
                "also a duplicate you skip; an unacknowledged message comes back when the "
                "connection closes."
            ).format(v_0=run.unanswered[0])
        )
    counts = Counter(run.processed)
    twice = sorted(i for i, n in counts.items() if n > 1)
    if twice:
        why = (
            _("it came back after a lost ack (method.redelivered is True): its work was done")
            if twice[0] == LOSES_ACK
            else _("the producer published it twice (the same message_id)")
        )
        return hint(
            _(
                "{v_0} was processed {value} times; {why}. Skip a message whose "
                "properties.message_id is in seen, and add the id to seen once work(body) is done."
            ).format(v_0=twice[0], value=counts[twice[0]], why=why)
        )
    missing = [i for i in ORDERS if i not in counts]
    if "order-2" in missing and "order-1" in counts and run.deliveries["order-2"]:
        return hint(
            _(
                "order-2 was never processed: it has the same body as order-1 (b'1 coffee') but "
                "another message_id, so it is another order. Deduplicate on "
                "properties.message_id, not on the body."
            )
        )
    if CRASHES in missing and run.deliveries[CRASHES] > 1:
        return hint(
            _(
                "{CRASHES} was never processed: its first work(body) crashed, and when the broker "
                "delivered it again handle skipped it as seen. Add the id to seen after "
                "work(body) has returned, not before."
            ).format(CRASHES=CRASHES)
        )
    if missing:
        return hint(
            _(
                "{v_0} was delivered but never processed: call work(body) for every message whose "
                "message_id is not in seen (use the seen argument: the check passes a fresh set)."
            ).format(v_0=missing[0])
        )
    return passed(
        _(
            "Each of the {n_orders} orders processed exactly once, through a duplicate publish, "
            "two orders with the same body, a crash in the middle of the work and a lost ack; "
            "every delivery acknowledged."
        ).format(n_orders=len(ORDERS))
    )


def _feed(broker: Broker, handle: Callable[..., Any], queue: str) -> _Run:
    params = broker.connection_parameters(client_properties={"connection_name": "ch08.check"})
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        for message_id, body in MESSAGES:
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(
                    message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent
                ),
            )
    run, seen = _Run(), set()
    try:
        for _round in range(MAX_ROUNDS):
            if not _one_round(params, queue, handle, run, seen):
                break
    finally:
        with pika.BlockingConnection(params) as connection:
            connection.channel().queue_delete(queue)
    return run


def _one_round(params, queue: str, handle, run: _Run, seen: set) -> bool:
    """One consumer connection. True if it ended in a crash or a lost ack (go again)."""
    crashed = False
    current: list[_Delivery] = []

    def work(_body: bytes) -> None:
        d = current[-1]
        if d.answered:  # acked (or rejected) first, worked afterwards
            run.ack_before_work = run.ack_before_work or d.message_id
        if d.message_id == CRASHES and run.deliveries[CRASHES] == 1:
            d.work_failed = True
            raise WorkerCrashed(_("the worker crashed in the middle of this work"))
        d.worked = True
        run.processed.append(d.message_id)

    def on_message(channel, method, properties, body) -> None:
        run.deliveries[properties.message_id] += 1
        d = _Delivery(properties.message_id)
        current.append(d)
        handle(_Channel(channel, run, d), method, properties, body, seen, work)
        if not d.answered:
            run.unanswered.append(d.message_id)

    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue, on_message)
        last = time.monotonic()
        seen_so_far = sum(run.deliveries.values())
        while time.monotonic() - last < IDLE_S:
            try:
                connection.process_data_events(time_limit=0.05)
            except (WorkerCrashed, AckLost):
                crashed = True
                break
            except pika.exceptions.AMQPChannelError as error:  # e.g. 406 from a double ack
                run.error = error
                break
            except Exception as error:  # the learner's code failed
                run.error = error
                break
            if sum(run.deliveries.values()) != seen_so_far:
                seen_so_far, last = sum(run.deliveries.values()), time.monotonic()
            if seen_so_far >= MAX_DELIVERIES:
                break
            if not channel.is_open:
                run.channel_closed = True
                break
    return crashed and run.error is None and not run.channel_closed
