"""Resource alarms: which one blocks publishers, a real one for chapter 02, and one sentence
(not a traceback page) for a connection that an alarm blocked.

What RabbitMQ does (its guides "Memory and Disk Alarms" and "Blocked Connection
Notifications" describe 3.x and 4.x alike; everything below was also seen on 3.10.8 and
4.3.6):

- A disk alarm goes off when the node's free disk space drops below `disk_free_limit`
  (50 MB by default), a memory alarm when the node uses more memory than
  `vm_memory_high_watermark` allows (of RAM: 0.4 by default on 3.x, 0.6 on 4.x).
- While one is on, the node stops reading from every connection that publishes. A
  `basic_publish` without confirms still returns at once (it only writes to the socket); the
  next call that waits for the broker waits until the alarm clears, however long. A
  connection that only consumes goes on: the management API shows it `blocking` (it would
  block if it published), a publisher `blocked`.
- A connection is sent `Connection.Blocked` (reason "low on disk" or "low on memory") when
  it publishes during an alarm, not when the alarm goes off. pika's
  `blocked_connection_timeout` counts from then, and closes the connection with
  `ConnectionBlockedTimeout`; a `BlockingConnection` runs the callback of
  `add_on_connection_blocked_callback` only inside `process_data_events()` or `sleep()`.
- The blocked message waited in the network: on both versions the broker still took it once
  the alarm cleared, although pika had given up. A producer that must know publishes with
  confirms and publishes again (a consumer may then see it twice).
- `rabbitmqctl set_disk_free_limit` acts at once: the node checks its disk right away. The
  management API's health check `/api/health/checks/alarms` says so at once, its
  `/api/nodes` a statistics interval later.

`explain()` in `helpers.errors` asks `blocked_context()` (registered below) which alarm
blocked a connection; `install_ipython_handler()` makes IPython show a
`ConnectionBlockedTimeout` as that one sentence.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pika
import pika.connection
import pika.exceptions

from helpers import node as nodes
from helpers.errors import ManagementError, TutorialError, explain, set_alarm_lookup
from helpers.i18n import _
from helpers.management import ManagementClient

if TYPE_CHECKING:
    from helpers.node import Node

ALARM_LIMIT_BYTES = 10**18  # 1 EB: a disk_free_limit above the free space of any disk
DEFAULT_DISK_LIMIT = ("50MB",)  # RabbitMQ's default disk_free_limit (3.x and 4.x)
WAIT_S = 5.0  # how long the alarm may take to show after rabbitmqctl returned
LOOKUP_TIMEOUT_S = 2.0  # explain() asks the management API at most this long
PUT_BACK_ATTEMPTS = 3  # rabbitmqctl may be stopped by the same interrupt as the cell
# The configured limits, which `rabbitmqctl set_...` leaves in the application environment.
LIMITS_EVAL = (
    "[application:get_env(rabbit, disk_free_limit), "
    "application:get_env(rabbit, vm_memory_high_watermark)]."
)

Say = Callable[[str], None]


class AlarmBroker(Protocol):
    """What this module needs of a `helpers.broker.Broker` (which it cannot import: the
    broker module may use this one)."""

    source: str
    started_by_helpers: bool
    node: Node | None

    @property
    def management(self) -> ManagementClient: ...


def _quiet(_message: str) -> None:
    pass


# -- which alarms are on -----------------------------------------------------------------------


def may_raise_alarm(broker: AlarmBroker) -> bool:
    """True only for this checkout's private node: an alarm blocks everyone who publishes to
    the broker, which is never ours to do to a broker someone else runs."""
    return broker.source == "private node" and broker.started_by_helpers and broker.node is not None


NODES_LAG_S = 2.5  # how long /api/nodes may lag the health check (a stats interval, 1 s here)


def active_alarms(broker: AlarmBroker) -> list[str]:
    """The resource alarms in effect on the broker: "disk", "memory" ("resource" when the
    broker says there is one but not which); [] when none, or when its API cannot tell."""
    try:
        return read_alarms(broker.management) or []
    except Exception:  # it only words a message (the diagram's reason): never fail that
        return []


def read_alarms(api: ManagementClient) -> list[str] | None:
    """Like `active_alarms`, with None when the management API could not be asked.

    The health check answers at once; `/api/nodes`, which names the alarm, lags by a
    statistics interval, so right after an alarm went off it may only be "resource".
    """
    try:
        api.request("GET", "health/checks/alarms")
        return []
    except ManagementError as exc:
        if exc.status is None:  # the API does not answer: nothing more to ask it
            return None
        live = exc.status == 503  # else a user or a broker without the health check
    deadline = time.monotonic() + (NODES_LAG_S if live else 0)
    while True:
        try:
            kinds = sorted({kind for _node, kind in api.alarms()})
        except ManagementError:  # a user without the monitoring tag may not read /api/nodes
            return ["resource"] if live else None
        if kinds or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # an alarm the health check sees, not yet in /api/nodes' statistics
    if kinds:
        return kinds
    return ["resource"] if live else []


def alarm_in_effect(api: ManagementClient) -> bool | None:
    """Whether any resource alarm is on right now, from `/api/health/checks/alarms` (200: no,
    503: yes); None when the broker does not answer that."""
    try:
        api.request("GET", "health/checks/alarms")
    except ManagementError as exc:
        return True if exc.status == 503 else None
    return False


# -- setting one off on the private node (chapter 02) --------------------------------------------


@dataclass(frozen=True)
class Limits:
    """A node's configured limits, as `rabbitmqctl` arguments ("50000000"; "absolute", ...)."""

    disk: tuple[str, ...]
    memory: tuple[str, ...]


