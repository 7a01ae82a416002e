"""The sequence view's part of `FlowDiagram`: `mark()`, `record()` and `sequence()`.

A chapter cell shows the sequence of its own steps like this::

    span = diagram.mark()
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("ch05.orders", "new", b"order 1")
        diagram.record("ch05.shop", "confirm", "ack")      # only the program saw it
        method, properties, body = channel.basic_get("ch05.new-orders")
        channel.basic_ack(method.delivery_tag)
        diagram.record("ch05.shop", "ack", f"delivery tag {method.delivery_tag}")
    diagram.sequence(since=span)   # last expression: the picture, and its text for nbval

What each arrow is drawn from, and what the firehose does not report, is in
`helpers.view.sequence`; how it is drawn in `helpers.view.seq_draw`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from helpers.view.seq_draw import SequenceView
from helpers.view.sequence import sequence_of, window

if TYPE_CHECKING:
    from helpers.flow.state import FlowState
    from helpers.flow.tracer import Tracer


RECORD_WAIT = 0.5  # s: how long record() waits for the firehose at most (see record())


class Mark:
    """Where a span of the sequence view starts (`mark()`): the order of the last step before
    it. It shows nothing as the last line of a cell."""

    def __init__(self, order: int) -> None:
        self.order = order

    def __repr__(self) -> str:
        return f"Mark({self.order})"

    def _ipython_display_(self) -> None:
        pass


class SequenceMethods:
    """Mixed into `FlowDiagram`, which provides the attributes below."""

    state: FlowState
    tracer: Tracer
    closed: bool
    show_helpers: bool
    _lock: threading.RLock

    def mark(self, timeout: float = 5.0) -> Mark:
        """Mark where a span starts: `sequence(since=mark)` then draws only what came after.

        It first waits (a fraction of a second, at most `timeout`) until what the broker did
        before the call has arrived from the firehose, so that none of it falls in the span.
        """
        self._settle(timeout)
        with self._lock:
            return Mark(self.state.ticks)

    def record(self, program: str, kind: str, detail: str = "", on: str | None = None) -> None:
        """Record, for the sequence view, what the program saw that the firehose does not:

        - "ack", "nack" or "reject": the program told the broker; `on` is the queue (by
          default the one the program last got a message from);
        - "confirm" or "return": the broker told the program; `on` is the exchange (by
          default the one it last published to); a publisher's nack is a "confirm" with
          detail "nack";
        - "note": `detail` on the program's lifeline (e.g. the exception it got).

        `program` is the program's connection_name. Drawn dashed, after every step the
        broker traced before the call: it waits for the firehose to hand those over first
        (one marker round trip, a few milliseconds; the broker traced them before it
        answered the program). The wait is capped at RECORD_WAIT (0.5 s), well under a
        heartbeat, because the program's own connection, open around the call, is not
        serviced meanwhile: if the firehose has not answered by then, the record is made
        anyway, after the steps that have arrived, and a step traced before it that arrives
        later is drawn after it.
        """
        if not self.closed and self.tracer.alive:
            self.tracer.sync(RECORD_WAIT)
        with self._lock:
            self.state.record(program, kind, detail, on)

    def sequence(
        self, since: Mark | int | None = None, last: int | None = 40, timeout: float = 5.0
    ) -> SequenceView:
        """The steps after `since` (a `mark()`; None: from the start), at most the `last` of
        them (None: all the diagram keeps, a few thousand), as a sequence diagram: lifelines
        for programs, exchanges and queues, one arrow per step in the order the firehose
        reported them. The last expression of a cell shows it. Waits first, like `mark()`,
        until what happened so far has arrived.
        """
        self._settle(timeout)
        start = since.order if isinstance(since, Mark) else int(since or 0)
        with self._lock:
            state = self.state
            steps, earlier = window(state.timeline, start, last)
            seq = sequence_of(
                steps,
                state.clients.program,
                lambda c: state.connection_name(c) is not None,
                self.show_helpers,
                earlier,
                state.queue_known,
            )
        return SequenceView(seq)

    def _settle(self, timeout: float) -> None:
        """Wait until the firehose has handed over what the broker did so far (bounded)."""
        if not self.closed and self.tracer.alive:
            self.tracer.settle(timeout)
