"""The live message-flow diagram and the publish panel, for notebooks.

The diagram shows what the real broker did: the topology comes from the management API,
and each message's path from the firehose (`routed_queues`), never from routing rules
re-implemented in Python. It is a stock `ipywidgets.HTML` holding inline SVG (SMIL
animations), so it needs no JupyterLab build, and its last state is saved with the notebook.

Use it in a chapter like this::

    from helpers.widgets import FlowDiagram

    diagram = FlowDiagram(broker, prefix="ch04.")  # only names starting with ch04.
    diagram                                         # last expression: shows the live diagram

    channel.basic_publish(exchange="ch04.logs", routing_key="kern.error", body=b"disk full")
    diagram.wait_until_caught_up()   # the picture now shows every message published so far

    diagram.publish_panel()          # the diagram with a form that calls basic_publish
    diagram.close()                  # firehose off (if we switched it on), trace queue gone

or as a context manager (`with FlowDiagram(broker, prefix="ch04.") as diagram: ...`).
`prefix` says what is drawn (`helpers.flow.scope`): a name ending in a separator
(`ch04.`) is a prefix; any other name is that name and the names under it (`ch05.jobs`
draws `ch05.jobs.dlx`, `celery` does not draw `celeryev`); a compiled regular expression
draws the names it finds; a tuple mixes them, e.g. `prefix=("ch04.fanout_logs", queue_name)`
with a server-named queue (`amq.gen-...`). Housekeeping traffic (Celery's pidbox and worker
heartbeats) is left out of the picture and the log unless `housekeeping=True`; the totals
count it apart.

What the picture says (`helpers.view.scene`): one box per program, under the name its code
gave its connection (`client_properties={"connection_name": ...}`), known at once from the
broker's client events (`rabbitmq_event_exchange`; without them, from the management API);
a consumer drawn as a consumer, `basic_get` only for basic_get; a program that has left
stays, marked "left", while its counts are on the picture, until `diagram.reset()`; queues
that have gone (reply queues) folded into one box per exchange, so every count adds up. The
tutorial's own connections (checks, the publish panel) are drawn quieter, or left out with
`show_helpers=False`. `diagram.pin()` shows the live diagram in JupyterLab's side panel too.

What a notebook can rely on:

- Creating the diagram switches the firehose on for `broker.vhost`, and `close()` switches it
  off again unless it was on before (several diagrams, even in other kernels, share it). Its
  trace queue is exclusive and auto-delete, and is never drawn: nothing is left behind.
- `wait_until_caught_up()` blocks (a few seconds at most) until every message published
  before the call is drawn and the queue counts have settled, so the saved state is the same
  on every run. Call it at the end of every cell that publishes, acks or consumes.
- The displayed output's text/plain is the `summary()` of what was drawn when it was first
  displayed (exchanges, bindings, queues with their counts, message totals; no ids, ports or
  timings), which nbval compares. `repr(diagram)` is the current summary.
- Its text/html is a static picture, updated on each `wait_until_caught_up()`, so GitHub
  and nbviewer show the last state; `tests/nbval_sanitize.cfg` leaves it out of comparisons.
- At most ~10 renders a second reach the browser, however fast messages arrive.
- When the broker drops the diagram's connection (a restart), the picture and
  `wait_until_caught_up()` say why in one line, and the diagram reconnects (a new firehose
  process, tracing switched on again) once the broker answers. Its totals then miss what
  happened meanwhile: the picture and `summary()` say "counts have a gap", only then.
- Everything from messages and the broker (bodies, keys, headers, names) is HTML-escaped.

The same events, in order, as a sequence diagram (`helpers.view.sequence` says what each
arrow is drawn from, and what the firehose does not show)::

    span = diagram.mark()                       # where the span starts
    ... the cell publishes, consumes, acks ...
    diagram.record("ch05.worker", "ack", "delivery tag 1")  # what only the program saw
    diagram.sequence(since=span)                # last expression: shows the sequence

`sequence(last=N)` draws the last N steps instead. Its saved output is a static picture
(between the same markers as the diagram's, left out of nbval's comparison) and a text/plain
listing without ids, ports or timings, which nbval compares.
"""

from __future__ import annotations

import atexit
import base64
import threading
import time
import uuid
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ipywidgets

