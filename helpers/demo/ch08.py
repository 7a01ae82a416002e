"""Harness for chapter 08 (a reliable pipeline): the bookkeeping around the lesson.

The chapter teaches, in plain pika in its own cells, the reliable publisher's confirm, return
and retry handling on a `SelectConnection`, the idempotent consumer's `on_message`, and the
reconnect loop. What lives here is what those need but do not teach: the lists and counters a
publisher and a consumer keep (so the cells can count what happened), a thread that keeps what
its function returned or raised, closing a connection through the management API (the fault
the chapter injects), and the chart of the run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from helpers.errors import ManagementError
from helpers.fonts import use_cjk_fallback
from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.broker import Broker

Message = tuple[str, bytes]   # (message_id, body)


class PublisherBook:
    """What a reliable publisher keeps: what to publish, what awaits its confirm, and what
    became of each message. The confirm handling itself is the chapter's lesson, in its cell."""

    def __init__(self) -> None:
        self.source: Iterator[Message] | None = None   # where new messages come from
        self.todo: deque[Message] = deque()    # (message_id, body) to publish again
        self.outstanding: dict[int, Message] = {}   # publish sequence number -> message
        self.delayed: dict[str, bytes] = {}    # message_id -> body: nacked, to publish later
        self.confirmed: list[str] = []         # message_ids the broker acked and did not return
        self.returned: dict[str, str] = {}     # message_id -> why no queue took it
        self.nacks: Counter[str] = Counter()   # message_id -> how often the broker refused it
        self.given_up: list[str] = []          # message_ids refused max_nacks times
        self.published = 0                     # basic_publish calls, repeats included
        self.reconnects = 0

    def busy(self) -> bool:
        """Anything not settled yet: still to come, to publish again, or unconfirmed."""
        return bool(self.source or self.todo or self.outstanding or self.delayed)

    def next_message(self) -> Message | None:
        """The next message to publish: one to publish again first, then a new one."""
        if self.todo:
            return self.todo.popleft()
        message = next(self.source, None) if self.source else None
        if message is None:
            self.source = None                 # the source has run dry
        return message

    def take_back_unconfirmed(self) -> None:
        """The connection dropped: every unconfirmed message goes to the front, to be
        published again on the next connection (some may have arrived: duplicates)."""
        self.todo.extendleft(reversed([*self.outstanding.values(), *self.delayed.items()]))
        self.outstanding.clear()
        self.delayed.clear()


class ConsumerBook:
    """What the idempotent consumer counts, and a journal of what happened to each message."""

    def __init__(self) -> None:
        self.processed: list[str] = []   # one entry per real processing: the side effects
        self.duplicates = 0              # deliveries skipped because their id was seen
        self.retries = 0
        self.parked = 0
        self.reconnects = 0
        self.last_error: str | None = None   # why the connection dropped last
        self.journal: list[tuple[float, str, int, str]] = []   # (time, id, attempt, what)

    def note(self, message_id: str, attempt: int, what: str) -> None:
        self.journal.append((time.monotonic(), message_id, attempt, what))

    def story(self) -> Iterator[str]:
        """What happened to each message, message by message."""
        for _at, message_id, attempt, what in sorted(self.journal, key=lambda e: (e[1], e[0])):
            yield f"{message_id}  attempt {attempt}: {what}"


class Worker(threading.Thread):
    """Run function(*args) in a thread; keep what it returned or raised for `finish()`.

    The cell that starts it calls `finish()` in a `finally`, so an error in the thread shows
    in the cell, and no thread outlives it.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True)
        self.function, self.args = function, args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.function(*self.args)
        except BaseException as error:
            self.error = error

    def finish(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def kill_connection(broker: Broker, name: str, timeout: float = 5.0) -> bool:
    """Close the connection named `name` through the management API, as an operator would
    (a network failure looks the same to the client). True once one was closed; False at
    the deadline, also while the API does not answer: in the middle of a broker restart
    RabbitMQ 3.10's API answered 404 to /api/connections (seen in the reverse notebook pass),
    and the caller's loop simply asks again later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for c in broker.management.connections():
                if (c.get("vhost") == broker.vhost
                        and c.get("client_properties", {}).get("connection_name") == name):
                    broker.management.request(
                        "DELETE", f"connections/{quote(c['name'], safe='')}"
                    )
                    return True
        except ManagementError:
            pass  # restarting: not found this time
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def per_second(timeline: Sequence[Sequence[float]], column: int,
               window: float = 0.25) -> list[float]:
    """Messages per second over the last `window` seconds, at each sample of `timeline`."""
    rates, j = [], 0
    for i, (now, *_rest) in enumerate(timeline):
        while timeline[j][0] < now - window:
            j += 1
        span = now - timeline[j][0]
        rates.append((timeline[i][column] - timeline[j][column]) / span if span else 0)
    return rates


def plot_run(timeline: Sequence[Sequence[float]], faults: dict[str, float],
             orders: int) -> None:
    """The chart of the run: throughput, unconfirmed messages and retries, with the faults.

    `timeline` holds (seconds, confirmed, processed, unconfirmed, retries) samples.
    """
    import matplotlib.pyplot as plt

    use_cjk_fallback()
    t = [s[0] for s in timeline]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 6), sharex=True)
    top.plot(t, per_second(timeline, 1), label=_("confirmed"))
    top.plot(t, per_second(timeline, 2), label=_("processed"))
    top.set_ylabel(_("orders / s"))
    top.legend(loc="upper right")
    middle.plot(t, [s[3] for s in timeline], color="#d9534f")
    middle.set_ylabel(_("unconfirmed"))
    bottom.plot(t, [s[4] for s in timeline], color="#5cb85c")
    bottom.set_ylabel(_("retries so far"))
    bottom.set_xlabel(_("seconds"))
    for ax in (top, middle, bottom):
        if "consumer killed" in faults:
            ax.axvline(faults["consumer killed"], color="red", linestyle="--")
        if "restart asked" in faults:
            ax.axvspan(faults["restart asked"], faults.get("restart over", t[-1]),
                       color="grey", alpha=0.25)
    top.set_title(_("{orders} orders through the pipeline: "
                    "consumer killed (red), broker restart (grey)").format(orders=orders))
    fig.tight_layout()
    plt.show()
