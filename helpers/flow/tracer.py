"""The kernel's side of the firehose: `Tracer` runs `python -m helpers.flow.firehose` and
hands its events to the diagram.

The consuming and decoding of trace messages run in that process (see there for why); a
thread here reads its batches of events from the pipe (`helpers.flow.events.decode`), and
the broker's client events where it has the event exchange (`helpers.flow.lifecycle`). The
trace queue is exclusive and auto-delete, so nothing is left on the broker even if the
kernel dies, and tracing is switched on and off by the rules of `helpers.flow.tracing`.

The process runs in a session of its own: Jupyter's stop button sends SIGINT to the kernel's
whole process group, and a diagram must outlive an interrupted cell; JupyterLab's restart
kills that group, and the process must live on long enough to switch tracing off. A tracer
serves one process: when the broker drops its connection (a restart), `lost` says why in
one line, and the diagram starts a new tracer once the broker is back.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.errors import TutorialError
from helpers.flow.events import TraceEvent, decode
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.lifecycle import decode as decode_client

if TYPE_CHECKING:
    from helpers.broker import Broker

POLL_S = 0.05  # how often the reading thread looks whether it should stop


class Tracer:
    """Consumes the firehose of `broker.vhost` through a process of its own.

    The consuming and decoding run in `python -m helpers.flow.firehose` (see there for why);
    a thread here reads its batches of events. `on_events` is called in that thread with
    each batch. `on_clients`, if given, is called in that thread with each batch of client
    events (connections, channels, consumers and queues coming and going), before the
    `on_events` of trace events that happened after them; `lifecycle` says whether the
    broker sends client events at all (the `rabbitmq_event_exchange` plugin, in the vhost
    "/" only: the process of another vhost reads them over a second connection to "/", and
    without them, e.g. for a user who may not use "/", the diagram reads clients from the
    management API). `sync()` is the barrier a notebook cell needs: it returns once every
    trace message and client event the broker produced before the call has been handed
    over. If the kernel dies, the process sees its input close and goes too, and with its
    connections the exclusive queues.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        broker: Broker,
        on_events: Callable[[list[TraceEvent]], None],
        on_clients: Callable[[list[ClientEvent]], None] | None = None,
    ):
        self.broker = broker
        self.on_events = on_events
        self.on_clients = on_clients
        self.queue = ""
        self.was_on = False
        self.lifecycle = False  # client events arrive (known once started)
        self.clients_queue = ""  # the process's queue in "/" for them, if one of its own
        self.events_seen = 0
        self.clients_seen = 0  # client events handed over
        # The broker's own counters of the vhost include the diagram's traffic: its sync
        # markers (one publish and one delivery each) and every trace message delivered to
        # it (client events too, where they come through the same queue; those of a queue
        # in "/" are in "/"'s counters, and not in these).
        self.markers_sent = 0
        self.received = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._stopping = False  # stop() was called: an end we asked for
        self._error: BaseException | None = None
        self._error_text = ""  # the process's own words for its last error
        self.ended_at: float | None = None  # time.time() when an unasked-for end was seen
        self._cond = threading.Condition()
        self._synced = 0
        self._sync_seq = itertools.count(1)
        self._count_ids = itertools.count(1)
        self._counts: dict[int, dict[str, list[int]]] = {}
        self._write_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._read, name=f"flow-tracer-{next(self._ids)}", daemon=True
        )

    # -- lifecycle, called from the notebook's thread --------------------------------------

    def start(self, timeout: float = 15.0) -> Tracer:
        """Start the firehose process; return once it consumes (tracing is on by then)."""
        b = self.broker
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p
                for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH"))
                if p
            ),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "helpers.flow.firehose"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            # Out of the kernel's process group: neither the stop button's SIGINT nor a kill
            # of the whole group reaches it (see the module docstring). It still ends with
            # the kernel: its input closes, and it exits.
            start_new_session=True,
        )
        settings = {
            "host": b.host,
            "port": b.port,
            "vhost": b.vhost,
            "username": b.username,
            "password": b.password,
            "management_url": b.management_url,
            "tls": b.tls,
        }
        self._send(settings)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError("the firehose consumer did not start in time")
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming, delete the trace queue, switch tracing off if we were the last."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        self._stop.set()
        self._send({"stop": True})
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._thread.join(timeout)
        with self._cond:
            self._cond.notify_all()

    @property
    def lost(self) -> str | None:
        """Why the process ended when nobody asked it to, in one line; None while it runs
        and after `stop()`."""
        if self._stopping or self._process is None or self.alive:
            return None
        if self._error_text:
            return why_lost(self._error_text)
        code = self._process.poll()
        return f"the diagram's firehose process ended (exit code {code})"

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.poll() is None
            and self._thread.is_alive()
            and not self._stop.is_set()
        )

    def sync(self, timeout: float = 3.0) -> bool:
        """Wait until every trace message published before this call has been processed.

        A marker message is sent through our own trace queue, and through the process's
        client-event queue where it has one: queues keep order, so when it has come back
        through both, everything the broker traced, and every client event it sent, before
        it has come back too.
        """
        if not self.alive:
            return False
        seq = next(self._sync_seq)
        if not self._send({"sync": seq}):
            return False
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._synced < seq:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def settle(self, timeout: float = 5.0, pause: float = 0.1) -> bool:
        """Sync until two marker round trips in a row bring no new events.

        One marker is not a barrier for messages another connection published just before:
        the broker handles each connection in its own process, so our marker may overtake
        them (and the event exchange publishes a close from yet another process). Once two
        rounds, a short pause apart, see nothing new, neither trace messages nor client
        events, they have arrived.
        """
        deadline = time.monotonic() + timeout
        quiet_rounds = 0
        while quiet_rounds < 2:
            before = (self.events_seen, self.clients_seen)
            if not self.sync(max(0.1, deadline - time.monotonic())):
                return False
            now_seen = (self.events_seen, self.clients_seen)
            quiet_rounds = quiet_rounds + 1 if now_seen == before else 0
            if time.monotonic() > deadline:
                return False
            if quiet_rounds < 2:
                time.sleep(pause)
        return True

    def consumer_counts(self, queues: list[str], timeout: float = 2.0) -> dict[str, int]:
        """How many consumers each queue has right now (see `queue_counts`)."""
        counts = self.queue_counts(queues, timeout) or {}
        return {name: consumers for name, (_ready, consumers) in counts.items()}

    def queue_counts(
        self, queues: list[str], timeout: float = 2.0
    ) -> dict[str, tuple[int, int]] | None:
        """(ready messages, consumers) of each queue right now, asked over AMQP.

        A passive declare is answered by the queue itself, at once, for every queue type;
        the management API's numbers come from statistics that lag (quorum queues' by
        seconds). Queues that are gone, or another connection's exclusive queues (which
        refuse a passive declare), are left out. None when no answer came in time.
        """
        if not queues:
            return {}
        if not self.alive:
            return None
        ask = next(self._count_ids)
        if not self._send({"counts": list(queues), "id": ask}):
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while ask not in self._counts:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return None
                self._cond.wait(min(left, 0.1))
            result = self._counts.pop(ask)
        return {name: (ready, consumers) for name, (ready, consumers) in result.items()}

    # -- talking to the process -------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> bool:
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            return False
        try:
            with self._write_lock:
                process.stdin.write((json.dumps(message) + "\n").encode())
                process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def _read(self) -> None:
        """The reading thread: events to on_events, answers to the calls waiting for them.

        It reads the pipe's file descriptor itself: a buffered reader would hold lines that
        `select` no longer reports, and a sync() would wait for them in vain.
        """
        process = self._process
        assert process is not None and process.stdout is not None
        fd = process.stdout.fileno()
        pending = b""
        closed = False
        try:
            while not closed:
                readable, _, _ = select.select([fd], [], [], POLL_S)
                if readable:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break  # the process has ended
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line and self._handle(json.loads(line)):
                            closed = True
        except Exception as exc:  # keep the error for the diagram
            self._error = self._error or exc
        finally:
            if not self._stopping:
                self.ended_at = time.time()
            self._stop.set()
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    def _handle(self, message: dict[str, Any]) -> bool:
        """Act on one line from the process; True when it has closed."""
        if "stats" in message:
            self.events_seen, self.received, self.markers_sent, *more = message["stats"]
            self.clients_seen = more[0] if more else self.clients_seen
        if "clients" in message and self.on_clients is not None:
            self.on_clients([decode_client(item) for item in message["clients"]])
        if "events" in message:
            self.on_events([decode(item) for item in message["events"]])
        if "synced" in message:
            with self._cond:
                self._synced = max(self._synced, int(message["synced"]))
                self._cond.notify_all()
        elif "counts" in message:
            with self._cond:
                self._counts[int(message["counts"])] = message["result"]
                self._cond.notify_all()
        elif "ready" in message:
            self.queue, self.was_on = message["ready"], bool(message["was_on"])
            self.lifecycle = bool(message.get("lifecycle", False))
            self.clients_queue = str(message.get("clients_queue") or "")
            self._ready.set()
        elif "error" in message:
            self._error_text = str(message["error"])
            self._error = TutorialError(
                "The diagram's firehose consumer failed: " + message["error"]
            )
            self._ready.set()
        return "closed" in message


def why_lost(error: str) -> str:
    """One line for the learner from the firehose process's last error: why the diagram
    stopped counting. A restart closes every connection with CONNECTION_FORCED and the
    reason 'shutdown'; an operator closing it in the management UI gives another reason."""
    if "CONNECTION_FORCED" in error:
        if "shutdown" in error:
            return "the broker closed the diagram's connection (CONNECTION_FORCED, a restart?)"
        reason = re.sub(r"[\"')]+$", "", error.split("CONNECTION_FORCED - ", 1)[-1])
        return f"the broker closed the diagram's connection (CONNECTION_FORCED: {reason})"
    if any(word in error for word in ("StreamLost", "ConnectionReset", "EOF", "refused")):
        return "the diagram lost its connection to the broker (is the broker running?)"
    return f"the diagram's firehose consumer stopped ({error})"
