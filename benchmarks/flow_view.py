"""How fast the live flow diagram is, and what it costs a publisher.

Prints `name=value` lines (targets from issue #3):
- events_per_s: real trace messages (recorded from the broker's firehose, then replayed)
  parsed and applied to the diagram state per second; target >= 5000.
- peak_mb: peak Python memory allocated while 100,000 messages go through the state
  (tracemalloc); bounded, it does not grow with the number of messages.
- renders_per_s: renders that reach the widget (and so the browser) per second while a
  burst of messages is traced; target <= 10.
- e2e_events_per_s, burst_lag_s: the real path, end to end: a publisher on its own
  connection sends a burst of 20,000 messages; how fast the diagram's state takes them in
  from the firehose (first publish to last event applied), and how far behind it still is
  when the publisher has finished (issue: >= 5,000 and <= 2 s on an idle machine). Nobody
  calls wait_until_caught_up meanwhile, so this is the pace a learner watching sees.
  Medians of BURSTS bursts, and the worst lag.
- burst_lag_loaded_s, e2e_events_per_s_loaded: the same bursts while a CPU-heavy program
  runs beside them (LOAD_PROCESSES busy loops at nice 0, started after the diagram and
  before the burst, stopped after it), as on a laptop that is doing something else or a
  shared CI machine (target: lag <= 3 s). caught_up_loaded_s: how long a
  wait_until_caught_up() called as soon as the publisher of one more such burst had
  finished took (as a notebook cell does; it gives up after 10 s), and caught_up_loaded_ok
  whether it said it had caught up.
  burst_cpu_s_* (Linux only): the CPU seconds the firehose process and the diagram's two
  threads in this process (the tracer's reader, the refresher) used from the burst's first
  publish until the diagram had it all, unloaded: what each side costs per 20,000 messages.
- publisher_ratio: publisher throughput with a diagram attached / without, in the same run,
  as the median of 5 paired runs (target >= 0.8), and its worst pair.
- firehose_floor_ratio: the same ratio with only RabbitMQ's firehose switched on and one
  trace queue that nobody reads (measured in the same rounds). That is what tracing costs
  the broker itself, so it is the best ratio any diagram fed by the firehose can reach on
  this machine; on 2 cores, where a publisher and the broker already keep both cores busy,
  it is well below 0.8. publisher_ratio_of_floor says how much of that the diagram keeps
  (target >= 0.8). publishing_cpu_share_* (Linux only): the CPU the diagram used while the
  publisher ran, as a share of one core (medians): the firehose process, and the kernel's
  reader and refresher threads, which take the publisher's own interpreter (the GIL). It
  moves far less with the machine's load than the ratios do.
- publisher_ratio_loaded, firehose_floor_ratio_loaded, publisher_ratio_loaded_of_floor,
  publishing_cpu_share_loaded_*: the same with the busy loops running (medians of
  LOAD_PAIRS pairs): what the diagram takes from the program being watched when the CPU is
  short.
- sched: how the scheduler weighed the firehose process against the busy loops (see
  `weigh_by_nice`; FLOW_SCHED=autogroup measures this machine as it is).
- load_before/after, cpu_pressure_before/after: the machine's 1-minute load average and
  Linux's CPU pressure (percent of the last 10 s in which something waited for a CPU) when
  the script started and ended (the busy loops add about LOAD_PROCESSES to the load): on a
  machine that others are using the numbers are noisy; compare ratios from one run.

Everything happens in a private vhost (`flowdev-bench-...`) that is deleted at the end.
Run: .venv/bin/python benchmarks/flow_view.py (any broker `helpers.find_broker` finds; the
repository's private node: TUTORIAL_BROKER=private TUTORIAL_NODE_DIR=.rabbitmq/reference).
To measure another checkout's helpers with this script (old against new in one sitting),
run it from that checkout's directory with PYTHONPATH set to it: the diagram starts its
firehose process with `python -m`, which looks in the current directory first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid

import pika

from helpers import Broker, find_broker
from helpers.flow.events import TRACE_EXCHANGE, parse
from helpers.flow.state import FlowState
from helpers.flow.topology import read_topology
from helpers.widgets import FlowDiagram

MESSAGES = 100_000
BURST = 20_000
PUBLISH = 20_000
LOAD_PROCESSES = 2  # busy loops beside the burst for the *_loaded numbers
LOAD_PAIRS = 3  # publisher_ratio_loaded: median of this many pairs
BURSTS = 3  # the burst numbers: median (and worst) of this many bursts


def _connect(b: Broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(b.connection_parameters())


def _declare(ch) -> None:
    ch.exchange_declare("flowdev.bench", "topic")
    for q, key in (("flowdev.all", "#"), ("flowdev.errors", "*.error"), ("flowdev.kern", "kern.*")):
        ch.queue_declare(q, durable=True, arguments={"x-max-length": 50_000})
        ch.queue_bind(q, "flowdev.bench", key)


def record(b: Broker, n: int = 2000) -> list[tuple[str, dict, bytes]]:
    """Real firehose messages: publishes (routed and unroutable) and deliveries."""
    api = b.management
    api.set_tracing(b.vhost, True)
    conn = _connect(b)
    ch = conn.channel()
    tq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(tq, TRACE_EXCHANGE, "#")
    keys = ["kern.error", "app.info", "kern.info", "nobody"]
    for i in range(n):
        ch.basic_publish("flowdev.bench", keys[i % 4], f"message {i}".encode())
    for _ in range(n // 4):
        ch.basic_get("flowdev.all", auto_ack=True)
    raw = []
    for method, props, body in ch.consume(tq, auto_ack=True, inactivity_timeout=1.0):
        if method is None:
            break
        raw.append((method.routing_key, props.headers, body))
    ch.cancel()
    conn.close()
    api.set_tracing(b.vhost, False)
    return raw


def ingest(b: Broker, raw: list[tuple[str, dict, bytes]], n: int) -> float:
    state = FlowState(prefix="flowdev.")
    state.set_topology(read_topology(b.management, b.vhost))
    feed = itertools.islice(itertools.cycle(raw), n)
    t0 = time.perf_counter()
    batch = []
    for rk, headers, body in feed:
        batch.append(parse(rk, headers, body))
        if len(batch) == 500:
            state.add_events(batch)
            batch = []
    state.add_events(batch)
    elapsed = time.perf_counter() - t0
    assert state.events == n, (state.events, n)
    return elapsed


def publish_rate(b: Broker, n: int) -> float:
    conn = _connect(b)
    ch = conn.channel()
    body = b"x" * 100
    t0 = time.perf_counter()
    for i in range(n):
        ch.basic_publish("flowdev.bench", "kern.error" if i % 2 else "app.info", body)
    ch.queue_declare("flowdev.all", passive=True)  # a round trip: the broker took them all
    elapsed = time.perf_counter() - t0
    for q in ("flowdev.all", "flowdev.errors", "flowdev.kern"):
        ch.queue_purge(q)
    conn.close()
    return n / elapsed


def publish_rate_firehose_only(b: Broker, n: int) -> float:
    """Publisher throughput with tracing on and a trace queue nobody consumes."""
    conn = _connect(b)
    ch = conn.channel()
    tq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(tq, TRACE_EXCHANGE, "#")
    b.management.set_tracing(b.vhost, True)
    try:
        return publish_rate(b, n)
    finally:
        b.management.set_tracing(b.vhost, False)
        conn.close()  # the exclusive trace queue goes with it


SPIN = "x = 0\nwhile True:\n    x = (x + 1) % 1_000_003\n"  # a CPU-heavy program


@contextlib.contextmanager
def cpu_load(processes: int = LOAD_PROCESSES):
    """`processes` busy loops at the default priority (nice 0) while the block runs.

    Each runs in a session of its own, as another program on the machine would (a test run,
    a build): where Linux groups processes by session for scheduling (autogroup), each loop
    then weighs as much as the notebook's kernel or the firehose process, not less.
    FLOW_LOAD_SESSION=same keeps them in this process's session instead.
    """
    own = os.environ.get("FLOW_LOAD_SESSION", "own") != "same"
    loops = [
        subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=own)
        for _ in range(processes)
    ]
    try:
        time.sleep(0.3)  # they run before the measured part starts
        if any(p.poll() is not None for p in loops):
            raise RuntimeError("a busy loop of the CPU load did not start")
        yield
    finally:
        for p in loops:
            p.kill()
        for p in loops:
            p.wait()


def autogroup_on() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


UNWEIGHED: list[int] = []  # firehose processes weigh_by_nice could not weigh


def weigh_by_nice(diagram: FlowDiagram) -> None:
    """Let the scheduler weigh the diagram's firehose process by its nice value.

    With autogroup (Linux's default on many desktops and on this kind of VM) a nice value
    counts only against the processes of the same session, and the firehose process has a
    session of its own: its nice makes no difference. Where processes share one cgroup
    instead (a Docker container such as Binder's, a CI job, a systemd scope) it does: a nice
    10 process then gets about a tenth of a core beside one busy nice-0 program. This gives
    the firehose's session the process's own nice, so that the numbers here are those of
    that second kind of machine (FLOW_SCHED=autogroup leaves the session as it is).
    """
    process = getattr(diagram.tracer, "_process", None)
    if process is None or os.environ.get("FLOW_SCHED", "nice") != "nice" or not autogroup_on():
        return
    nice = os.getpriority(os.PRIO_PROCESS, process.pid)
    try:
        with open(f"/proc/{process.pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:  # not allowed here: the numbers are then the autogroup kind's
        UNWEIGHED.append(process.pid)


def sched_kind() -> str:
    """How this run's scheduler weighed the firehose process (see weigh_by_nice)."""
    if not autogroup_on():
        return "by-nice"
    if os.environ.get("FLOW_SCHED", "nice") == "nice":
        return "by-nice(autogroup-emulated)"
    return "autogroup"


def cpu_pressure() -> str:
    """Linux's CPU pressure (PSI): the share of the last 10 s in which some runnable task
    waited for a CPU, in percent; "n/a" where the kernel does not tell."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split()[1].split("=")[1]
    except (OSError, IndexError):
        return "n/a"


def _cpu_s(path: str) -> float | None:
    """utime + stime of a /proc stat file, in seconds (None where there is no /proc)."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _diagram_cpu(diagram: FlowDiagram) -> tuple[float, float, float] | None:
    """CPU seconds used so far by the diagram's firehose process, and by its two threads in
    this process (the tracer's reader, the refresher); None where /proc cannot tell."""
    process = getattr(diagram.tracer, "_process", None)
    reader = getattr(diagram.tracer, "_thread", None)
    refresher = getattr(diagram, "_refresher", None)
    if process is None or reader is None or refresher is None:
        return None
    spent = (
        _cpu_s(f"/proc/{process.pid}/stat"),
        _cpu_s(f"/proc/self/task/{reader.native_id}/stat"),
        _cpu_s(f"/proc/self/task/{refresher.native_id}/stat"),
    )
    return None if None in spent else spent  # type: ignore[return-value]


def _spent(before, after) -> tuple[float, float, float] | None:
    if before is None or after is None:
        return None
    return tuple(b - a for a, b in zip(before, after, strict=True))  # type: ignore[return-value]


@dataclasses.dataclass
class Burst:
    rate: float  # events per second, first publish to last event applied
    lag: float  # seconds from the publisher's last message to the diagram's totals
    cpu: tuple[float, float, float] | None = None  # firehose, reader, refresher CPU seconds
    caught_up: float | None = None  # seconds a wait_until_caught_up() right after took
    caught: bool = False  # and whether it said it caught up


def end_to_end(b: Broker, n: int, load: int = 0, wait: bool = False) -> Burst:
    """One burst of `n` messages from another connection, `load` busy loops beside it; with
    `wait`, wait_until_caught_up() is called as soon as the publisher has finished."""
    with FlowDiagram(b, prefix="flowdev.") as diagram:
        weigh_by_nice(diagram)
        conn = _connect(b)
        ch = conn.channel()
        with cpu_load(load) if load else contextlib.nullcontext():
            cpu_before = _diagram_cpu(diagram)
            t0 = time.perf_counter()
            for i in range(n):
                ch.basic_publish("flowdev.bench", "kern.error" if i % 2 else "app.info", b"x" * 100)
            ch.queue_declare("flowdev.all", passive=True)  # the broker has them all
            published = time.perf_counter()
            if wait:  # as a notebook cell does right after publishing
                with contextlib.redirect_stdout(io.StringIO()):  # its note, if it gives up
                    caught = diagram.wait_until_caught_up()
                waited = time.perf_counter() - published
            deadline = published + 120
            while diagram.state.totals()["published"] < n and time.perf_counter() < deadline:
                time.sleep(0.02)
            done = time.perf_counter()
            burst = Burst(n / (done - t0), done - published)
            burst.cpu = _spent(cpu_before, _diagram_cpu(diagram))
            if wait:
                burst.caught_up, burst.caught = waited, bool(caught)
        for q in ("flowdev.all", "flowdev.errors", "flowdev.kern"):
            ch.queue_purge(q)
        conn.close()
    return burst


def ratio_pairs(b: Broker, pairs: int, floor: bool) -> tuple[list[float], list[float], list]:
    """Publisher throughput with a diagram / without, `pairs` times; with `floor` also the
    firehose-only ratio of each pair; and the diagram's CPU while the publisher ran, as
    shares of a core (firehose, reader, refresher)."""
    ratios, floors, shares = [], [], []
    for _ in range(pairs):
        without = publish_rate(b, PUBLISH)
        if floor:
            floors.append(publish_rate_firehose_only(b, PUBLISH) / without)
        with FlowDiagram(b, prefix="flowdev.") as diagram:
            weigh_by_nice(diagram)
            before, t0 = _diagram_cpu(diagram), time.perf_counter()
            with_view = publish_rate(b, PUBLISH)
            elapsed, spent = time.perf_counter() - t0, _spent(before, _diagram_cpu(diagram))
        ratios.append(with_view / without)
        if spent is not None:
            shares.append([x / elapsed for x in spent])
    return ratios, floors, shares


CPU_PARTS = ("firehose", "kernel_reader", "kernel_refresh")


def _print_cpu(name: str, seconds) -> None:
    if seconds:
        for part, value in zip(CPU_PARTS, seconds, strict=True):
            print(f"{name}_{part}={value:.2f}")


def _median_shares(shares: list) -> list[float]:
    return [statistics.median(column) for column in zip(*shares, strict=True)] if shares else []


def main() -> None:
    print(f"load_before={os.getloadavg()[0]:.2f}")
    print(f"cpu_pressure_before={cpu_pressure()}")
    print(f"sched={sched_kind()}")
    root = find_broker(progress=None)
    vhost = f"flowdev-bench-{uuid.uuid4().hex[:6]}"
    root.management.create_vhost(vhost)
    root.management.set_permissions(vhost, root.username)
    b = dataclasses.replace(root, vhost=vhost)
    try:
        conn = _connect(b)
        _declare(conn.channel())
        conn.close()
        raw = record(b)
        elapsed = ingest(b, raw, MESSAGES)
        print(f"events_per_s={MESSAGES / elapsed:.0f}")
        tracemalloc.start()
        ingest(b, raw, MESSAGES)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak_mb={peak / 1e6:.2f}")

        with FlowDiagram(b, prefix="flowdev.") as diagram:
            start = diagram.renders
            t0 = time.perf_counter()
            publish_rate(b, BURST)
            diagram.wait_until_caught_up(timeout=30)
            elapsed = time.perf_counter() - t0
            print(f"renders_per_s={(diagram.renders - start) / elapsed:.1f}")

        bursts = [end_to_end(b, BURST) for _ in range(BURSTS)]
        lags = [x.lag for x in bursts]
        print(f"e2e_events_per_s={statistics.median(x.rate for x in bursts):.0f}")
        print(f"burst_lag_s={statistics.median(lags):.2f}")
        print(f"burst_lag_worst_s={max(lags):.2f}")
        _print_cpu("burst_cpu_s", _median_shares([x.cpu for x in bursts if x.cpu]))

        loaded = [end_to_end(b, BURST, load=LOAD_PROCESSES) for _ in range(BURSTS)]
        lags = [x.lag for x in loaded]
        print(f"e2e_events_per_s_loaded={statistics.median(x.rate for x in loaded):.0f}")
        print(f"burst_lag_loaded_s={statistics.median(lags):.2f}")
        print(f"burst_lag_loaded_worst_s={max(lags):.2f}")
        waited = end_to_end(b, BURST, load=LOAD_PROCESSES, wait=True)
        print(f"caught_up_loaded_s={waited.caught_up:.2f}")
        print(f"caught_up_loaded_ok={int(waited.caught)}")

        ratios, floors, shares = ratio_pairs(b, 5, floor=True)
        ratio, floor = statistics.median(ratios), statistics.median(floors)
        print(f"publisher_ratio={ratio:.2f}")
        print(f"publisher_ratio_worst={min(ratios):.2f}")
        print(f"firehose_floor_ratio={floor:.2f}")
        print(f"publisher_ratio_of_floor={ratio / floor:.2f}")
        _print_cpu("publishing_cpu_share", _median_shares(shares))

        with cpu_load():
            ratios, floors, shares = ratio_pairs(b, LOAD_PAIRS, floor=True)
        ratio, floor = statistics.median(ratios), statistics.median(floors)
        print(f"publisher_ratio_loaded={ratio:.2f}")
        print(f"firehose_floor_ratio_loaded={floor:.2f}")
        print(f"publisher_ratio_loaded_of_floor={ratio / floor:.2f}")
        _print_cpu("publishing_cpu_share_loaded", _median_shares(shares))
        print(f"load_after={os.getloadavg()[0]:.2f}")
        print(f"cpu_pressure_after={cpu_pressure()}")
        if UNWEIGHED:
            print(f"sched_not_emulated_for={len(UNWEIGHED)}")
    finally:
        for _ in range(20):  # the API can be slow to answer right after a burst
            try:
                root.management.delete_vhost(vhost)
                break
            except Exception:
                time.sleep(1)


if __name__ == "__main__":
    main()
