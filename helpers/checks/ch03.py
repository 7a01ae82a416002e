"""Self-check for chapter 03 (consumer): a worker that finishes its jobs and leaves cleanly.

The exercise fills `ch03.exercise.jobs` with a few numbers and asks the learner to consume
them with the consumer generator, acknowledge each one, add them up and cancel the
generator. A correct total alone proves little (the numbers are printed in the notebook), so
the check also asks the broker whether the queue was really emptied: no job still waiting,
none delivered but never acknowledged, and no consumer left behind on the queue.

The learner's `total` only chooses between hints where the queue alone cannot tell: all the
jobs waiting and no total means nothing was tried yet; all the jobs waiting *with* a total
means a worker read them and never acknowledged them, so they went back to the queue when
its connection closed (the end of a `with` block, or an error).
"""

from __future__ import annotations

import time

import pika
import pika.exceptions

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

QUEUE = "ch03.exercise.jobs"
JOBS: tuple[str, ...] = ("4", "8", "15", "16", "23", "42")
EXPECTED_TOTAL = sum(int(job) for job in JOBS)


def check_exercise(broker: Broker, total: object, queue: str = QUEUE) -> CheckResult:
    """Judge the learner's `total` and the state they left `queue` in.

    Why the order of hints: a consumer still attached or a job never acknowledged explains a
    wrong total, so those come first; the total is judged last.
    """
    state = _queue_state(broker, queue)
    if state is None:
        return hint(
            _(
                "There is no queue named {queue!r}: run the cell that fills it (start_over()) "
                "first."
            ).format(queue=queue)
        )
    ready, unacked, consumers = state
    if consumers:
        return hint(
            _(
                "{queue!r} still has {consumers} consumer(s): after leaving the `for` loop, call "
                "channel.cancel() so the generator's consumer goes away, and open the connection "
                "in a with block, which closes it (and any consumer on it) at the end of the cell."
            ).format(queue=queue, consumers=consumers)
        )
    if unacked:
        return hint(
            _(
                "{unacked} job(s) were delivered but never acknowledged: call "
                "channel.basic_ack(method.delivery_tag) for each job you processed."
            ).format(unacked=unacked)
        )
    if ready >= len(JOBS) and total is None:
        return hint(
            _(
                "Nothing consumed yet: all {ready} jobs wait in {queue!r}. Write your worker in "
                "the empty cell above (start it with start_over()), then run this check again."
            ).format(ready=ready, queue=queue)
        )
    if ready >= len(JOBS):
        return hint(
            _(
                "All {ready} jobs are back in {queue!r}, although your worker read them (total is "
                "{total!r}): none was acknowledged, so when its connection closed (at the end of "
                "its with block, or after an error) the broker put them back. Add int(body) to "
                "total and call channel.basic_ack(delivery_tag=method.delivery_tag), for every "
                "job."
            ).format(ready=ready, queue=queue, total=total)
        )
    if ready:
        return hint(
            _(
                "{ready} job(s) are still waiting in {queue!r}: keep consuming until the "
                "generator yields (None, None, None), which means the queue stayed quiet for "
                "inactivity_timeout seconds."
            ).format(ready=ready, queue=queue)
        )
    if isinstance(total, bool) or not isinstance(total, int):
        return hint(_(
            "`total` is {total!r}; it should be an int: add int(body) for every job."
        ).format(total=total))
    if total != EXPECTED_TOTAL:
        return hint(
            _(
                "The queue is empty and clean, but total is {total}: add int(body) of every job "
                "exactly once (start your cell with start_over(), which refills the queue)."
            ).format(total=total)
        )
    return passed(
        _(
            "All {n_jobs} jobs consumed and acknowledged, total {total}, and no consumer left "
            "behind on {queue}."
        ).format(n_jobs=len(JOBS), total=total, queue=queue)
    )


def _queue_state(broker: Broker, queue: str) -> tuple[int, int, int] | None:
    """(ready, unacknowledged, consumers) of `queue`, or None if it does not exist.

    Ready and consumer counts come from a passive `queue_declare` (exact, immediate); the
    unacknowledged count from the management API's queue totals, read until two reads
    agree, so an ack or a channel close that just happened has been counted.
    """
    params = broker.connection_parameters(
        client_properties={"connection_name": "ch03.check"},
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        try:
            declared = channel.queue_declare(queue=queue, passive=True).method
        except pika.exceptions.ChannelClosedByBroker:
            return None
    finally:
        if connection.is_open:
            connection.close()
    return declared.message_count, _unacked(broker, queue), declared.consumer_count


def _unacked(broker: Broker, queue: str, timeout: float = 3.0) -> int:
    previous = None
    deadline = time.monotonic() + timeout
    while True:
        rows = broker.management.queue_totals(broker.vhost)
        now = next((r.get("messages_unacknowledged", 0) for r in rows if r["name"] == queue), 0)
        if now == previous or time.monotonic() > deadline:
            return now
        previous = now
        time.sleep(0.1)