_limits: dict[str, Limits] = {}


def configured_limits(node: Node) -> Limits:
    """The limits the node's configuration sets (its defaults when it sets none).

    `set_disk_free_limit` and `set_vm_memory_high_watermark` change the running node only,
    not its application environment, which keeps the configured values (seen on 3.10.8 and
    4.3.6). Asked once per node, with one `rabbitmqctl eval` (most of a second).
    """
    key = f"{node.name} {node.base}"
    if key not in _limits:
        disk = memory = None
        try:
            out = node.rabbitmqctl("eval", LIMITS_EVAL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            items = _erlang_list(out.stdout)
            if len(items) == 2:
                disk, memory = parse_limit(items[0]), parse_limit(items[1])
        _limits[key] = Limits(
            disk or DEFAULT_DISK_LIMIT,
            memory or (("0.4",) if node.runtime.version.startswith("3.") else ("0.6",)),
        )
    return _limits[key]


def _erlang_list(text: str) -> list[str]:
    """The items of the Erlang list `[A,B]` that `rabbitmqctl eval` printed, as text."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return []
    items, depth, start = [], 0, 1
    for i, char in enumerate(text[1:-1], 1):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:-1])
    return [item.strip() for item in items if item.strip()]


def parse_limit(erlang: str) -> tuple[str, ...] | None:
    """`rabbitmqctl` arguments for an `{ok, Value}` that `rabbitmqctl eval` printed.

    {ok,50000000} -> ("50000000",); {ok,"50MB"} -> ("50MB",); {ok,0.6} -> ("0.6",);
    {ok,{absolute,1000000000}} -> ("absolute", "1000000000"); {ok,{mem_relative,1.0}} ->
    ("mem_relative", "1.0"); {ok,{relative,0.6}} -> ("0.6",); anything else None.
    """
    found = re.fullmatch(r"\{ok,\s*(.*)\}", erlang.strip(), re.S)
    if not found:
        return None
    value = found.group(1).strip()
    if re.fullmatch(r"[0-9.]+", value):
        return (value,)
    text = re.fullmatch(r'"([^"]+)"', value)
    if text:
        return (text.group(1),)
    pair = re.fullmatch(r'\{(\w+),\s*"?([^"{}]+?)"?\}', value)
    if pair:
        name, amount = pair.groups()
        return (amount,) if name == "relative" else (name, amount)
    return None


def shown(limit: tuple[str, ...]) -> str:
    """A limit for people: ("50000000",) -> "50 MB"."""
    if len(limit) == 1 and limit[0].isdigit():
        n = int(limit[0])
        return f"{n // 10**6} MB" if n % 10**6 == 0 else f"{n} bytes"
    return " ".join(limit)


def _ctl(node: Node, *args: str) -> None:
    """`rabbitmqctl ARGS` on the node; a TutorialError with its complaint if it fails."""
    out = node.rabbitmqctl(*args, timeout=30)
    if out.returncode != 0:
        complaint = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
        raise TutorialError(f"rabbitmqctl {' '.join(args)} failed: {complaint[-1]}")


def _wait_for(broker: AlarmBroker, on: bool, timeout: float = WAIT_S) -> bool:
    """Wait until an alarm is (`on`) or is not in effect; False if that did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        now = alarm_in_effect(broker.management)
        if now is None:  # no health check here: the slower statistics then
            now = bool(active_alarms(broker))
        if now == on:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@contextmanager
def disk_alarm(broker: AlarmBroker, progress: Say | None = print) -> Iterator[bool]:
    """A real disk alarm on the tutorial's private node for the length of a `with` block.

    It sets the node's `disk_free_limit` above its free disk space, so the node raises its
    disk alarm at once and blocks every publisher, and puts the configured limit back when
    the block ends, however it ends: an exception, or the ■ button (an interrupt during the
    putting back waits until the limit is back). Yields True once the alarm is on. On a
    broker the helpers did not start it says so in one line, does nothing and yields False.
    """
    say = progress or _quiet
    node = broker.node
    if not may_raise_alarm(broker) or node is None:
        say(
            _(
                "Skipped: this broker was not started by the tutorial's helpers, so it is not "
                "ours to set off an alarm on (it would block everyone who publishes to it); "
                "publishing goes on as usual."
            )
        )
        yield False
        return
    limits = configured_limits(node)
    raised = False
    try:
        try:
            _ctl(node, "set_disk_free_limit", str(ALARM_LIMIT_BYTES))
            raised = _wait_for(broker, on=True)
        except (TutorialError, OSError, subprocess.TimeoutExpired) as exc:
            say(_(
                "Could not set off a disk alarm ({exc}): publishing goes on as usual."
            ).format(exc=exc))
        else:
            say(
                _(
                    "The tutorial's node has a disk alarm now: its disk_free_limit is set above "
                    "its free disk space."
                )
                if raised
                else _(
                    "The node raised no disk alarm (it does not watch its free disk space here): "
                    "publishing goes on as usual."
                )
            )
        yield raised
    finally:
        with _interrupts_held():
            _put_back(node, ("set_disk_free_limit", *limits.disk))
            if raised:
                _wait_for(broker, on=False, timeout=3.0)
                say(_(
                    "The disk alarm is cleared: disk_free_limit is back to {limit}."
                ).format(limit=shown(limits.disk)))


def _put_back(node: Node, command: tuple[str, ...]) -> None:
    """Run `rabbitmqctl COMMAND` until it succeeds (an interrupt may have stopped it)."""
    for attempt in range(PUT_BACK_ATTEMPTS):
        try:
            _ctl(node, *command)
            return
        except (TutorialError, OSError, subprocess.TimeoutExpired) as exc:
            if attempt == PUT_BACK_ATTEMPTS - 1:
                raise TutorialError(
                    _(
                        "Could not put the node's limit back ({exc}): run `python -m helpers "
                        "alarm clear` in a terminal."
                    ).format(exc=exc)
                ) from None


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold back a KeyboardInterrupt (the ■ button) until the block is done, then raise it.

    Putting the limit back must not be cut short by the interrupt that ended the cell: the
    node would keep blocking every publisher. Only the main thread receives signals.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: hits.append(signum))
    except ValueError:  # not allowed here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if hits:
            raise KeyboardInterrupt


