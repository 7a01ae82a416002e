"""Harness for chapter 06 (request/reply): running RPC servers in threads for one cell.

The chapter teaches the server's and the client's pika calls in its own cells (`serve()` and
the clients). Starting servers in threads, waiting until every one consumes, and stopping and
joining them at the end of the cell, also when it fails or is stopped with the stop button,
is plumbing that every section needs and none teaches: it lives here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# serve(name, ready, stop, work_s, served): one server; it waits on `ready` once it consumes,
# runs until `stop` is set, and appends (server, n, reply_to, started, finished) to `served`
# for every answer (the times from time.monotonic()).
Serve = Callable[[str, threading.Barrier, threading.Event, float, list], None]


@contextmanager
def server_threads(serve: Serve, names: Sequence[str],
                   work_s: float | dict[str, float] = 0.0) -> Iterator[list[Any]]:
    """Run `serve` in one thread per name while the with block runs; yield what they served.

    Every server consumes before the block starts (a barrier), and all are stopped and joined
    when it ends, whatever happened in it, so that no server keeps running while you read.
    `work_s` is the seconds of "work" per request, for all servers or per name (a dict).
    """
    ready, stop, served = threading.Barrier(len(names) + 1), threading.Event(), []
    threads = [threading.Thread(target=serve,
                                args=(name, ready, stop,
                                      work_s.get(name, 0.0) if isinstance(work_s, dict)
                                      else work_s, served))
               for name in names]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=10)
        yield served                 # one tuple per request answered (see Serve above)
    finally:                         # also when the cell fails or is stopped
        stop.set()
        ready.abort()
        for thread in threads:
            thread.join()
