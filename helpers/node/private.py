"""A private RabbitMQ node, started from the installed `rabbitmq-server`.

Why a private node: most learners have never installed a broker, and we must not touch a
system service. The node gets its own name and ports, keeps its data and logs under
`.rabbitmq/` in the repository (git ignores it), listens on 127.0.0.1 only (AMQP, management
and Erlang distribution) and runs as whoever starts it, root or not. It is started once and
reused by every notebook and test.

Facts behind the environment below are in shared/DESIGN.md ("The broker").
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from helpers.errors import INSTALL_HINT, BrokerUnavailable
from helpers.probe import PortState, port_is_free, probe_amqp

HOST = "127.0.0.1"
NODE_NAME = os.environ.get("TUTORIAL_NODE_NAME", "pika-tutorial@localhost")
AMQP_PORT = int(os.environ.get("TUTORIAL_NODE_AMQP_PORT", "5682"))
MANAGEMENT_PORT = int(os.environ.get("TUTORIAL_NODE_MANAGEMENT_PORT", "15682"))
DIST_PORT = int(os.environ.get("TUTORIAL_NODE_DIST_PORT", "25682"))
USERNAME = "guest"
PASSWORD = "guest"  # RabbitMQ's built-in default; guest may only log in over loopback.
START_TIMEOUT_S = 90.0

# Where Debian (and Binder, which is Ubuntu) installs the unwrapped scripts. The wrapper in
# /usr/sbin refuses any user but root or `rabbitmq`, so we call these directly.
SEARCH_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/sbin")

# How often the broker refreshes queue counts and rates that the management API reports
# (default 5 s). Diagrams and leftover checks want fresher numbers.
STATS_INTERVAL_MS = 500


def base_dir() -> Path:
    """Where the node keeps its data, logs and Erlang cookie (git-ignored)."""
    override = os.environ.get("TUTORIAL_NODE_DIR")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent / ".rabbitmq"


def find_executable(name: str) -> str | None:
    """Path of a RabbitMQ script (`rabbitmq-server`, `rabbitmqctl`), or None if not installed."""
    for directory in SEARCH_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def is_installed() -> bool:
    return find_executable("rabbitmq-server") is not None


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    pid: int | None
    amqp: PortState


def _pid_file() -> Path:
    return base_dir() / "node.pid"


def _read_pid_raw() -> int | None:
    try:
        return int(_pid_file().read_text().strip())
    except (OSError, ValueError):
        return None


def _read_pid() -> int | None:
    """The node's pid if its pid file names a live process."""
    pid = _read_pid_raw()
    return pid if pid is not None and _alive(pid) else None


def status() -> NodeStatus:
    """Is our private node running (its pid alive) and answering AMQP?"""
    pid = _read_pid()
    return NodeStatus(running=pid is not None, pid=pid, amqp=probe_amqp(HOST, AMQP_PORT, 1.0))