def clear_alarms(node: Node) -> str:
    """Put the node's disk and memory limits back to its configured ones; what they are now.

    For `python -m helpers alarm clear`, after a kernel died inside `disk_alarm()` or after
    someone set a limit by hand.
    """
    limits = configured_limits(node)
    _ctl(node, "set_disk_free_limit", *limits.disk)
    _ctl(node, "set_vm_memory_high_watermark", *limits.memory)
    return f"disk_free_limit {shown(limits.disk)}, vm_memory_high_watermark {shown(limits.memory)}"


# -- explaining a blocked connection -----------------------------------------------------------


def blocked_context(exc: BaseException) -> tuple[list[str] | None, bool]:
    """(the alarms of the broker `exc` came from, or None; whether it is this checkout's node).

    The broker is found from the connection in the traceback: this checkout's private node
    when its AMQP port matches, else the management API at RABBITMQ_MANAGEMENT_URL or 10000
    above the AMQP port (RabbitMQ's convention), asked with the connection's credentials.
    """
    params = connection_params(exc)
    if params is None:
        return None, False
    own = _own_node(params.host, params.port)
    if own is not None:
        creds = own.credentials()
        if creds is None:
            return None, True
        url = f"http://{nodes.HOST}:{own.ports.management}"
        api = ManagementClient(url, creds.username, creds.password, timeout=LOOKUP_TIMEOUT_S)
        return read_alarms(api), True
    credentials = params.credentials
    web = "https" if params.ssl_options is not None else "http"
    url = (
        os.environ.get("RABBITMQ_MANAGEMENT_URL", "").strip()
        or f"{web}://{params.host}:{params.port + 10000}"
    )
    api = ManagementClient(
        url,
        str(getattr(credentials, "username", "")),
        str(getattr(credentials, "password", "")),
        timeout=LOOKUP_TIMEOUT_S,
    )
    return read_alarms(api), False


