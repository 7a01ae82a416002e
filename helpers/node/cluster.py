"""A three-node RabbitMQ cluster on this machine, for chapter 10 (a node that dies).

Built from three `Node`s of `private.py` (same runtime as the private node: the reference
RabbitMQ from the root filesystem, else the installed one), each in its own directory
(`.rabbitmq/<kind>-cluster/node1..3`, git-ignored) with its own ports, loopback only like the
private node (AMQP, management, Erlang distribution; epmd is asked to listen on 127.0.0.1).

How it is joined, as RabbitMQ documents it:
- one Erlang cookie for the three (written into each node's HOME before its first start:
  rabbitmqctl and the nodes authenticate to each other with it);
- classic config peer discovery: every node's rabbitmq.conf lists the three nodes
  (`cluster_formation.classic_config.nodes.N`), so the three start in parallel and form one
  cluster on their first boot;
- if a node still came up on its own (seen possible on 3.x when nodes boot at the same
  instant), it is joined the manual way: `stop_app`, `reset`, `join_cluster node1`,
  `start_app`.

Sized for two cores: each VM runs one scheduler and one dirty CPU scheduler (`+S 1:1
+SDcpu 1:1`) and never busy-waits (`+sbwt none`...). Started once and reused: a second
`start()` finds it running and returns at once. `python -m helpers cluster start|stop|status`
and `make stop` manage it.

Tracing (the firehose) is per node and per vhost: `set_tracing` switches it through each
live node's own management API. A `FlowDiagram(cluster_broker)` switches it on every running
node by itself (`helpers.flow.tracing` finds them), and reads through the first running node.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import requests

from helpers.errors import BrokerUnavailable
from helpers.i18n import N_, _
from helpers.management import ManagementClient
from helpers.node.private import (
    HOST,
    USERNAME,
    Credentials,
    Node,
    Ports,
    _alive,
    _all_free,
    _wait_dead,
    _write_private,
)
from helpers.node.runtime import Runtime
from helpers.probe import PortState, probe_amqp

SIZE = 3
DEFAULT_AMQP = 5701  # node i (1..3): AMQP 5700+i, management 15700+i, distribution 25700+i
PORT_CHOICES = 30  # candidate k shifts every port by 3*k
# Two cores, three VMs: one normal and one dirty CPU scheduler each, no busy waiting.
SCHEDULER_FLAGS = "+S 1:1 +SDcpu 1:1 +SDio 2 +sbwt none +sbwtdcpu none +sbwtdio none"
START_TIMEOUT_S = 120.0
KHEPRI_TIMEOUT_MS = 5000
DISCONNECTED_TIMEOUT_MS = 2000
# Boots that fail only because the peers were busy booting too, seen on a loaded machine; such
# a node is started again, this often:
# - 4.3.6: a node that boots while its peers still elect a leader waits KHEPRI_TIMEOUT_MS for
#   the metadata store, then stops with "BOOT FAILED ... {error,timeout}";
# - 3.10.8: a node that syncs its feature flags with a peer that does not know them yet stops
#   with "BOOT FAILED ... {incompatible_feature_flags,{badrpc,...{badmap,undefined}...".
BOOT_ATTEMPTS = 3
TRANSIENT_BOOT_FAILURE = re.compile(
    r"BOOT FAILED.*?(\{error,\s*timeout\}|\{incompatible_feature_flags,\s*\{badrpc)", re.S
)
NEVER_STARTED = N_("The cluster was never started: python -m helpers cluster start")
CLUSTER_PLUGINS = ("rabbitmq_management", "rabbitmq_event_exchange")

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


class ClusterNode(Node):
    """A `Node` that is one member of a cluster: shared cookie, peer list, light schedulers."""

    def __init__(self, base: Path, runtime: Runtime, name: str, ports: Ports, peers: list[str]):
        self.peers = peers
        self.runtime = runtime
        super().__init__(base, runtime, name=name, ports=ports, extra_config=self._peer_config())

    def _peer_config(self) -> tuple[str, ...]:
        lines = [
            "cluster_formation.peer_discovery_backend = classic_config",
            *(f"cluster_formation.classic_config.nodes.{i} = {p}" for i, p in
              enumerate(self.peers, start=1)),
        ]
        if not self.runtime.version.startswith("3."):
            # Khepri (4.x): a change of topology without a majority gives up after 5 s
            # instead of the default 30 s, so the chapter's demonstration stays short.
            lines.append(f"metadata_store.khepri.default_timeout = {KHEPRI_TIMEOUT_MS}")
            # A quorum queue gives the messages a consumer on a vanished node held back after
            # this long (default 60 s: it may be a partition, not a death): 2 s here.
            lines.append(f"consumer_disconnected_timeout = {DISCONNECTED_TIMEOUT_MS}")
        return tuple(lines)

    # The cluster runs management and the event exchange only (MQTT and STOMP, which the
    # private node adds, would cost memory and ports three times over).
    def _with_protocol_ports(self, ports: Ports) -> Ports:
        return Ports(ports.amqp, ports.management, ports.dist)

    def _prepare(self, say: Progress) -> None:
        super()._prepare(say)
        self.plugins_file.write_text(f"[{','.join(CLUSTER_PLUGINS)}].\n")

    def start(self, progress: Progress | None = None) -> bool:
        """`Node.start`, again when the boot failed only because its peers were busy (see
        BOOT_ATTEMPTS): by the next attempt they have usually finished booting."""
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                return super().start(progress)
            except BrokerUnavailable:
                if attempt == BOOT_ATTEMPTS or not self.boot_failed_transiently():
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def boot_failed_transiently(self) -> bool:
        """True when the last start stopped in one of the ways TRANSIENT_BOOT_FAILURE names
        (read from its startup.log)."""
        try:
            text = (self.base / "startup.log").read_text(errors="replace")
        except OSError:
            return False
        return TRANSIENT_BOOT_FAILURE.search(text) is not None

    def missing_plugins(self) -> list[str]:
        try:
            text = self.plugins_file.read_text()
        except OSError:
            return []
        return [p for p in CLUSTER_PLUGINS if p not in text]

    def is_ready(self) -> bool:
        """AMQP answers and the management API knows this node's credentials. (Not the
        overview, as a single node does: on a cluster it gathers from every node, and took
        more than a second while another node was going away.)"""
        creds = self.credentials()
        return (creds is not None and probe_amqp(HOST, self.ports.amqp, 1.0) is PortState.AMQP
                and _answers(self, creds))

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] += " " + SCHEDULER_FLAGS
        return env

    @property
    def short(self) -> str:
        return self.base.name  # node1, node2, node3


@dataclass(frozen=True)
class ClusterState:
    """What a chapter prints about a quorum queue: its leader and members, by short name."""

    leader: str | None
    members: list[str]
    online: list[str]


class Cluster:
    """Three nodes of one runtime, in `base` (one subdirectory per node)."""

    def __init__(self, base: Path, runtime: Runtime) -> None:
        self.base = Path(base).resolve()
        self.runtime = runtime
        digest = hashlib.sha1(str(self.base).encode()).hexdigest()[:6]
        self.names = [f"tutorial-node{i}-{digest}@localhost" for i in range(1, SIZE + 1)]
        ports = self._ports()
        self.nodes = [
            ClusterNode(self.base / f"node{i}", runtime, name, ports[i - 1], self.names)
            for i, name in enumerate(self.names, start=1)
        ]

    def __repr__(self) -> str:
        return f"Cluster({self.base}, {self.runtime.kind} {self.runtime.version})"

    # -- files ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.base / "cluster.json"

    def _ports(self) -> list[Ports]:
        try:
            saved = json.loads(self.state_file.read_text())["ports"]
            return [Ports(p["amqp"], p["management"], p["dist"]) for p in saved]
        except (OSError, ValueError, KeyError, TypeError):
            return _candidate(self._first_candidate())

    def _first_candidate(self) -> int:
        """Where this cluster's search for free ports starts: clusters of this checkout that
        may start at the same moment (the notebook passes, the tests, the learner sessions)
        start from different ports, so they never race for the same ones."""
        known = ("reference-cluster", "system-cluster", "learner-reference-cluster",
                 "learner-system-cluster", "test-reference-cluster", "test-system-cluster")
        name = self.base.name
        if name in known:
            return known.index(name)
        return len(known) + int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10

    def credentials(self) -> Credentials | None:
        try:
            data = json.loads((self.base / "credentials.json").read_text())
            return Credentials(data["username"], data["password"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def short(self, name: str | None) -> str | None:
        """node1 for tutorial-node1-ab12cd@localhost (names in outputs stay the same)."""
        if name is None:
            return None
        for node in self.nodes:
            if node.name == name:
                return node.short
        return name

    def node(self, which: str | int) -> ClusterNode:
        """A node by short name (node2), full name, or number (2)."""
        for i, node in enumerate(self.nodes, start=1):
            if which in (i, node.short, node.name):
                return node
        raise KeyError(which)

    # -- state ------------------------------------------------------------------------------

    def running(self) -> list[ClusterNode]:
        """Nodes whose Erlang VM runs (not necessarily answering)."""
        return [n for n in self.nodes if n.is_running()]

    def ready(self) -> list[ClusterNode]:
        """Nodes that answer AMQP and management."""
        return [n for n in self.nodes if n.is_running() and n.is_ready()]

    def is_running(self) -> bool:
        return bool(self.running())

    def members(self, via: ClusterNode | None = None) -> list[str]:
        """Short names of the cluster's members (running or not) as a live node sees them."""
        api = self.api(via)
        return sorted(self.short(n["name"]) or "" for n in api.get("/nodes"))

    # -- life cycle -------------------------------------------------------------------------

    def _prepare(self, say: Progress) -> None:
        """Cookie, credentials and ports shared by the three nodes."""
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        creds = self.credentials()
        if creds is None:
            creds = Credentials(USERNAME, secrets.token_hex(16))
            _write_private(self.base / "credentials.json", json.dumps(creds.__dict__) + "\n")
        cookie_file = self.base / "cookie"
        if not cookie_file.exists():
            _write_private(cookie_file, secrets.token_hex(20).upper())
        cookie = cookie_file.read_text().strip()
        ports = [n.ports for n in self.nodes]
        if not all(_all_free(p) for p, n in zip(ports, self.nodes, strict=True)
                   if not n.is_running()):
            ports = self._free_ports(say)
        self.state_file.write_text(json.dumps(
            {"names": self.names, "ports": [p.__dict__ for p in ports],
             "runtime": self.runtime.describe()}, indent=1) + "\n")
        for node, port in zip(self.nodes, ports, strict=True):
            node._fixed_ports = port
            node.base.mkdir(parents=True, exist_ok=True)
            # The same administrator on every node before the join (the join keeps node1's).
            _write_private(node.base / "credentials.json", json.dumps(creds.__dict__) + "\n")
            target = node.base / ".erlang.cookie"
            if not target.exists() or target.read_text().strip() != cookie:
                target.unlink(missing_ok=True)
                _write_private(target, cookie)
                os.chmod(target, 0o400)

    def _free_ports(self, say: Progress) -> list[Ports]:
        first = self._first_candidate()
        for k in range(first, first + PORT_CHOICES):
            candidate = _candidate(k)
            if all(_all_free(p) for p in candidate):
                if k != first:
                    say(_("Ports {first}-{last} are in use: the cluster takes {start}-{end}.")
                        .format(first=DEFAULT_AMQP, last=DEFAULT_AMQP + 2,
                                start=candidate[0].amqp, end=candidate[-1].amqp))
                return candidate
        raise BrokerUnavailable(
            _("No free ports for the cluster: stop other clusters (make stop).")
        )

    def start(self, progress: Progress | None = None) -> bool:
        """Start every node that does not run and wait until all answer, as one cluster.
        True if this call started any. A second call finds it running and returns at once."""
        say = progress or _quiet
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            down = [n for n in self.nodes if not (n.is_running() and n.is_ready())]
            if not down:
                return False
            t0 = time.monotonic()
            fresh = not (self.nodes[0].base / "mnesia").exists()
            self._prepare(say)
            say(_("Starting {n} of the cluster's {size} nodes ({nodes}), RabbitMQ {version}...")
                .format(n=len(down), size=SIZE, nodes=", ".join(n.short for n in down),
                        version=self.runtime.version))
            self._start_nodes(down, say)
            say(_("  {nodes} answer after {seconds:.1f} s")
                .format(nodes=", ".join(n.short for n in down), seconds=time.monotonic() - t0))
            if fresh or len(down) == SIZE:
                self._ensure_joined(say)
                say(_("  one cluster of {size} nodes after {seconds:.1f} s")
                    .format(size=SIZE, seconds=time.monotonic() - t0))
            self._wait_formed()
            return True

    def start_nodes(self, which: list[str], progress: Progress | None = None) -> None:
        """Start the named nodes again (after a kill or stop); they rejoin by themselves."""
        say = progress or _quiet
        with open(self.base / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            nodes = [self.node(w) for w in which]
            down = [n for n in nodes if not (n.is_running() and n.is_ready())]
            self._start_nodes(down, say)
            if down:
                self._wait_formed()

    def _wait_formed(self, timeout: float = 60.0) -> bool:
        """Wait until every node runs in the one cluster and its metadata store takes a
        write. A node that comes back answers AMQP before the metadata store (Khepri on 4.x)
        has caught up with it; on a busy machine a declaration in that moment times out
        (541, "the metadata store operation timed out", seen in a learner session on 4.3.6),
        so the cell after a restart would fail. True once formed; False at the timeout."""
        deadline = time.monotonic() + timeout
        probe = "tutorial.cluster-probe"
        while time.monotonic() < deadline:
            try:
                api = self.api()
                running = [n for n in api.get("/nodes") if n.get("running")]
                if len(running) == SIZE:
                    api.declare_exchange(probe, "/")
                    api.delete_exchange(probe, "/")
                    return True
            except Exception:  # noqa: BLE001 - a node still booting, a write that timed out
                pass
            time.sleep(0.5)
        return False

    def _start_nodes(self, nodes: list[ClusterNode], say: Progress) -> None:
        errors: list[BaseException] = []

        def one(node: ClusterNode) -> None:  # one thread per node: they boot in parallel
            try:
                node.start(lambda m: None)
            except BaseException as exc:  # reported below, with the node's log
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(START_TIMEOUT_S)
        if errors:
            raise errors[0]

    def _ensure_joined(self, say: Progress) -> None:
        """Every node in node1's cluster; a node that formed a cluster alone is joined."""
        first = self.nodes[0]
        for node in self.nodes[1:]:
            if node.name in self._running_members(first):
                continue
            for step in (("stop_app",), ("reset",), ("join_cluster", first.name), ("start_app",)):
                result = node.rabbitmqctl(*step, timeout=120)
                if result.returncode != 0:
                    raise BrokerUnavailable(
                        f"rabbitmqctl {' '.join(step)} on {node.short} failed: "
                        f"{(result.stderr or result.stdout).strip()}"
                    )
            node._wait_until_ready(say)
        deadline = time.monotonic() + 30
        while len(self._running_members(first)) < SIZE and time.monotonic() < deadline:
            time.sleep(0.25)

    def _running_members(self, via: ClusterNode) -> list[str]:
        try:
            return [n["name"] for n in self.api(via).get("/nodes") if n.get("running")]
        except Exception:  # noqa: BLE001 - a node still booting
            return []

    def kill(self, which: str | int) -> int:
        """SIGKILL a node's Erlang VM: no goodbye to its peers or clients. Returns the pid."""
        node = self.node(which)
        pid = node.pid()
        if pid is None:
            raise BrokerUnavailable(_("{node} is not running.").format(node=node.short))
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, 10)
        node.pid_file.unlink(missing_ok=True)
        return pid

    def stop_node(self, which: str | int) -> None:
        """Stop one node cleanly; it stays a member of the cluster."""
        self.stop_nodes([which])

    def stop_nodes(self, which: list, progress: Progress | None = None) -> None:
        """Stop nodes cleanly, in parallel: SIGTERM makes the Erlang VM stop RabbitMQ the
        orderly way, as `rabbitmqctl stop` does, without a CLI tool's start-up (seconds on a
        busy machine). SIGKILL only if one is still alive after 60 s."""
        nodes = [self.node(w) for w in which]
        pids = [(n, n.pid()) for n in nodes]
        for _node, pid in pids:
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        for node, pid in pids:
            if pid is None:
                continue
            _wait_dead(pid, 60)
            if _alive(pid) and node.is_own_process(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_dead(pid, 5)
            node.pid_file.unlink(missing_ok=True)

    def stop(self, progress: Progress | None = None) -> bool:
        """Stop every node (in parallel); True if any ran. The data stays for the next start."""
        say = progress or _quiet
        running = self.running()
        if not running:
            return False
        say(f"Stopping the cluster ({', '.join(n.short for n in running)})...")
        self.stop_nodes([n.short for n in running])
        say("Stopped.")
        return True

    # -- clients ----------------------------------------------------------------------------

    def api(self, via: ClusterNode | str | None = None) -> ManagementClient:
        """The management API of `via`, else of the first node that answers."""
        creds = self.credentials()
        if creds is None:
            raise BrokerUnavailable(_(NEVER_STARTED))
        nodes = [self.node(via)] if isinstance(via, str) else [via] if via else self.nodes
        for node in nodes:
            if node.is_running() and _answers(node, creds):
                return ManagementClient(
                    f"http://{HOST}:{node.ports.management}", creds.username, creds.password
                )
        raise BrokerUnavailable(_("No node of the cluster answers."))

    def broker(self) -> ClusterBroker:
        creds = self.credentials()
        if creds is None:
            raise BrokerUnavailable(_(NEVER_STARTED))
        return ClusterBroker(self, creds.username, creds.password)

    def set_tracing(self, vhost: str, enabled: bool) -> list[str]:
        """Switch the firehose of `vhost` on every live node (it is per node); the short
        names of the nodes it was switched on."""
        done = []
        for node in self.ready():
            self.api(node).set_tracing(vhost, enabled)
            done.append(node.short)
        return done

    def tracing(self, vhost: str) -> dict[str, bool]:
        return {n.short: self.api(n).tracing(vhost) for n in self.ready()}

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of each running node's Erlang VM, in MB (from /proc)."""
        out = {}
        for node in self.running():
            pid = node.pid()
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[node.short] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out


class ClusterBroker:
    """What a chapter needs to reach the cluster with plain pika: hosts, ports, credentials,
    and the management API of a live node.

    It has what a `FlowDiagram` reads of a `Broker` too (`port`, `management_url`, `tls`, and
    what the alarm helpers check): the diagram's firehose and management reads go through the
    first running node, and tracing is switched on every node (see `helpers.flow.tracing`).
    """

    tls = False
    source = "cluster"  # not "private node": the alarm helpers leave it alone
    started_by_helpers = True
    node = None

    def __init__(self, cluster: Cluster, username: str, password: str) -> None:
        self.cluster = cluster
        self.host = HOST
        self.vhost = "/"
        self.username = username
        self.password = password

    def _first_running(self) -> ClusterNode:
        return next((n for n in self.cluster.nodes if n.is_running()), self.cluster.nodes[0])

    @property
    def port(self) -> int:
        """The AMQP port of the first running node (the diagram's firehose connects there)."""
        return self._first_running().ports.amqp

    @property
    def management_url(self) -> str:
        """The management API of the first running node."""
        return f"http://{self.host}:{self._first_running().ports.management}"

    def __repr__(self) -> str:  # never the password
        return f"ClusterBroker({', '.join(self.addresses)})"

    @property
    def ports(self) -> list[int]:
        return [n.ports.amqp for n in self.cluster.nodes]

    @property
    def addresses(self) -> list[str]:
        return [f"{self.host}:{p}" for p in self.ports]

    @property
    def nodes(self) -> list[str]:
        return [n.short for n in self.cluster.nodes]

    def node_of_port(self, port: int) -> str:
        for node in self.cluster.nodes:
            if node.ports.amqp == port:
                return node.short
        return str(port)

    def connection_parameters(self, **options: Any) -> list[pika.ConnectionParameters]:
        """One ConnectionParameters per node, in node order (the helpers' shortcut)."""
        credentials = pika.PlainCredentials(self.username, self.password)
        return [
            pika.ConnectionParameters(host=self.host, port=port, virtual_host=self.vhost,
                                      credentials=credentials, **options)
            for port in self.ports
        ]

    @property
    def management(self) -> ManagementClient:
        return self.cluster.api()

    def queue_state(self, queue: str) -> ClusterState:
        """Leader, members and online members of a quorum queue, by short names."""
        info = self.management.queue(queue, self.vhost) or {}
        short = self.cluster.short
        return ClusterState(
            short(info.get("leader")),
            sorted(short(m) or "" for m in info.get("members") or []),
            sorted(short(m) or "" for m in info.get("online") or []),
        )


def _answers(node: Node, creds: Credentials) -> bool:
    try:
        r = requests.get(f"http://{HOST}:{node.ports.management}/api/whoami",
                         auth=(creds.username, creds.password), timeout=2)
    except requests.RequestException:
        return False
    return r.status_code == 200


def _candidate(k: int) -> list[Ports]:
    a = DEFAULT_AMQP + SIZE * k
    return [Ports(a + i, a + 10000 + i, a + 20000 + i) for i in range(SIZE)]


def cluster_dir(kind: str) -> Path:
    """`.rabbitmq/<kind>-cluster`, or TUTORIAL_CLUSTER_DIR (tests, learner sessions)."""
    override = os.environ.get("TUTORIAL_CLUSTER_DIR")
    if override:
        return Path(override).expanduser().resolve()
    from helpers.node import repo_dir

    return repo_dir() / ".rabbitmq" / f"{kind}-cluster"


def default_cluster(progress: Progress | None = None) -> Cluster:
    """This checkout's cluster, of the same runtime as its private node."""
    from helpers.node import choose_runtime

    runtime = choose_runtime(progress=progress)
    return Cluster(cluster_dir(runtime.kind), runtime)


def start_cluster(progress: Progress | None = print) -> ClusterBroker:
    """The checkout's cluster, started unless it runs; what a chapter connects with."""
    cluster = default_cluster(progress)
    cluster.start(progress)
    return cluster.broker()


def all_clusters() -> list[Cluster]:
    """Every cluster directory of this checkout that has nodes (for `make stop`)."""
    from helpers.node import repo_dir, rootfs, system_runtime

    runtimes = {"reference": rootfs.runtime(), "system": system_runtime()}
    found = []
    dirs = {p.parent for p in (repo_dir() / ".rabbitmq").glob("*/cluster.json")}
    if os.environ.get("TUTORIAL_CLUSTER_DIR"):
        dirs.add(cluster_dir("reference"))
    for base in sorted(dirs):
        kind = "system" if "system" in base.name else "reference"
        runtime = runtimes.get(kind) or runtimes["system"] or runtimes["reference"]
        if runtime is not None and (base / "cluster.json").exists():
            found.append(Cluster(base, runtime))
    return found
