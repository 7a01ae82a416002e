"""Checks around the nbval run: every notebook must leave the broker as it found it.

nbval runs a notebook as one test per cell. Before a notebook's first cell we take a snapshot
of what the broker holds (queues, exchanges, bindings, connections, vhosts, users, vhosts
with tracing on), and after
its last cell we compare: anything new that is still there is a leftover, and the notebook's
last cell errors at teardown with a list of what it left behind.

`NOTEBOOK_ORDER=reverse` runs the notebooks in reverse order, which `make test` uses for its
second pass (the notebooks must pass in any order and twice in a row).

`NBVAL_REPORT_DIFFS=1` (`make test-broker`, against a broker the user names) turns "Cell
outputs differ" into a line of the final report instead of a failure: another RabbitMQ
version or another broker may word things differently. Errors and leftovers still fail.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

import pytest

SETTLE_S = 5.0  # connections closed by the kernel vanish from the API within a stats interval


KERNEL_STARTS = 3  # attempts at starting a notebook's kernel


def _start_kernel_again_if_it_died() -> None:
    """nbval starts each notebook's kernel once; a kernel that dies before its first reply
    fails every cell of that notebook. That happens under load, not because of the notebook:
    jupyter_client picks the kernel's five TCP ports free, then the kernel binds them, and in
    between a client's outgoing connection can take one (seen in `make test`, where hundreds
    of short-lived broker connections run beside the notebooks). A new kernel gets new ports.
    """
    try:
        from nbval import kernel
    except ImportError:
        return
    start = kernel.start_new_kernel
    if getattr(start, "retries_dead_kernels", False):
        return

    def start_new_kernel(*args, **kwargs):
        for attempt in range(1, KERNEL_STARTS + 1):
            try:
                return start(*args, **kwargs)
            except RuntimeError as exc:
                if "Kernel died" not in str(exc) or attempt == KERNEL_STARTS:
                    raise

    start_new_kernel.retries_dead_kernels = True
    kernel.start_new_kernel = start_new_kernel


_start_kernel_again_if_it_died()


def _is_nbval_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    notebooks: OrderedDict[str, list[pytest.Item]] = OrderedDict()
    for item in items:
        if _is_nbval_cell(item):
            notebooks.setdefault(str(item.path), []).append(item)
    if not notebooks:
        return
    if os.environ.get("NOTEBOOK_ORDER") == "reverse":
        others = [i for i in items if not _is_nbval_cell(i)]
        items[:] = others + [cell for nb in reversed(notebooks.values()) for cell in nb]
    for cells in notebooks.values():
        cells[0].stash[_FIRST] = True
        cells[-1].stash[_LAST] = True


_differences: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if (
        os.environ.get("NBVAL_REPORT_DIFFS")
        and _is_nbval_cell(item)
        and report.when == "call"
        and report.failed
        and call.excinfo is not None
        and "Cell outputs differ" in str(call.excinfo.value)
    ):
        report.outcome = "passed"
        _differences.append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if _differences:
        terminalreporter.write_line(
            f"{len(_differences)} cell(s) ran fine but printed something other than the "
            "committed output (another broker or version):"
        )
        for nodeid in _differences:
            terminalreporter.write_line(f"  differs: {nodeid}")


_FIRST = pytest.StashKey[bool]()
_LAST = pytest.StashKey[bool]()
_snapshots: dict[str, dict[str, set]] = {}


def _snapshot() -> dict[str, set]:
    from helpers import find_broker

    broker = find_broker(start=False, progress=None)  # TUTORIAL_BROKER=private in make test
    api = broker.management
    return {
        "queues": {q["name"] for q in api.queues(broker.vhost)},
        "exchanges": {e["name"] for e in api.exchanges(broker.vhost)},
        "bindings": {
            (b["source"], b["destination_type"], b["destination"], b["routing_key"])
            for b in api.bindings(broker.vhost)
        },
        "connections": {
            c.get("client_properties", {}).get("connection_name") or c["name"]
            for c in api.connections()
        },
        "vhosts": {v["name"] for v in api.vhosts()},
        # Tracing left on costs the broker work on every message: a diagram must switch it off.
        "tracing": {v["name"] for v in api.vhosts() if v.get("tracing")},
        "users": {u["name"] for u in api.users()},
    }


def _leftovers(before: dict[str, set], after: dict[str, set]) -> dict[str, list]:
    return {
        kind: sorted(map(str, after[kind] - before[kind]))
        for kind in before
        if after[kind] - before[kind]
    }


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _is_nbval_cell(item) and item.stash.get(_FIRST, False):
        _snapshots[str(item.path)] = _snapshot()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    # Look while the notebook's kernel still runs (a connection it forgot to close is still
    # open then), but fail only after nbval's own teardown has run, so the next notebook
    # starts cleanly.
    problem = _leftover_report(item)
    result = yield
    if problem:
        pytest.fail(problem, pytrace=False)
    return result


def _leftover_report(item: pytest.Item) -> str | None:
    if not (_is_nbval_cell(item) and item.stash.get(_LAST, False)):
        return None
    before = _snapshots.pop(str(item.path), None)
    if before is None:
        return None
    deadline = time.monotonic() + SETTLE_S
    while True:
        left = _leftovers(before, _snapshot())
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if not left:
        return None
    lines = "\n".join(f"  {kind}: {', '.join(names)}" for kind, names in left.items())
    return (
        f"{item.path.name} left things behind on the broker:\n{lines}\n"
        "Delete them (and close every connection) in the notebook's cleanup cell."
    )