def connection_params(exc: BaseException) -> pika.connection.Parameters | None:
    """The parameters of the pika connection that raised `exc`, found in its traceback (the
    frames of pika's own connection and channel objects), or None."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 10:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            found = _params_of(tb.tb_frame.f_locals.get("self"))
            if found is not None:
                return found
            tb = tb.tb_next
        inner = getattr(current, "exception", None)
        pending += [inner if isinstance(inner, BaseException) else None]
        pending += [current.__cause__, current.__context__]
    return None


def _params_of(obj: Any) -> pika.connection.Parameters | None:
    """A pika connection's or channel's parameters; None for anything that is not pika's."""
    if not type(obj).__module__.startswith("pika."):
        return None
    impl = getattr(obj, "_impl", None)
    connection = getattr(obj, "_connection", None) or getattr(obj, "connection", None)
    for candidate in (obj, impl, connection, getattr(connection, "_impl", None)):
        params = getattr(candidate, "params", None)
        if isinstance(params, pika.connection.Parameters):
            return params
    return None


def _own_node(host: str, port: int) -> Node | None:
    """This checkout's running private node on that AMQP port, if any."""
    if host not in (nodes.HOST, "localhost"):
        return None
    try:
        for node in nodes.candidates():
            if node.ports.amqp == port and node.is_running():
                return node
    except Exception:  # TUTORIAL_RABBITMQ set to nonsense, say: then it is not one of ours
        return None
    return None


set_alarm_lookup(blocked_context)


# -- IPython ---------------------------------------------------------------------------------


def install_ipython_handler() -> bool:
    """Show a `ConnectionBlockedTimeout` in IPython as `explain()`'s one sentence.

    A chapter's cell that publishes during an alarm gets pika's ConnectionBlockedTimeout
    after its `blocked_connection_timeout`, a traceback page through pika's internals that
    does not say why. This registers an IPython custom exception handler that shows one
    line instead, still as the cell's error. A handler registered before (for other
    exceptions) keeps working. True when installed; False outside IPython. Safe to call
    again.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if getattr(shell, "_tutorial_blocked_handler", False):
        return True
    before = tuple(shell.custom_exceptions or ())
    previous = shell.CustomTB if before else None

    def show_blocked(
        self: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
    ) -> Any:
        if previous is not None and not issubclass(etype, pika.exceptions.ConnectionBlockedTimeout):
            return previous(etype, value, tb, tb_offset)
        line = f"{etype.__name__}: {explain(value)}"
        value._render_traceback_ = lambda: [line]  # what showtraceback shows instead
        self.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None

    shell.set_custom_exc(before + (pika.exceptions.ConnectionBlockedTimeout,), show_blocked)
    shell._tutorial_blocked_handler = True
    return True
