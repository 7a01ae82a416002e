"""A private RabbitMQ node: one checkout's own broker, on loopback, with its own credentials.

Why a private node: most learners have never installed a broker, and we must not touch a
system service. A node keeps everything under one directory (`.rabbitmq/<kind>/` in the
checkout, which git ignores): data, logs, Erlang cookie, its chosen ports and its
credentials. It listens on 127.0.0.1 only (AMQP, management, MQTT, STOMP and Erlang
distribution) and runs as whoever starts it.

Safe on shared machines (workshop servers, CI runners, JupyterHub):
- its name is derived from its directory, so two checkouts never share an Erlang node name;
- its ports are chosen at first start (the usual ones if free, else the next free trio) and
  kept, so a second checkout gets its own node instead of adopting the first one;
- its administrator is a user with a random password, kept in a file only the owner can
  read; `guest` does not exist on it, so another local user can neither use nor administer
  it;
- before signalling or waiting on a pid, the process is checked to be this node (its
  command line names this node's directory); a stale pid file is removed with one line.

A node is an object, so a chapter can start several of the same runtime (a cluster) on
other directories and ports. Facts behind the environment are in shared/DESIGN.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from helpers.errors import BrokerUnavailable
from helpers.i18n import _
from helpers.node.runtime import Runtime, is_reference
from helpers.probe import PortState, port_is_free, probe_amqp

HOST = "127.0.0.1"
USERNAME = "tutorial"
START_TIMEOUT_S = 90.0
DEFAULT_PORTS = (5682, 15682, 25682)  # AMQP, management, Erlang distribution
PORT_CHOICES = 100  # the k-th candidate trio is DEFAULT_PORTS + k

# How often the broker refreshes the queue counts and rates that the management API reports
# (default 5 s). Diagrams and leftover checks want fresher numbers.
STATS_INTERVAL_MS = 500
QUORUM_TICK_MS = 500
LOG_ROTATE_BYTES = 1_048_576  # the node's log is rotated at 1 MiB, two old files kept

# Deprecated features the reference broker denies, so a chapter that relies on something
# RabbitMQ is removing fails in CI, not in a learner's hands. `management_metrics_collection`
# stays permitted: the diagram still reads /api/consumers.
DENIED_FEATURES = ("transient_nonexcl_queues", "global_qos", "queue_master_locator")

# The plugins every private node runs: the management API (topology, counts, tracing on/off)
# and the event exchange (`amq.rabbitmq.event`: connections, channels and consumers as they
# come and go, which the diagram needs within a cell, not a second later; see
# helpers.flow.lifecycle). Both ship with rabbitmq-server, 3.x and 4.x.
# Chapter 09 adds MQTT and STOMP (both ship with rabbitmq-server, 3.x and 4.x; AMQP 1.0 is
# built in from 4.0), each on a loopback port of its own, chosen and kept like the others.
PROTOCOL_PLUGINS = {"mqtt": "rabbitmq_mqtt", "stomp": "rabbitmq_stomp"}
PLUGINS = ("rabbitmq_management", "rabbitmq_event_exchange", *PROTOCOL_PLUGINS.values())
# The usual MQTT (1883) and STOMP (61613) ports + 10, as the AMQP port is 5672 + 10; the k-th
# candidate is + k.
DEFAULT_PROTOCOL_PORTS = {"mqtt": 1893, "stomp": 61623}
RANDOM_PROTOCOL_PORTS = (20_000, 32_000)  # below Linux's ephemeral range, as tests' ports
START_ERROR = re.compile(r"\{:?error,")  # in rabbitmqctl start_app's output
_plugins_tried: set[Path] = set()  # nodes whose missing plugins this process tried to enable

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class Ports:
    amqp: int
    management: int
    dist: int
    # None: not chosen yet (a node an older checkout started, or ports fixed by a caller
    # who named only the first three): the node chooses them at its next start.
    mqtt: int | None = None
    stomp: int | None = None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class Node:
    """One private RabbitMQ node living in `base` and running from `runtime`."""

    def __init__(
        self,
        base: Path,
        runtime: Runtime,
        name: str | None = None,
        ports: Ports | None = None,
        heartbeat: int | None = None,
        extra_config: tuple[str, ...] = (),
    ) -> None:
        """`heartbeat` (seconds) overrides the broker's 60 s: the learner-session tests use
        1 s, so that "a learner paused for minutes" takes a few seconds to act out."""
        self.base = Path(base).resolve()
        self.runtime = runtime
        self.heartbeat = heartbeat
        self.extra_config = extra_config  # more rabbitmq.conf lines (tests)
        digest = hashlib.sha1(str(self.base).encode()).hexdigest()[:8]
        self.name = name or f"pika-tutorial-{digest}@localhost"
        self._fixed_ports = ports

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.base}, {self.runtime.kind} {self.runtime.version})"

    # -- files ------------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    @property
    def state_file(self) -> Path:
        return self.base / "node.json"

    @property
    def credentials_file(self) -> Path:
        return self.base / "credentials.json"

    @property
    def log_file(self) -> Path:
        """The node's main log (rotated at 1 MiB; the older ones end in .0, .1)."""
        return self.base / "log" / f"{self.name}.log"

    @property
    def plugins_file(self) -> Path:
        """The node's enabled_plugins file (an Erlang list; `rabbitmq-plugins` rewrites it)."""
        return self.base / "enabled_plugins"

    @property
    def ports(self) -> Ports:
        """The node's ports: fixed by the caller, else kept from its first start, else usual."""
        try:
            state = json.loads(self.state_file.read_text())["ports"]
            saved: Ports | None = Ports(
                state["amqp"],
                state["management"],
                state["dist"],
                state.get("mqtt"),
                state.get("stomp"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            saved = None
        fixed = self._fixed_ports
        if fixed is None:
            return saved or Ports(*DEFAULT_PORTS)
        if saved and fixed.mqtt is None and fixed.stomp is None and saved.amqp == fixed.amqp:
            # Fixed AMQP, management and distribution ports; MQTT and STOMP as chosen.
            return Ports(fixed.amqp, fixed.management, fixed.dist, saved.mqtt, saved.stomp)
        return fixed

    def started_from(self, root: Path) -> bool:
        """True when the node's last start ran RabbitMQ from `root` (a root filesystem)."""
        try:
            return str(root) in json.loads(self.state_file.read_text())["runtime"]
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def credentials(self) -> Credentials | None:
        """The node's administrator, or None before its first start."""
        try:
            data = json.loads(self.credentials_file.read_text())
            return Credentials(data["username"], data["password"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- state ------------------------------------------------------------------------------

    def pid(self, say: Progress = _quiet) -> int | None:
        """The node's pid if its pid file names this node's live process.

        A pid file that names nothing, or another process (after a reboot the number may
        belong to anything), is removed, with one line saying so.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _alive(pid) and self.is_own_process(pid):
            return pid
        try:
            self.pid_file.unlink()
            say(
                _(
                    "Removed a stale pid file ({file}): pid {pid} is not this checkout's "
                    "RabbitMQ node."
                ).format(file=self.pid_file, pid=pid)
            )
        except OSError:
            pass
        return None

    def is_own_process(self, pid: int) -> bool:
        """True when `pid` is an Erlang VM started for this node's directory."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return _ps_names_node(pid, str(self.base))
        if not any(b"beam" in a for a in argv[:1]):
            return False
        home = str(self.base).encode()
        return any(a == b"-home" and b == home for a, b in zip(argv, argv[1:], strict=False))

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self) -> bool:
        """AMQP answers and the management API serves its overview to this node's credentials."""
        creds = self.credentials()
        ports = self.ports
        if creds is None or probe_amqp(HOST, ports.amqp, 1.0) is not PortState.AMQP:
            return False
        try:
            r = requests.get(
                f"http://{HOST}:{ports.management}/api/overview",
                auth=(creds.username, creds.password),
                timeout=1.0,
            )
        except requests.RequestException:
            return False
        return r.status_code == 200

    # -- environment and configuration ------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The variables `rabbitmq-server` and `rabbitmqctl` need for this node."""
        base = self.base
        return {
            # The Erlang cookie lives in HOME; rabbitmqctl must see the same one.
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.plugins_file),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_DIST_PORT": str(self.ports.dist),
            # Without these two the Erlang distribution listens on 0.0.0.0.
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }

    def _prepare(self, say: Progress) -> None:
        """Directories, credentials, ports and config files before a start."""
        base = self.base
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)  # cookie, credentials and data are the owner's alone
        for sub in ("mnesia", "log"):
            (base / sub).mkdir(exist_ok=True)
        creds = self.credentials()
        if creds is None:
            if any((base / "mnesia").iterdir()):
                # The user database holds a password nobody knows any more: start afresh.
                shutil.rmtree(base / "mnesia")
                (base / "mnesia").mkdir()
                say(_("No credentials file for the existing node data: starting with fresh data."))
            creds = Credentials(USERNAME, secrets.token_hex(16))
            _write_private(self.credentials_file, json.dumps(creds.__dict__, indent=1) + "\n")
        ports = self._with_protocol_ports(self._choose_ports(say))
        self._save_state(ports)
        self.plugins_file.write_text(f"[{','.join(PLUGINS)}].\n")
        _write_private(base / "rabbitmq.conf", self._config(ports, creds))
        # The management API aggregates counts on a timer set by the finest sample interval
        # of its retention policies (5 s by default, whatever collect_statistics_interval
        # says): 1 s.
        policies = "[{global,[{605,1},{3660,60}]},{basic,[{605,1},{3600,60}]},{detailed,[{605,1}]}]"
        # Quorum queues report their counts on each Ra tick (5 s by default): 0.5 s, so the
        # diagram's counts of quorum queues settle as quickly as those of classic ones.
        (base / "advanced.config").write_text(
            f"[{{rabbitmq_management_agent, [{{sample_retention_policies, {policies}}}]}},\n"
            f" {{rabbit, [{{quorum_tick_interval, {QUORUM_TICK_MS}}}]}}].\n"
        )
        (base / "rabbitmq-env.conf").write_text("")

    def _save_state(self, ports: Ports) -> None:
        state = {"name": self.name, "ports": ports.__dict__, "runtime": self.runtime.describe()}
        self.state_file.write_text(json.dumps(state, indent=1) + "\n")

    def _with_protocol_ports(self, ports: Ports) -> Ports:
        """`ports` with an MQTT and a STOMP port: each kept while it is free, else a new one
        (never one of the node's other ports).

        A node on the usual ports takes the k-th MQTT and STOMP ports beside its k-th AMQP
        trio, then random ones: never the first free port from the default up, which is
        what another node would take while this one restarts (`restart_app` frees the
        listeners for a few seconds; the trio stays held by the running Erlang VM's
        distribution port).
        """
        taken = {ports.amqp, ports.management, ports.dist}
        chosen: dict[str, int] = {}
        for protocol, default in DEFAULT_PROTOCOL_PORTS.items():
            wanted = getattr(ports, protocol) or getattr(self.ports, protocol)
            # Nodes on fixed ports (tests, a cluster) often start side by side: each draws
            # its candidates at random, so two never race for the same next port.
            beside_trio = [default + ports.amqp - DEFAULT_PORTS[0]]
            if self._fixed_ports or not 0 <= beside_trio[0] - default < PORT_CHOICES:
                beside_trio = []
            candidates = beside_trio + random.sample(range(*RANDOM_PROTOCOL_PORTS), PORT_CHOICES)
            if wanted is None or wanted in taken or not port_is_free(HOST, wanted):
                wanted = next(
                    (p for p in candidates if p not in taken and port_is_free(HOST, p)),
                    None,
                )
                if wanted is None:
                    raise BrokerUnavailable(
                        _(
                            "No free {protocol} port for a private node (tried {tried}): stop "
                            "other nodes (`make stop` in their checkouts)."
                        ).format(protocol=protocol.upper(), tried=PORT_CHOICES + 1)
                    )
            chosen[protocol] = wanted
            taken.add(wanted)
        return Ports(ports.amqp, ports.management, ports.dist, **chosen)

    @staticmethod
    def _protocol_config(ports: Ports) -> list[str]:
        """rabbitmq.conf lines for the MQTT and STOMP listeners (loopback only)."""
        return [
            f"{protocol}.listeners.tcp.1 = {HOST}:{getattr(ports, protocol)}"
            for protocol in PROTOCOL_PLUGINS
            if getattr(ports, protocol) is not None
        ]

    def _config(self, ports: Ports, creds: Credentials) -> str:
        lines = [
            "# Written by helpers/node/private.py: a private node for the tutorial, loopback only.",
            f"listeners.tcp.1 = {HOST}:{ports.amqp}",
            f"management.tcp.ip = {HOST}",
            f"management.tcp.port = {ports.management}",
            *self._protocol_config(ports),
            f"collect_statistics_interval = {STATS_INTERVAL_MS}",
            # The node's only user (guest is never created): an administrator with a random
            # password, kept in credentials.json next to this file (mode 600).
            f"default_user = {creds.username}",
            f"default_pass = {creds.password}",
            "default_user_tags.administrator = true",
            "log.file.level = info",
            f"log.file.rotation.size = {LOG_ROTATE_BYTES}",
            "log.file.rotation.count = 2",
        ]
        if self.heartbeat is not None:
            lines.append(f"heartbeat = {self.heartbeat}")
        lines += self.extra_config
        if is_reference(self.runtime.version) or self.runtime.version.startswith("4."):
            lines += [f"deprecated_features.permit.{f} = false" for f in DENIED_FEATURES]
        return "\n".join(lines) + "\n"

    def _choose_ports(self, say: Progress) -> Ports:
        """Keep the saved ports while they are free; otherwise take the first free trio."""
        if self._fixed_ports:
            wanted = self._fixed_ports
            for port, what in zip(
                (wanted.amqp, wanted.management, wanted.dist),
                ("AMQP", _("management"), _("Erlang distribution")),
                strict=True,
            ):
                if not port_is_free(HOST, port):
                    raise BrokerUnavailable(
                        _(
                            "Port {port} (the private node's {what} port) is already in use: stop "
                            "what holds it, or pick other ports with TUTORIAL_NODE_AMQP_PORT / "
                            "TUTORIAL_NODE_MANAGEMENT_PORT / TUTORIAL_NODE_DIST_PORT."
                        ).format(port=port, what=what)
                    )
            return wanted
        saved = self.ports
        if _all_free(saved):
            return saved
        for k in range(PORT_CHOICES):
            candidate = Ports(*(p + k for p in DEFAULT_PORTS))
            if _all_free(candidate):
                if saved != Ports(*DEFAULT_PORTS) or k:
                    say(
                        _(
                            "Port {port} is in use (another RabbitMQ node, perhaps another "
                            "checkout's, or another program): this node takes {amqp} "
                            "(management {management})."
                        ).format(
                            port=saved.amqp, amqp=candidate.amqp, management=candidate.management
                        )
                    )
                return candidate
        raise BrokerUnavailable(
            _(
                "No free ports for a private node between {first} and {last}: stop other nodes "
                "(`make stop` in their checkouts)."
            ).format(first=DEFAULT_PORTS[0], last=DEFAULT_PORTS[0] + PORT_CHOICES)
        )

    # -- life cycle -------------------------------------------------------------------------

    def start(self, progress: Progress | None = None) -> bool:
        """Start the node unless it already runs; return True if this call started it.

        Two notebooks opened at once may both call this: a lock file makes the second one wait
        for the first one's node instead of starting another.
        """
        say = progress or _quiet
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.pid(say) is not None:
                if not self.is_ready() and self.app_stopped():
                    # The VM runs but RabbitMQ inside it does not: a restart cut short between
                    # its stop_app and start_app. Waiting would take START_TIMEOUT_S in vain.
                    say(
                        _(
                            "The private node ({name}) runs, but its RabbitMQ application "
                            "is stopped (a restart that was cut short?): starting it again."
                        ).format(name=self.name)
                    )
                    self.rabbitmqctl("start_app", timeout=START_TIMEOUT_S)
                self._wait_until_ready(say)
                self._enable_missing_plugins(say)
                return False
            self._end_strays(say)
            self._prepare(say)
            say(
                _("Starting a private RabbitMQ node on {host}:{port}: {runtime}...").format(
                    host=HOST, port=self.ports.amqp, runtime=self.runtime.describe()
                )
            )
            with open(self.base / "startup.log", "wb") as log:
                process = subprocess.Popen(
                    self.runtime.command("rabbitmq-server", [], self.environment()),
                    env={**os.environ, **self.environment()},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # outlives the kernel or `make` that started it
                    cwd=self.base,
                )
            self._wait_until_ready(say, process)
            return True

    def _wait_until_ready(self, say: Progress, process: subprocess.Popen | None = None) -> None:
        """Wait for AMQP and management to answer; with `process`, report progress and death."""
        t0 = time.monotonic()
        last_report = 0
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if self.is_ready():
                if process is not None:
                    say(
                        _("RabbitMQ is up after {seconds:.1f} s.").format(
                            seconds=time.monotonic() - t0
                        )
                    )
                return
            if process is not None and process.poll() is not None and not self.is_running():
                raise BrokerUnavailable(
                    _("The private RabbitMQ node stopped while starting (exit {code}).").format(
                        code=process.returncode
                    )
                    + "\n"
                    + self.log_tail()
                )
            if process is None and not self.is_running():
                raise BrokerUnavailable(
                    _("The private RabbitMQ node stopped while we waited for it to answer.")
                    + "\n"
                    + self.log_tail()
                )
            elapsed = int(time.monotonic() - t0)
            if process is not None and elapsed >= last_report + 2:
                last_report = elapsed
                say(_("  ...still starting ({seconds} s)").format(seconds=elapsed))
            time.sleep(0.25)
        raise BrokerUnavailable(
            _("The private RabbitMQ node did not answer within {seconds:.0f} s.").format(
                seconds=START_TIMEOUT_S
            )
            + "\n"
            + self.log_tail()
        )

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `rabbitmqctl -n <this node> ARGS` with the node's environment.

        It runs in a session of its own: the stop button of Jupyter signals the kernel's
        whole process group, and a `rabbitmqctl stop_app` killed half-way must not be what
        decides the node's state. If the caller is interrupted while it waits, the command
        is ended (every other command here only asks something).
        """
        return _run_detached(self._ctl_argv(*args), self._ctl_env(), timeout)

    def _ctl_argv(self, *args: str, script: str = "rabbitmqctl") -> list[str]:
        return self.runtime.command(script, ["-n", self.name, *args], self.environment())

    def missing_plugins(self) -> list[str]:
        """The PLUGINS the node's enabled_plugins file does not name (a node an older
        checkout started); [] when the file cannot be read (nothing we could fix)."""
        try:
            text = self.plugins_file.read_text()
        except OSError:
            return []
        named = {p.strip() for p in text.strip().rstrip(".").strip("[]").split(",")}
        return [p for p in PLUGINS if p not in named]

    def ensure_plugins(self, progress: Progress | None = None) -> None:
        """Enable, online, the PLUGINS a running node lacks; a no-op when it has them.

        A node started by an older checkout keeps running across a `git pull`, and the
        helpers reuse it instead of restarting it (a restart would drop every learner's
        connections): `rabbitmq-plugins enable --online` starts the plugin in the running
        node and records it in its enabled_plugins file, so it stays on after a restart. Two
        notebooks reusing the node at once take turns (the start lock). It takes about 3 s, once,
        and says nothing when it works; if it fails, one line says so and everything goes on:
        the diagram then reads clients from the management API only.
        """
        if not self.missing_plugins() or self.base in _plugins_tried:
            return
        say = progress or _quiet
        with open(self.base / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._enable_missing_plugins(say)

    def _enable_missing_plugins(self, say: Progress) -> None:
        """`ensure_plugins` under the start lock (which `start` already holds)."""
        missing = self.missing_plugins()
        if not missing or self.base in _plugins_tried:
            return  # tried once already: a failure would only cost each call 3 s again
        _plugins_tried.add(self.base)
        if any(PROTOCOL_PLUGINS[p] in missing for p in PROTOCOL_PLUGINS):
            try:
                self._add_protocol_listeners()
            except (OSError, subprocess.TimeoutExpired, BrokerUnavailable) as exc:
                say(_("Could not enable MQTT and STOMP: {error}").format(error=exc))
                missing = [p for p in missing if p not in PROTOCOL_PLUGINS.values()]
                if not missing:
                    return
        # Quiet when it works: a notebook's first cell (whose output nbval compares) must
        # print the same whether or not the node needed it.
        argv = self._ctl_argv("enable", "--online", *missing, script="rabbitmq-plugins")
        try:
            result = _run_detached(argv, self._ctl_env(), 60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            say(
                _("Could not enable {plugins}: {error}").format(
                    plugins=", ".join(missing), error=exc
                )
            )
            return
        if result.returncode != 0:
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            say(
                _("Could not enable {plugins}: {error}").format(
                    plugins=", ".join(missing), error=why[0]
                )
            )

    def _add_protocol_listeners(self) -> None:
        """Before MQTT and STOMP are enabled in a running node an older checkout started:
        choose and save their ports, and give the plugins their loopback listeners (without
        them a plugin would listen on 1883 or 61613 of every interface)."""
        self._set_protocol_listeners(self._with_protocol_ports(self.ports))

    def _set_protocol_listeners(self, ports: Ports) -> None:
        """Give the MQTT and STOMP plugins `ports` as their loopback listeners, in the running
        node (persistent: the values survive the plugins' next start) and in rabbitmq.conf and
        the state file (for the next node start)."""
        for protocol, plugin in PROTOCOL_PLUGINS.items():
            listener = f'[{{"{HOST}", {getattr(ports, protocol)}}}]'
            result = self.rabbitmqctl(
                "eval",
                f"application:set_env({plugin}, tcp_listeners, {listener}, "
                "[{persistent, true}]).",
                timeout=30,
            )
            if result.returncode != 0:
                raise BrokerUnavailable((result.stderr or result.stdout).strip()[:200])
        config = self.base / "rabbitmq.conf"
        lines = [
            line
            for line in config.read_text().splitlines()
            if not line.startswith(tuple(f"{p}.listeners." for p in PROTOCOL_PLUGINS))
        ]
        _write_private(config, "\n".join(lines + self._protocol_config(ports)) + "\n")
        self._save_state(ports)

    def _ctl_env(self) -> dict[str, str]:
        return {**os.environ, **self.environment()}

    def app_stopped(self) -> bool:
        """True when the node's Erlang VM answers but its RabbitMQ application is stopped
        (neither running nor booting): what an interrupted `restart_app` can leave."""
        try:
            result = self.rabbitmqctl(
                "eval", "rabbit:is_booting() orelse rabbit:is_running().", timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == ["false"]

    def stop(self, progress: Progress | None = None) -> bool:
        """Stop the node if it runs; return True if there was one to stop.

        Only this node's own process is ever signalled.
        """
        say = progress or _quiet
        pid = self.pid(say)
        if pid is None:
            return self._end_strays(say)
        say(f"Stopping the private RabbitMQ node ({self.name})...")
        try:
            self.rabbitmqctl("stop", timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _wait_dead(pid, 10)
        self._terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        say("Stopped.")
        return True

    def _stray_pids(self) -> list[int]:
        """Every Erlang VM started for this node's directory (asked when no pid file names
        one, so any found is a stray).

        A checkout deleted while its node ran, then cloned again at the same path, gives the
        same node name (it is derived from the path): the old VM still holds that name, and a
        new start dies with RabbitMQ's duplicate_node_name, a page of Erlang terms. Seen when
        a fresh clone replaced one whose test run had stopped early.
        """
        if not Path("/proc").is_dir():  # macOS: one ps for every process, as _ps_names_node
            out = subprocess.run(["ps", "-axo", "pid=,command="], capture_output=True, text=True)
            rows = (line.strip().split(None, 1) for line in out.stdout.splitlines())
            return [
                int(row[0])
                for row in rows
                if len(row) == 2 and "beam" in row[1] and f"-home {self.base}" in row[1]
            ]
        candidates = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        return [pid for pid in candidates if self.is_own_process(pid)]

    def _end_strays(self, say: Progress) -> bool:
        """Stop this directory's VMs that no pid file names (see `_stray_pids`); True if any.

        Their pid file, and with it usually their credentials and cookie, are gone, so
        rabbitmqctl cannot reach them: they get signals. Durable data still on disk is kept
        for the next start.
        """
        strays = self._stray_pids()
        for pid in strays:
            say(
                _(
                    "A RabbitMQ node started earlier from {dir} (process {pid}) was still "
                    "running without its pid file (was the folder deleted and made again?): "
                    "stopping it."
                ).format(dir=self.base, pid=pid)
            )
            self._terminate(pid)
        return bool(strays)

    def _terminate(self, pid: int) -> None:
        """SIGTERM (the Erlang VM shuts down cleanly on it), then SIGKILL, while `pid` is
        still this node's VM: only this node's own process is ever signalled."""
        for sig, seconds in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            if _alive(pid) and self.is_own_process(pid):
                try:
                    os.kill(pid, sig)
                except PermissionError:
                    raise BrokerUnavailable(
                        f"The node's process {pid} belongs to another user: stop it as that user."
                    ) from None
                _wait_dead(pid, seconds)

    def restart_app(self, progress: Progress | None = None) -> None:
        """Restart the RabbitMQ application inside the running node (every client is dropped).

        Durable queues and persistent messages survive it; transient ones do not. Quicker than
        a full node restart, and the same thing from a client's point of view.

        The stop and the start run in one child process, in a session of its own: the
        kernel's stop button (SIGINT to the kernel's process group) never reaches it, and a
        kernel that is interrupted, or dies, between the two still leaves RabbitMQ running.
        Interrupted (KeyboardInterrupt), this waits for the pair to finish and for the node
        to answer, then raises the interrupt again.
        """
        say = progress or _quiet
        retried = False
        returncode, output, interrupted = self._run_unstoppable(
            [("stop_app",), ("start_app",)], say
        )
        if returncode != 1 and "eaddrinuse" in output and self._move_taken_protocol_listeners():
            # A program took an MQTT or STOMP port while the application was stopped (another
            # node starting beside this one): those listeners move, the start is tried again
            # (3.10 leaves Mnesia running after the failed start, and start_app asserts it
            # is not: stopped first; on 4.x it is not running and the call changes nothing).
            returncode, output, again = self._run_unstoppable(
                [("eval", "application:stop(mnesia), ok."), ("start_app",)], say
            )
            interrupted, retried = interrupted or again, True
        # start_app exits 0 on 4.3 even when the application failed to start: it prints
        # `{:error, ...}` (3.10: `{error, ...}`) instead.
        if returncode != 0 or START_ERROR.search(output):
            step = "start_app" if returncode != 1 or retried else "stop_app"
            raise BrokerUnavailable(f"rabbitmqctl {step} failed: {output.strip()[:600]}")
        self._wait_until_ready(say)
        if interrupted is not None:
            raise interrupted

    def _run_unstoppable(
        self, steps: list[tuple[str, ...]], say: Progress
    ) -> tuple[int, str, KeyboardInterrupt | None]:
        """Run rabbitmqctl `steps` one after the other in a child process of a session of its
        own, which the stop button never reaches; return its exit code (k: step k failed),
        its output, and the KeyboardInterrupt that came while waiting, if one did."""
        script = "".join(
            f"{shlex.join(self._ctl_argv(*step))} || exit {k}\n" for k, step in enumerate(steps, 1)
        )
        run = subprocess.Popen(
            ["/bin/sh", "-c", script],
            env=self._ctl_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        interrupted: KeyboardInterrupt | None = None
        deadline = time.monotonic() + 2 * 60
        while True:
            try:
                output = run.communicate(timeout=max(0.1, deadline - time.monotonic()))[0]
                return run.returncode, output, interrupted
            except subprocess.TimeoutExpired:
                _kill_session(run)
                raise BrokerUnavailable(
                    f"rabbitmqctl {'/'.join(s[0] for s in steps)} did not finish within 120 s.\n"
                    + self.log_tail()
                ) from None
            except KeyboardInterrupt as exc:
                if interrupted is not None:
                    raise  # pressed twice: stop waiting; the steps finish on their own
                interrupted = exc
                say("Interrupted: finishing the broker restart first, so it is not left stopped.")

    def _move_taken_protocol_listeners(self) -> bool:
        """With the application stopped: give the MQTT and STOMP listeners whose ports another
        program holds now new ports; True if one moved. The AMQP and management ports never
        move (clients and the notebook's `broker` know them)."""
        ports = self.ports
        taken = [
            p for p in (ports.mqtt, ports.stomp) if p is not None and not port_is_free(HOST, p)
        ]
        if not taken:
            return False
        self._set_protocol_listeners(self._with_protocol_ports(ports))
        return True

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the node's logs, to show when it will not start."""
        chunks = []
        for path in sorted((self.base / "log").glob("*.log")) + [self.base / "startup.log"]:
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if text:
                chunks.append(f"--- {path} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(chunks) or "(no log was written)"


def _run_detached(
    argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a command in a session of its own, so that no signal for our process group (the
    kernel's stop button) reaches it; end it, with all it started, on a timeout or when the
    caller is interrupted."""
    process = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:  # a timeout, or KeyboardInterrupt in the caller
        _kill_session(process)
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the session a child of ours leads (its pid is its group's id), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 600, never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _all_free(ports: Ports) -> bool:
    return all(port_is_free(HOST, p) for p in (ports.amqp, ports.management, ports.dist))


def _ps_names_node(pid: int, base: str) -> bool:
    """Without /proc (macOS): ask ps for the command line."""
    out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return "beam" in out.stdout and f"-home {base}" in out.stdout


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
