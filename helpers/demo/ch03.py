"""Chapter 03's work-queue harness: start the worker threads together, time their tasks.

The lesson is the worker itself, in the notebook (its own connection, `basic_qos`,
`basic_consume`, an ack per task). This module only stages the race: it starts one thread
per worker, waits at a barrier until every worker has subscribed, publishes the tasks, waits
until all are acknowledged (or `timeout`), lets the diagram catch up while the workers are
still subscribed, then stops the workers, also when the cell is stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_workers(
    worker: Callable,
    workers: list[tuple[str, float]],
    publish_tasks: Callable[[], None],
    expected: int,
    caught_up: Callable[[], object] | None = None,
    timeout: float = 10.0,
) -> list[tuple[str, int, float, float]]:
    """Run `worker(name, seconds_per_dot, log, ready, stop)` in a thread per (name, seconds).

    Each worker appends (name, task number, start, end) to `log`, calls `ready.wait()` once
    it consumes, and returns when `stop` is set. Returns the log with times in seconds since
    the tasks were published.
    """
    log: list[tuple[str, int, float, float]] = []
    ready, stop = threading.Barrier(len(workers) + 1), threading.Event()
    threads = [
        threading.Thread(target=worker, args=(name, seconds, log, ready, stop))
        for name, seconds in workers
    ]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=timeout)  # every worker consumes before the first task arrives
        t0 = time.monotonic()
        publish_tasks()
        deadline = t0 + timeout
        while len(log) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        if caught_up is not None:
            caught_up()  # e.g. the diagram, while the workers are still subscribed
    finally:  # also when the cell is stopped: the workers end and close their connections
        stop.set()
        ready.abort()
        for thread in threads:
            thread.join()
    return [(name, task, start - t0, end - t0) for name, task, start, end in log]
