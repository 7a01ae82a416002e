"""One run of a chapter at a time on a virtual host: a chapter open in two notebooks says so.

A learner who opens a chapter twice (two tabs, or a second kernel for the same notebook), or
an instructor demonstrating beside a student on one vhost, would run the chapter's first
cell twice at once: the second run deletes the first run's queues and exchanges (its clean
slate), the first run's next cell fails with 404, and both diagrams count each other's
messages. So the first cell claims the chapter before it deletes anything, and a second
claim is refused with one sentence that says where the chapter is open and what to do.

The claim is an exclusive queue (`tutorial.open-chapter.chNN`) held by a connection of this
kernel in a thread of its own, which services the connection's heartbeats however long the
learner pauses: exclusive, so another connection's declare is refused (405
RESOURCE_LOCKED), and deleted by the broker the moment its connection goes, when the kernel
dies or is restarted. The chapter's cleanup cell releases it. A broker restart drops it; the
thread then takes it again when the broker is back (unless another run took it first).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pika
import pika.exceptions

from helpers.errors import TutorialError, explain

if TYPE_CHECKING:
    from helpers.broker import Broker

QUEUE_PREFIX = "tutorial.open-chapter."
RECONNECT_S = 1.0  # after a lost connection (a broker restart), try again this often
SERVICE_S = 0.5  # how long each heartbeat-servicing round waits for the broker


class ChapterOpenElsewhere(TutorialError):
    """The chapter runs in another notebook or kernel on the same broker and vhost."""


class ChapterClaim:
    """Holds `chapter` for this kernel until `release()` (or until the kernel goes)."""

    def __init__(self, broker: Broker, chapter: str) -> None:
        self.broker = broker
        self.chapter = chapter
        self.queue = QUEUE_PREFIX + chapter
        self._stop = threading.Event()
        self._first = threading.Event()  # the first attempt has an answer
        self._outcome = ""  # "held", "elsewhere", or the reason it failed
        self._thread = threading.Thread(
            target=self._hold, name=f"chapter-claim-{chapter}", daemon=True
        )

    @property
    def held(self) -> bool:
        return self._outcome == "held" and self._thread.is_alive()

    def acquire(self, timeout: float = 10.0) -> ChapterClaim:
        """Claim the chapter, or raise ChapterOpenElsewhere (or a TutorialError) at once."""
        self._thread.start()
        if not self._first.wait(timeout):
            self.release()
            raise TutorialError(f"Could not claim {self.chapter} within {timeout:g} s.")
        if self._outcome == "elsewhere":
            raise ChapterOpenElsewhere(
                f"{self.chapter} is already running in another notebook or kernel on this "
                f"broker (virtual host {self.broker.vhost!r}); nothing was deleted. Shut that "
                "kernel down (its tab: Kernel > Shut Down Kernel, or JupyterLab's Running "
                "panel), then run this cell again."
            )
        if self._outcome not in ("held", "not allowed"):
            raise TutorialError(f"Could not claim {self.chapter}: {self._outcome}")
        return self

    def release(self, timeout: float = 5.0) -> None:
        """Give the chapter up: the connection closes and the broker deletes the queue."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _hold(self) -> None:
        while not self._stop.is_set():
            try:
                connection = pika.BlockingConnection(
                    self.broker.connection_parameters(
                        client_properties={
                            "connection_name": f"tutorial: {self.chapter} is open here"
                        },
                        connection_attempts=1,
                        socket_timeout=5,
                    )
                )
            except pika.exceptions.AMQPError as exc:
                if not self._first.is_set():
                    self._answer(explain(exc))
                    return
                self._stop.wait(RECONNECT_S)  # the broker is away (a restart): try again
                continue
            try:
                channel = connection.channel()
                channel.queue_declare(self.queue, exclusive=True, auto_delete=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                _close(connection)
                if exc.reply_code == 405:  # RESOURCE_LOCKED: another connection holds it
                    self._answer("elsewhere")
                    return
                if exc.reply_code == 403 and not self._first.is_set():
                    # A user who may not declare queues of that name (a locked-down shared
                    # broker): the chapter runs unclaimed rather than not at all.
                    self._answer("not allowed")
                    return
                if not self._first.is_set():
                    self._answer(f"{exc.reply_code} {exc.reply_text}")
                    return
                self._stop.wait(RECONNECT_S)
                continue
            except pika.exceptions.AMQPError:
                _close(connection)
                self._stop.wait(RECONNECT_S)
                continue
            self._answer("held")
            try:
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=SERVICE_S)
            except pika.exceptions.AMQPError:
                self._stop.wait(RECONNECT_S)  # lost (a restart): take it again
                continue
            _close(connection)

    def _answer(self, outcome: str) -> None:
        if not self._first.is_set():
            self._outcome = outcome
            self._first.set()
        elif outcome == "elsewhere":  # another run took it while the broker restarted
            self._outcome = outcome


def _close(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except pika.exceptions.AMQPError:
        pass


# This kernel's claims: running the first cell again keeps the claim it already holds.
_held: dict[tuple[str, int, str, str], ChapterClaim] = {}


def claim_chapter(broker: Broker, chapter: str) -> ChapterClaim:
    """Claim `chapter` (e.g. "ch04") on the broker's vhost for this kernel; see the module."""
    key = (broker.host, broker.port, broker.vhost, chapter)
    claim = _held.get(key)
    if claim is not None and claim.held:
        return claim
    claim = ChapterClaim(broker, chapter).acquire()
    _held[key] = claim
    return claim


def release_chapter(broker: Broker, chapter: str) -> None:
    """Release this kernel's claim on `chapter`, if it holds one (the cleanup cell)."""
    claim = _held.pop((broker.host, broker.port, broker.vhost, chapter), None)
    if claim is not None:
        claim.release()