def environment() -> dict[str, str]:
    """The environment `rabbitmq-server` and `rabbitmqctl` need for this node."""
    base = base_dir()
    env = dict(os.environ)
    env.update(
        {
            # The Erlang cookie lives in HOME; rabbitmqctl must see the same one.
            "HOME": str(base),
            "RABBITMQ_NODENAME": NODE_NAME,
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(_pid_file()),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_DIST_PORT": str(DIST_PORT),
            # Without these two the Erlang distribution listens on 0.0.0.0.
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
    )
    return env


def _write_config() -> None:
    base = base_dir()
    for sub in ("mnesia", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (base / "rabbitmq.conf").write_text(
        "\n".join(
            [
                "# Written by helpers/node.py: a private node for the tutorial, loopback only.",
                f"listeners.tcp.1 = {HOST}:{AMQP_PORT}",
                f"management.tcp.ip = {HOST}",
                f"management.tcp.port = {MANAGEMENT_PORT}",
                f"collect_statistics_interval = {STATS_INTERVAL_MS}",
                "",
            ]
        )
    )
    # The management API aggregates counts on a timer set by the finest sample interval of its
    # retention policies (5 s by default, whatever collect_statistics_interval says): 1 s.
    policies = "[{global,[{605,1},{3660,60}]},{basic,[{605,1},{3600,60}]},{detailed,[{605,1}]}]"
    (base / "advanced.config").write_text(
        f"[{{rabbitmq_management_agent, [{{sample_retention_policies, {policies}}}]}}].\n"
    )
    (base / "rabbitmq-env.conf").write_text("")


def _management_answers(timeout: float = 1.0) -> bool:
    try:
        r = requests.get(
            f"http://{HOST}:{MANAGEMENT_PORT}/api/overview",
            auth=(USERNAME, PASSWORD),
            timeout=timeout,
        )
    except requests.RequestException:
        return False
    return r.status_code == 200


def is_ready() -> bool:
    return probe_amqp(HOST, AMQP_PORT, 1.0) is PortState.AMQP and _management_answers()


def log_tail(lines: int = 15) -> str:
    """The last lines of the node's logs, to show when it will not start."""
    chunks = []
    for path in sorted((base_dir() / "log").glob("*.log")) + [base_dir() / "startup.log"]:
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if text:
            chunks.append(f"--- {path} (last {lines} lines)\n" + "\n".join(text[-lines:]))
    return "\n".join(chunks) or "(no log was written)"


def start(progress: Callable[[str], None] | None = None) -> bool:
    """Start the node unless it already runs; return True if this call started it.

    Two notebooks opened at once may both call this: a lock file makes the second one wait
    for the first one's node instead of starting another.
    """
    base_dir().mkdir(parents=True, exist_ok=True)
    with open(base_dir() / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(progress or (lambda _msg: None))


def _start_locked(say: Callable[[str], None]) -> bool:
    if _read_pid() is not None:
        _wait_until_ready(say)
        return False
    server = find_executable("rabbitmq-server")
    if server is None:
        raise BrokerUnavailable("RabbitMQ is not installed on this machine. " + INSTALL_HINT)
    for port, what in (
        (AMQP_PORT, "AMQP"),
        (MANAGEMENT_PORT, "management"),
        (DIST_PORT, "Erlang distribution"),
    ):
        if not port_is_free(HOST, port):
            raise BrokerUnavailable(
                f"Port {port} (the private node's {what} port) is taken by another program: "
                f"stop it, or pick other ports with TUTORIAL_NODE_AMQP_PORT / "
                f"TUTORIAL_NODE_MANAGEMENT_PORT / TUTORIAL_NODE_DIST_PORT."
            )
    _write_config()
    say(
        f"Starting a private RabbitMQ node ({NODE_NAME}) on {HOST}:{AMQP_PORT}; "
        "the first start takes about 10 s..."
    )
    with open(base_dir() / "startup.log", "wb") as log:
        process = subprocess.Popen(
            [server],
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the kernel or `make` that started it
            cwd=base_dir(),
        )
    _wait_until_ready(say, process)
    return True


def _wait_until_ready(
    say: Callable[[str], None], process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait for AMQP and management to answer; with `process`, report progress and death."""
    t0 = time.monotonic()
    last_report = 0
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if is_ready():
            if process is not None:
                say(f"RabbitMQ is up after {time.monotonic() - t0:.1f} s.")
            return
        if process is not None and process.poll() is not None:
            raise BrokerUnavailable(
                f"The private RabbitMQ node stopped while starting (exit {process.returncode}).\n"
                + log_tail()
            )
        elapsed = int(time.monotonic() - t0)
        if process is not None and elapsed >= last_report + 2:
            last_report = elapsed
            say(f"  ...still starting ({elapsed} s)")
        time.sleep(0.25)
    raise BrokerUnavailable(
        f"The private RabbitMQ node did not answer within {START_TIMEOUT_S:.0f} s.\n" + log_tail()
    )


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `rabbitmqctl -n <our node> ARGS` with the node's environment."""
    ctl = find_executable("rabbitmqctl")
    if ctl is None:
        raise BrokerUnavailable("rabbitmqctl is not installed. " + INSTALL_HINT)
    return subprocess.run(
        [ctl, "-n", NODE_NAME, *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop(progress: Callable[[str], None] | None = None) -> bool:
    """Stop the node if it runs; return True if there was one to stop."""
    say = progress or (lambda _msg: None)
    pid = _read_pid()
    if pid is None:
        return False
    say(f"Stopping the private RabbitMQ node ({NODE_NAME})...")
    try:
        rabbitmqctl("stop", str(_pid_file()), timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        _wait_dead(pid, 20)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, 5)
    if _read_pid_raw() == pid:  # a node started meanwhile by someone else keeps its file
        _pid_file().unlink(missing_ok=True)
    say("Stopped.")
    return True


def restart_app(progress: Callable[[str], None] | None = None) -> None:
    """Restart the RabbitMQ application inside the running node (every client is dropped).

    Durable queues and persistent messages survive it; transient ones do not. Quicker than
    a full node restart, and the same thing from a client's point of view.
    """
    say = progress or (lambda _msg: None)
    for step in ("stop_app", "start_app"):
        result = rabbitmqctl(step)
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"rabbitmqctl {step} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
    _wait_until_ready(say)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it was our own child, so a zombie does not count as alive.
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_dead(pid: int, seconds: float) -> None:
    t0 = time.monotonic()
    while _alive(pid) and time.monotonic() - t0 < seconds:
        time.sleep(0.2)
