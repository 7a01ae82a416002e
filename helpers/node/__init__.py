"""This checkout's private RabbitMQ node(s): which RabbitMQ they run, where they live.

A checkout can have two private nodes, one per kind of runtime (see `runtime.py`):
`.rabbitmq/reference/` runs the reference RabbitMQ (4.3) from the cached root filesystem,
`.rabbitmq/system/` runs the machine's installed RabbitMQ. `TUTORIAL_RABBITMQ` picks:
`reference`, `system`, or `auto` (the default: reference when it is built or can be built,
else the installed one). `make test` runs its strict notebook pass on the reference node and
its second pass on the system node.

Settings for tests and benchmarks: `TUTORIAL_NODE_DIR` (one directory instead of
`.rabbitmq/<kind>`), `TUTORIAL_NODE_NAME`, `TUTORIAL_NODE_AMQP_PORT` (management and
distribution default to +10000 and +20000 of it, or `TUTORIAL_NODE_MANAGEMENT_PORT`,
`TUTORIAL_NODE_DIST_PORT`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from helpers.errors import INSTALL_HINT, BrokerUnavailable
from helpers.node import rootfs
from helpers.node.private import HOST, Credentials, Node, Ports
from helpers.node.runtime import (
    REFERENCE_SERIES,
    Runtime,
    is_reference,
    system_runtime,
)

__all__ = [
    "HOST",
    "REFERENCE_SERIES",
    "Credentials",
    "Node",
    "Ports",
    "choose_runtime",
    "default_node",
    "running_node",
    "start",
    "stop",
]

Progress = Callable[[str], None]
_said_version_note = False


def repo_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def wanted_kind() -> str:
    kind = os.environ.get("TUTORIAL_RABBITMQ", "auto").strip().lower() or "auto"
    if kind not in ("auto", "reference", "system"):
        raise BrokerUnavailable(
            f"TUTORIAL_RABBITMQ={kind!r} is not one of auto, reference, system."
        )
    return kind


def _base(kind: str) -> Path:
    override = os.environ.get("TUTORIAL_NODE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return repo_dir() / ".rabbitmq" / kind


def _fixed_ports() -> Ports | None:
    amqp = os.environ.get("TUTORIAL_NODE_AMQP_PORT")
    if not amqp:
        return None
    a = int(amqp)
    return Ports(
        a,
        int(os.environ.get("TUTORIAL_NODE_MANAGEMENT_PORT") or a + 10000),
        int(os.environ.get("TUTORIAL_NODE_DIST_PORT") or a + 20000),
    )


def _node(runtime: Runtime) -> Node:
    return Node(
        _base(runtime.kind),
        runtime,
        name=os.environ.get("TUTORIAL_NODE_NAME") or None,
        ports=_fixed_ports(),
    )


def choose_runtime(provision: bool = False, progress: Progress | None = print) -> Runtime:
    """The RabbitMQ a new node of this checkout runs from (see the module docstring).

    With `provision=True` (what `make lab` and `make test` ask for) a missing reference root
    filesystem is built when the machine allows; otherwise only an existing one is used.
    """
    say = progress or (lambda _m: None)
    kind = wanted_kind()
    system = system_runtime()
    if kind == "system":
        if system is None:
            raise BrokerUnavailable("RabbitMQ is not installed on this machine. " + INSTALL_HINT)
        return system
    reference = rootfs.runtime()
    if reference is not None:
        return reference
    if system is not None and is_reference(system.version):
        return system
    if provision or kind == "reference":
        try:
            return rootfs.provision(say)
        except BrokerUnavailable as exc:
            if kind == "reference" or system is None:
                raise
            say(str(exc))
    if system is None:
        raise BrokerUnavailable(
            "RabbitMQ is not installed, so no private node can be started. " + INSTALL_HINT
        )
    return system


def candidates() -> list[Node]:
    """This checkout's nodes that could be running, reference first."""
    kind = wanted_kind()
    found: list[Node] = []
    if kind in ("auto", "reference"):
        reference = rootfs.runtime()
        if reference is not None:
            found.append(_node(reference))
    if kind in ("auto", "system"):
        system = system_runtime()
        if system is not None:
            found.append(_node(system))
    unique: dict[Path, Node] = {}
    for node in found:  # with TUTORIAL_NODE_DIR both kinds name one directory
        unique.setdefault(node.base, node)
    return list(unique.values())


def running_node() -> Node | None:
    """The first of this checkout's nodes that runs and answers, if any."""
    for candidate in candidates():
        if candidate.is_running() and candidate.is_ready():
            return candidate
    return None


def default_node(provision: bool = False, progress: Progress | None = print) -> Node:
    return _node(choose_runtime(provision, progress))


def start(progress: Progress | None = print, provision: bool = False) -> tuple[Node, bool]:
    """This checkout's node, started if none runs: (node, whether this call started it)."""
    global _said_version_note
    running = running_node()
    if running is not None:
        running.ensure_plugins(progress)  # a node an older checkout started
        return running, False
    node = default_node(provision, progress)
    started = node.start(progress)
    version = node.runtime.version
    if progress and not is_reference(version) and not _said_version_note:
        _said_version_note = True
        progress(
            f"Note: this is RabbitMQ {version}; the chapters target RabbitMQ 4.x "
            f"({REFERENCE_SERIES}), so some outputs will differ."
        )
    return node, started


def stop(progress: Progress | None = print) -> bool:
    """Stop every node of this checkout that runs (test nodes too); True if there was one."""
    stopped = False
    nodes = candidates()
    known = {n.base for n in nodes}
    runtime = nodes[0].runtime if nodes else None
    # With TUTORIAL_NODE_DIR only that node is meant; otherwise the checkout's test nodes too.
    extras = (
        [] if os.environ.get("TUTORIAL_NODE_DIR") else (repo_dir() / ".rabbitmq").glob("*/node.pid")
    )
    for extra in sorted(extras):
        if runtime is not None and extra.parent not in known:
            nodes.append(Node(extra.parent, runtime))  # e.g. the learner-session test node
    for candidate in nodes:
        stopped = candidate.stop(progress) or stopped
    return stopped