from helpers.alarms import active_alarms
from helpers.errors import ManagementError
from helpers.flow.caught_up import CatchUp, alarm_reason
from helpers.flow.events import TraceEvent
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.scope import Prefix
from helpers.flow.state import FlowState, Message
from helpers.flow.topology import read_topology
from helpers.flow.tracer import Tracer
from helpers.flow.tracing import reset_stale_tracing
from helpers.i18n import _
from helpers.management import ManagementClient
from helpers.probe import port_is_free
from helpers.view.panel import PublishPanel
from helpers.view.seq_api import SequenceMethods
from helpers.view.svg import esc, render_svg
from helpers.view.text import summary

if TYPE_CHECKING:
    from helpers.broker import Broker

TOPOLOGY_EVERY_S = 1.0  # idle refresh of counts and topology from the management API
TOPOLOGY_AFTER_EVENTS_S = 0.25  # refresh this soon after events arrived
TICK_S = 0.05  # the refresher thread looks this often whether to read or render
RECONNECT_EVERY_S = 0.5  # while the broker is away, look this often whether it is back
RECONNECT_START_S = 5.0  # a new firehose process that does not consume by then: try later
LOST_WAIT_S = 2.0  # the API failed during a wait: this long for the tracer to tell why
STATIC_START = "<!--flow-diagram-->"
STATIC_END = "<!--/flow-diagram-->"


class CaughtUp:
    """What `wait_until_caught_up()` found: true when the picture caught up.

    It shows nothing as the last line of a cell (the one-line note was printed already), so
    the chapters' saved outputs do not change with it.
    """

    def __init__(self, ok: bool, why: str = "") -> None:
        self.ok, self.why = ok, why

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"CaughtUp({self.ok}{', ' + repr(self.why) if self.why else ''})"

    def _ipython_display_(self) -> None:
        pass


# -- the widget ------------------------------------------------------------------------------

_live: weakref.WeakSet[FlowDiagram] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for diagram in list(_live):
        diagram.close()


