"""matplotlib views of what the broker held over time, and static charts of an experiment.

`Recorder` samples the management API in a background thread (HTTP only, no AMQP, so it is
safe beside a notebook's pika connection) while a cell runs an experiment::

    from helpers.charts import Recorder, plot_depths, plot_rates, plot_spread

    with Recorder(broker, prefix="ch05.", interval=0.25) as rec:
        ...publish and consume with pika...
    plot_depths(rec);   # ready / unacked per queue over time
    plot_rates(rec);    # publish / deliver / ack per second
    plot_spread(diagram.state.deliveries_by_consumer("ch05.tasks"), "Who got the work");

Depths come from the queues themselves (exact at each sample). Rates are differences of the
broker's cumulative counters between samples; the broker refreshes those counters once per
statistics interval (0.5 s on the private node, 5 s by default), so keep windows longer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from helpers.broker import Broker

COUNTERS = ("publish", "deliver_get", "ack")


@dataclass
class Sample:
    t: float  # seconds since the recorder started
    ready: dict[str, int] = field(default_factory=dict)
    unacked: dict[str, int] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> name -> total


class Recorder:
    """Samples queue depths and message counters for queues whose names start with `prefix`."""

    def __init__(
        self, broker: Broker, prefix: str = "", interval: float = 0.25, max_samples: int = 2400
    ):
        from helpers.management import ManagementClient

        self.broker = broker
        self.prefix = prefix
        self.interval = interval
        self.max_samples = max_samples
        self.samples: list[Sample] = []
        self._api = ManagementClient(broker.management_url, broker.username, broker.password)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flow-recorder", daemon=True)
        self._t0 = 0.0

    def start(self) -> Recorder:
        self._t0 = time.monotonic()
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sample()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Recorder(prefix={self.prefix!r}, queues={self.queues()})"

    def queues(self) -> list[str]:
        names: set[str] = set()
        for s in self.samples:
            names |= s.ready.keys()
        return sorted(names)

    def sample(self) -> Sample:
        """Take one sample now (also called by the background thread)."""
        vhost = self.broker.vhost
        s = Sample(time.monotonic() - self._t0)
        for q in self._api.queue_totals(vhost):
            if q["name"].startswith(self.prefix):
                s.ready[q["name"]] = int(q.get("messages_ready") or 0)
                s.unacked[q["name"]] = int(q.get("messages_unacknowledged") or 0)
        for q in self._api.queues(vhost):
            if q["name"].startswith(self.prefix):
                stats = q.get("message_stats") or {}
                s.counters[q["name"]] = {c: int(stats.get(c) or 0) for c in COUNTERS}
        if len(self.samples) < self.max_samples:
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a hiccup of the API: skip this sample
                continue


def _figure(title: str) -> tuple[Figure, object]:
    # pyplot (not a bare Figure) so that Jupyter's inline backend knows how to show it;
    # closed at once, so it is shown once, as the value the cell returns.
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 3.2), layout="constrained")
    plt.close(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def plot_depths(recorder: Recorder, title: str = "Queue depth") -> Figure:
    """Ready (solid) and unacknowledged (dashed) messages per queue over time."""
    fig, ax = _figure(title)
    t = [s.t for s in recorder.samples]
    for q in recorder.queues():
        line = ax.plot(t, [s.ready.get(q, 0) for s in recorder.samples], label=f"{q} ready")[0]
        ax.plot(
            t,
            [s.unacked.get(q, 0) for s in recorder.samples],
            linestyle="--",
            color=line.get_color(),
            label=f"{q} unacked",
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages")
    if recorder.queues():
        ax.legend(fontsize="small")
    return fig


def rates(recorder: Recorder) -> dict[str, list[tuple[float, float]]]:
    """Messages per second for each counter, summed over the queues: {name: [(t, rate)]}."""
    out: dict[str, list[tuple[float, float]]] = {c: [] for c in COUNTERS}
    samples = recorder.samples
    for a, b in zip(samples, samples[1:], strict=False):
        dt = b.t - a.t
        if dt <= 0:
            continue
        for c in COUNTERS:
            before = sum(v.get(c, 0) for v in a.counters.values())
            after = sum(v.get(c, 0) for v in b.counters.values())
            out[c].append((b.t, max(0, after - before) / dt))
    return out


def plot_rates(recorder: Recorder, title: str = "Message rates") -> Figure:
    """Publish, deliver and ack rates (messages per second) over the recorded window."""
    fig, ax = _figure(title)
    for name, points in rates(recorder).items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name.replace("_get", ""))
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages / s")
    ax.legend(fontsize="small")
    return fig


def plot_spread(counts: Mapping[str, int], title: str = "Messages per consumer") -> Figure:
    """A static bar chart of a finished experiment, e.g. how work spread over consumers.

    `counts` maps a label to a number, such as `diagram.state.deliveries_by_consumer(q)`.
    """
    fig, ax = _figure(title)
    labels = list(counts)
    bars = ax.bar(range(len(labels)), [counts[k] for k in labels], color="#7c3aed")
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0)
    ax.bar_label(bars)
    ax.set_ylabel("messages")
    return fig