class FlowDiagram(SequenceMethods):
    """A live picture of what the broker does with messages whose names start with `prefix`.

    Creating it starts a firehose consumer in a background thread; see the module docstring.
    Its sequence view (`mark`, `record`, `sequence`) comes from `helpers.view.seq_api`.
    """

    def __init__(
        self,
        broker: Broker,
        prefix: Prefix = "",
        max_renders_per_s: float = 10.0,
        show_helpers: bool = True,
        housekeeping: bool = False,
    ):
        # Running a diagram's cell again replaces the diagram it made before: an earlier one
        # of this kernel with the same broker, vhost and prefix is closed first.
        for old in list(_live):
            if (old.broker.host, old.broker.port, old.broker.vhost, old.prefix) == (
                broker.host,
                broker.port,
                broker.vhost,
                prefix,
            ):
                old.close()
        self.broker = broker
        self.prefix = prefix
        # The tutorial's own connections (checks, the publish panel) drawn, quieter; False
        # leaves them out of the picture (their counts stay in the totals).
        self.show_helpers = show_helpers
        self.state = FlowState(prefix=prefix, housekeeping=housekeeping)
        self.widget = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        self.widget.add_class("flow-diagram-widget")
        self.renders = 0
        self.closed = False
        self._min_interval = 1.0 / max_renders_per_s
        self._lock = threading.RLock()
        self._rendered_version = -1
        self._last_render = 0.0
        self._refresh_due = 0.0
        self._event_read = 0.0  # when events last brought a topology read forward
        self._due_to_events = False
        self._display_id: str | None = None
        self._display_text = ""
        self._panel: PublishPanel | None = None
        # Broker restarts: (lost at, back at, why) per reconnect, as time.time(); how many of
        # them wait_until_caught_up has printed; one reconnect attempt at a time.
        self._gaps: list[tuple[float, float, str]] = []
        self._gaps_told = 0
        self._reconnect_lock = threading.Lock()
        self._next_reconnect = 0.0
        self._drawn_notice = ""
        # The background thread gets its own HTTP session; this one is for the notebook's.
        self._api = ManagementClient(broker.management_url, broker.username, broker.password)
        self._api_bg = ManagementClient(broker.management_url, broker.username, broker.password)
        self.state.set_topology(read_topology(self._api, broker.vhost))
        self.tracer = Tracer(broker, self._on_events, on_clients=self._on_clients)
        self.tracer.start()
        self.state.hide_queue(self.tracer.queue)
        self._render(force=True)
        self._stop = threading.Event()
        self._refresher = threading.Thread(
            target=self._refresh, name="flow-diagram-refresh", daemon=True
        )
        self._refresher.start()
        _live.add(self)

    # -- what the notebook calls -----------------------------------------------------------

    def wait_until_caught_up(self, timeout: float = 10.0) -> CaughtUp:
        """Block until every message published so far is drawn and the counts have settled.

        Bounded by `timeout` seconds. Returns a true `CaughtUp` when the picture caught up
        (it shows nothing as a cell's last line). When it could not (a burst still draining
        from the firehose, counts the broker had not settled, a resource alarm that blocks
        publishers), it returns a false one and prints one line saying so, never a silently
        stale picture; the ready counts are then taken from the queues themselves. Call it at
        the end of a cell that publishes, acks or consumes, so the state saved with the
        notebook is the same on every run.

        While the broker is away (a restart dropped the diagram's connection), it returns a
        false one at once, with that reason: waiting could not help. Once the broker answers
        again it reconnects first, and says once that the counts have a gap.
        """
        if self.closed:
            return CaughtUp(True)
        deadline = time.monotonic() + timeout
        if not self.tracer.alive:
            self._reconnect()  # the broker may be back: then this wait goes on as usual
        tracer = self.tracer
        drained = tracer.settle(max(0.1, deadline - time.monotonic()))
        if not tracer.alive:  # the broker is away, or went while we waited: say so at once
            return self._not_connected(tracer)
        self._tell_gaps()
        # The queues themselves answer at once (passive declares); the API's consumer list
        # lags, and so do quorum and stream queues' counts: read both until they agree
        # (helpers.flow.caught_up says when).
        judge = CatchUp()
        while True:
            # The queues of this read (one declared a moment ago is not drawn yet), then
            # their own counts.
            try:
                topology = read_topology(self._api, self.broker.vhost)
            except ManagementError:
                if _ends_within(tracer, LOST_WAIT_S):  # the broker is going away
                    return self._not_connected(tracer)
                if time.monotonic() < deadline:  # a hiccup of a busy API: ask again
                    time.sleep(0.2)
                    continue
                raise
            with self._lock:
                names = [q.name for q in topology.queues if self.state.queue_visible(q.name)]
                pending = self.state.pending
            left = max(0.1, min(2.0, deadline - time.monotonic()))
            answer = tracer.queue_counts(names, timeout=left)
            if answer is None and not tracer.alive:
                return self._not_connected(tracer)
            exact = answer or {}
            verdict = judge.observe(topology, answer, names, pending, time.monotonic())
            caught = verdict.caught
            if caught or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not caught:  # at least the ready counts are the queues' own
            topology = replace(
                topology,
                queues=tuple(
                    replace(q, ready=exact[q.name][0]) if q.name in exact else q
                    for q in topology.queues
                ),
            )
        with self._lock:
            self.state.set_topology(topology)
            self._render(force=True)
        self._update_display()
        if not (caught and drained):
            # A resource alarm stops the firehose's markers too: then that is the reason.
            why = alarm_reason(active_alarms(self.broker)) or (
                _("messages are still arriving from the firehose")
                if not drained
                else _("the broker's statistics had not settled ({why})").format(why=verdict.why)
            )
            print(
                _(
                    "(the diagram did not catch up within {timeout:g} s: {why}; what it shows may "
                    "be behind)"
                ).format(timeout=timeout, why=why)
            )
            return CaughtUp(False, why)
        return CaughtUp(True)

    def summary(self) -> str:
        """The deterministic text of what is drawn now (see helpers.view.text.summary).

        After a broker restart it ends with one more line, saying that the counts have a
        gap (or that the diagram is reconnecting); only then, so that a chapter's saved
        output stays the same whenever nothing went away.
        """
        with self._lock:
            text = summary(self.state)
        notice = self._notice()
        return f"{text}\n  {notice}" if notice else text

    def exchange_names(self) -> list[str]:
        """The exchanges drawn now (the publish panel offers them)."""
        with self._lock:
            return [x.name for x in self.state.visible_exchanges()]

    def find_publish(self, message_id: str) -> Message | None:
        """The newest publish with this message_id among the recent messages, if any."""
        with self._lock:
            for m in reversed(self.state.recent):
                if m.kind == "publish" and m.message_id == message_id:
                    return m
        return None

    def html(self, animate: bool = False) -> str:
        """The current picture as an HTML fragment (static by default), e.g. for a report.

        The static picture is the SVG as an `<img>` (a data: URI), not inline SVG: JupyterLab
        sanitizes the HTML of an untrusted notebook (one a newcomer just opened) and drops
        inline SVG, leaving its labels as a run of text, while an image survives; so do
        GitHub and nbviewer. The animated, inline form is the live widget's.
        """
        with self._lock:
            fragment = render_svg(self.state, animate=animate, show_helpers=self.show_helpers)
            alt = self.state.totals()
        fragment += _notice_html(self._notice())
        if animate:
            return STATIC_START + fragment + STATIC_END
        start, end = fragment.index("<svg"), fragment.index("</svg>") + len("</svg>")
        data = base64.b64encode(fragment[start:end].encode()).decode("ascii")
        caption = ", ".join(f"{k} {v}" for k, v in alt.items())
        img = (
            f'<img class="flow-static" alt="flow diagram: {esc(caption)}" '
            f'src="data:image/svg+xml;base64,{data}" style="max-width:100%"/>'
        )
        return STATIC_START + fragment[:start] + img + fragment[end:] + STATIC_END

    def publish_panel(self, show_diagram: bool = True) -> PublishPanel:
        """A form (exchange, routing key, headers, body, Publish) that calls basic_publish.

        With `show_diagram` the diagram is shown beside it, so display one or the other.
        """
        if self._panel is None:
            self._panel = PublishPanel(self, show_diagram=show_diagram)
        return self._panel

    def pin(self, title: str | None = None) -> None:
        """Also show the live diagram in a panel beside the notebook (JupyterLab), so that
        it stays in view while the cells below it run; the inline one stays as it is.

        Prints nothing and does nothing where no side panel can show (nbval, nbconvert, VS
        Code): see `helpers.view.pin` for what happens where, and for `title`.
        """
        from helpers.view.pin import pin

        pin(self, title)

    def reset(self) -> None:
        """Start counting again from zero: the totals, the edges' counts, the log and the
        programs that have left go; what exists on the broker now stays drawn."""
        with self._lock:
            self.state.reset()
            self._render(force=True)
        self._update_display()

    def close(self) -> None:
        """Stop the firehose consumer, delete its queue, switch tracing off if we were last."""
        if self.closed:
            return
        with self._lock:  # a reconnect that finishes now sees it (see _reconnect)
            self.closed = True
        _live.discard(self)
        self._stop.set()
        tracer = self.tracer
        lost = tracer.lost is not None
        tracer.stop()
        if lost:
            # Its firehose process went with the broker (a restart) and could not switch
            # tracing off; if no other diagram is attached now, nobody else will.
            try:
                reset_stale_tracing(self._api, self.broker.vhost)
            except Exception:  # the broker is still away: the next diagram resets it
                pass
        self._refresher.join(5.0)
        with self._lock:
            self._render(force=True)

    def __enter__(self) -> FlowDiagram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self.summary()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            self._display_text = self.summary()
        display(self._bundle(), raw=True, display_id=self._display_id)

    def _bundle(self) -> dict[str, Any]:
        data = dict(self.widget._repr_mimebundle_() or {})
        data["text/plain"] = self._display_text or self.summary()
        data["text/html"] = self.html()
        return data

    def _update_display(self) -> None:
        if self._display_id is None:
            return
        from IPython.display import update_display

        update_display(self._bundle(), raw=True, display_id=self._display_id)

    # -- when the broker goes away -----------------------------------------------------------

    def _notice(self) -> str:
        """One line about the diagram's connection: why it is not counting now, or that its
        counts have a gap; "" when it has counted all along."""
        tracer = self.tracer
        lost = None if self.closed else tracer.lost
        if lost is not None:
            return _("{lost}: reconnecting (nothing counted since {time})").format(
                lost=lost, time=_clock(tracer.ended_at)
            )
        if not self._gaps:
            return ""
        start, end, why = self._gaps[-1]
        earlier = len(self._gaps) - 1
        more = (
            _(" ({earlier} earlier gap{s} too)").format(
                earlier=earlier, s="s" if earlier > 1 else ""
            )
            if earlier
            else ""
        )
        return (
            _(
                "counts have a gap: {why} at {start}, and the diagram reconnected at {end}; "
                "nothing in between was counted{more}"
            ).format(why=why, start=_clock(start), end=_clock(end), more=more)
        )

    def _not_connected(self, tracer: Tracer) -> CaughtUp:
        """What a wait says while the broker is away: the true reason, at once, in one line."""
        lost = tracer.lost or _("the diagram is not connected to the broker")
        why = _("{lost}: reconnecting").format(lost=lost)
        with self._lock:
            self._render(force=True)
        self._update_display()
        print(_("(the diagram cannot catch up: {why})").format(why=why))
        return CaughtUp(False, why)

    def _tell_gaps(self) -> None:
        """Print, once, that the diagram reconnected and its totals have a gap."""
        if len(self._gaps) > self._gaps_told:
            self._gaps_told = len(self._gaps)
            print(f"({self._notice()})")

    def _reconnect(self) -> bool:
        """Start a new tracer when the last one was lost and the broker answers again.

        Called by the refresher thread every RECONNECT_EVERY_S, and by wait_until_caught_up.
        The new firehose process switches tracing on again by the rules of
        `helpers.flow.tracing` (a restart dropped every diagram's trace queue, so the count
        starts again from the diagrams that come back). True when a tracer runs.
        """
        with self._reconnect_lock:
            old = self.tracer
            if self.closed or old.alive or old.lost is None:
                return not self.closed and old.alive
            if port_is_free(self.broker.host, self.broker.port):
                return False  # the broker is still away
            try:
                new: Tracer | None = Tracer(
                    self.broker, self._on_events, on_clients=self._on_clients
                ).start(RECONNECT_START_S)
            except Exception:  # not quite back yet (its management API comes last): later
                return False
            assert new is not None
            with self._lock:
                if not self.closed:
                    self._gaps.append((old.ended_at or time.time(), time.time(), old.lost or ""))
                    self.tracer = new
                    self.state.hide_queue(new.queue)
                    self._render(force=True)
                    new = None
            if new is not None:  # the diagram was closed meanwhile
                new.stop()
                return False
            return True

    # -- the background thread -------------------------------------------------------------

    def _on_clients(self, events: list[ClientEvent]) -> None:
        with self._lock:
            self.state.add_client_events(events)

    def _on_events(self, events: list[TraceEvent]) -> None:
        with self._lock:
            if self.state.add_events(events):
                # Soon after the first events; while they keep coming (a burst), at most
                # once a TOPOLOGY_EVERY_S: each read costs the kernel, whose CPU the
                # learner's publisher needs (benchmarks/flow_view.py, publisher ratio).
                now = time.monotonic()
                due = max(now + TOPOLOGY_AFTER_EVENTS_S, self._event_read + TOPOLOGY_EVERY_S)
                if due < self._refresh_due:
                    self._refresh_due = due
                    self._due_to_events = True

    def _refresh(self) -> None:
        """The refresher thread: the topology every TOPOLOGY_EVERY_S (sooner after events),
        and a render when something changed, at most max_renders_per_s a second.

        Its own thread, not the tracer's: five HTTP calls must not hold up the events."""
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            if now >= self._refresh_due:
                if self._due_to_events:
                    self._event_read, self._due_to_events = now, False
                self._refresh_due = now + TOPOLOGY_EVERY_S
                try:
                    topology = read_topology(self._api_bg, self.broker.vhost)
                except Exception:  # a hiccup of the API: keep the last picture
                    topology = None
                if topology is not None:
                    with self._lock:
                        self.state.set_topology(topology)
            if now >= self._next_reconnect and not self.tracer.alive:
                self._next_reconnect = now + RECONNECT_EVERY_S
                self._reconnect()
            if now - self._last_render >= self._min_interval:
                with self._lock:
                    if not self.closed:
                        self._render()

    def _render(self, force: bool = False) -> None:
        """Render if something changed (always with `force`); caller holds the lock."""
        notice = self._notice()
        if (
            not force
            and self.state.version == self._rendered_version
            and notice == self._drawn_notice
        ):
            return
        self._rendered_version = self.state.version
        self._drawn_notice = notice
        self._last_render = time.monotonic()
        value = render_svg(
            self.state, now=self._last_render, show_helpers=self.show_helpers
        ) + _notice_html(notice)
        if self.closed:
            value += (
                '<div style="font:11px sans-serif;color:#6b7280">' + esc(_("(closed)")) + "</div>"
            )
        if value != self.widget.value:
            self.widget.value = value
            self.renders += 1


def _clock(at: float | None) -> str:
    """A wall-clock time of today, to the second, for the notices above."""
    return time.strftime("%H:%M:%S", time.localtime(at if at is not None else time.time()))


def _notice_html(notice: str) -> str:
    """The one-line notice under the picture (a broker restart), or nothing."""
    if not notice:
        return ""
    style = "font:12px sans-serif;color:#b45309"
    return f'<div class="flow-notice" style="{style}">⚠ {esc(notice)}</div>'


def _ends_within(tracer: Tracer, seconds: float) -> bool:
    """True once the tracer has ended, waiting at most `seconds` for it (the API went first:
    during a broker's shutdown the management API stops a moment before connections close)."""
    deadline = time.monotonic() + seconds
    while tracer.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    return not tracer.alive
