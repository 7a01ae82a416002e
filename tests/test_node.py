"""The private node: loopback only, its own credentials and ports, safe on shared machines.

Every test that starts a node gives it its own directory and ports from a free range, so the
checkout's running node is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
import requests

from conftest import free_ports
from helpers import Broker, find_broker, node
from helpers.node import Node, rootfs
from helpers.node.runtime import is_reference

REPO = Path(__file__).resolve().parent.parent
EPMD_PORT = 4369


def _listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, read from /proc/net (readable by all)."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # 0A = LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            if family == socket.AF_INET:
                raw = raw[::-1]
            else:  # /proc stores IPv6 as four little-endian 32-bit words
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _node_env(tmp_path: Path, name: str | None = None) -> dict[str, str]:
    """Environment for a throwaway node of the same runtime, on free ports, in tmp_path."""
    amqp, management, dist = free_ports(3)
    env = dict(os.environ)
    env.update(
        TUTORIAL_BROKER="private",
        TUTORIAL_NODE_DIR=str(tmp_path / "node"),
        TUTORIAL_NODE_AMQP_PORT=str(amqp),
        TUTORIAL_NODE_MANAGEMENT_PORT=str(management),
        TUTORIAL_NODE_DIST_PORT=str(dist),
    )
    if name:
        env["TUTORIAL_NODE_NAME"] = name
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 120, cwd: Path = REPO):
    return subprocess.run(
        [sys.executable, "-m", "helpers", "broker", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_private_node_listens_on_loopback_only(broker: Broker):
    assert broker.node is not None, "make test runs against this checkout's private node"
    assert broker.node.is_running()
    ports = broker.node.ports
    ours = {ports.amqp, ports.management, ports.dist, EPMD_PORT}
    sockets = {(address, port) for address, port in _listening() if port in ours}
    assert {port for _, port in sockets} == ours, f"expected listeners on {sorted(ours)}"
    exposed = [s for s in sockets if not _is_loopback(s[0])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_start_reuses_a_running_node(broker: Broker):
    pid = broker.node.pid()
    assert broker.node.start() is False
    assert broker.node.pid() == pid


def test_reference_node_is_4x_with_deprecated_features_denied(broker: Broker):
    """The reference broker refuses what RabbitMQ 4 deprecates, so CI catches a chapter using it.

    Where no reference broker can be had (no root, no sudo), make test runs on the installed
    one; then this checks that the node says which version it is instead.
    """
    if broker.node.runtime.kind != "reference":
        assert broker.version == broker.node.runtime.version
        assert os.environ.get("TUTORIAL_RABBITMQ") != "reference"
        return
    assert is_reference(broker.version), broker.version
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as refused:
            channel.queue_declare(
                "unit.node.transient-shared",
                durable=False,  # deliberately transient and shared (deprecated in RabbitMQ 4):
                exclusive=False,  # the reference node must refuse it, which is what is tested
            )
    assert refused.value.reply_code == 541
    assert "transient_nonexcl_queues" in refused.value.reply_text


def test_node_log_is_rotated(broker: Broker):
    result = broker.node.rabbitmqctl("eval", "application:get_env(rabbit, log).")
    assert result.returncode == 0, result.stderr
    compact = "".join(result.stdout.split())
    assert "{size,1048576}" in compact and "{count,2}" in compact, result.stdout


def test_a_node_starts_from_nothing_is_reused_and_stops(tmp_path):
    """The whole life of a private node, on its own ports so the checkout's node is untouched."""
    env = _node_env(tmp_path)
    amqp = int(env["TUTORIAL_NODE_AMQP_PORT"])
    try:
        first = _cli(env, "start")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Starting a private RabbitMQ node" in first.stdout
        assert "RabbitMQ is up after" in first.stdout
        second = _cli(env, "start")
        assert second.returncode == 0 and "Starting" not in second.stdout
        status = _cli(env, "status")
        assert "started by helpers: yes" in status.stdout
        runtime = node.choose_runtime(progress=None)
        assert f"RabbitMQ version:   {runtime.version}" in status.stdout, status.stdout
        if os.environ.get("TUTORIAL_RABBITMQ") == "reference":
            assert "RabbitMQ version:   4.3." in status.stdout, status.stdout
        creds = Node(tmp_path / "node", runtime).credentials()
        assert creds is not None and creds.username == "tutorial"
        for output in (first.stdout, second.stdout, status.stdout):
            assert creds.password not in output, "no command prints a password"
        params = pika.ConnectionParameters(
            "127.0.0.1",
            amqp,
            credentials=pika.PlainCredentials(creds.username, creds.password),
            connection_attempts=1,
        )
        with pika.BlockingConnection(params) as connection:
            assert connection.is_open
        assert (tmp_path / "node" / "mnesia").is_dir(), "data must live in the node dir"
    finally:
        stopped = _cli(env, "stop")
    assert stopped.returncode == 0 and "Stopped." in stopped.stdout
    after = _cli(env, "status", timeout=10)
    assert after.returncode == 1
    assert "No RabbitMQ broker is running" in after.stderr
    assert "Traceback" not in after.stderr


def test_a_node_whose_folder_was_deleted_is_stopped_not_fought(tmp_path):
    """A checkout deleted while its node ran and cloned again at the same path: same node
    name, no pid file, no cookie. The start stops the stray VM (it used to die with Erlang's
    duplicate_node_name), and so does `stop`."""
    env = _node_env(tmp_path)
    base = tmp_path / "node"
    runtime = node.choose_runtime(progress=None)
    strays: list[int] = []
    try:
        first = _cli(env, "start")
        assert first.returncode == 0, first.stdout + first.stderr
        strays.append(int((base / "node.pid").read_text()))
        shutil.rmtree(base)
        again = _cli(env, "start")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"(process {strays[0]}) was still running without its pid file" in again.stdout
        assert "duplicate_node_name" not in again.stdout + again.stderr
        assert not Path(f"/proc/{strays[0]}").exists(), "the stray VM still runs"
        assert Node(base, runtime).is_ready()

        strays.append(int((base / "node.pid").read_text()))
        shutil.rmtree(base)
        stopped = _cli(env, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"(process {strays[1]}) was still running" in stopped.stdout
        assert not Path(f"/proc/{strays[1]}").exists(), "stop left the stray VM running"
    finally:
        _cli(env, "stop")
        for pid in strays:  # never leave a VM behind, whatever failed above
            if Node(base, runtime).is_own_process(pid):
                os.kill(pid, 9)


def test_a_node_that_cannot_start_shows_its_log(tmp_path, broker: Broker):
    """Same Erlang node name as the running node: Erlang refuses, and we show why."""
    env = _node_env(tmp_path, name=broker.node.name)
    result = _cli(env, "start", timeout=100)
    assert result.returncode == 1
    assert "stopped while starting" in result.stderr
    assert "last" in result.stderr and "lines" in result.stderr  # the log excerpt
    assert "Traceback" not in result.stderr


def test_port_taken_by_another_program_is_explained(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = _node_env(tmp_path)
        env["TUTORIAL_NODE_AMQP_PORT"] = str(port)
        result = _cli(env, "start", timeout=30)
    assert result.returncode == 1
    assert f"Port {port}" in result.stderr and "already in use" in result.stderr


# -- shared machines (issue: a private node that is safe on shared machines) ---------------


def test_stale_pid_file_naming_a_live_foreign_process(tmp_path):
    """After a reboot the pid may belong to anything: it is never signalled, and the file goes."""
    stranger = subprocess.Popen(["sleep", "120"])
    try:
        env = _node_env(tmp_path)
        node_dir = tmp_path / "node"
        node_dir.mkdir()
        (node_dir / "node.pid").write_text(f"{stranger.pid}\n")
        t0 = time.monotonic()
        stopped = _cli(env, "stop", timeout=30)
        assert time.monotonic() - t0 < 10
        assert stopped.returncode == 0, stopped.stderr
        assert "Removed a stale pid file" in stopped.stdout
        assert "not running" in stopped.stdout
        assert stranger.poll() is None, "make stop must never signal another process"
        assert not (node_dir / "node.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


def _second_checkout(tmp_path: Path) -> Path:
    """A second copy of the tutorial on the same machine (what a second clone has)."""
    checkout = tmp_path / "second-checkout"
    checkout.mkdir()
    shutil.copytree(
        REPO / "helpers", checkout / "helpers", ignore=shutil.ignore_patterns("__pycache__")
    )
    return checkout


def test_stop_with_a_node_dir_stops_only_that_node(tmp_path, broker: Broker):
    """`broker stop` for a node named by TUTORIAL_NODE_DIR leaves the checkout's nodes alone."""
    env = _node_env(tmp_path)
    stopped = _cli(env, "stop", timeout=30)
    assert stopped.returncode == 0 and "not running" in stopped.stdout
    assert broker.node.is_ready(), "the checkout's own node still runs"


def test_second_checkout_gets_its_own_node(tmp_path, broker: Broker):
    """It neither adopts this checkout's node nor fails on its ports: it starts its own."""
    checkout = _second_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORIAL_NODE_")}
    env.update(TUTORIAL_BROKER="private", PYTHONPATH=str(checkout))
    try:
        started = _cli(env, "start", cwd=checkout)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Starting a private RabbitMQ node" in started.stdout
        status = _cli(env, "status", cwd=checkout)
        assert f"in {checkout / '.rabbitmq'}" in status.stdout, status.stdout
        assert f":{broker.port}/" not in status.stdout, "must not adopt the first checkout's node"
    finally:
        stopped = _cli(env, "stop", cwd=checkout)
    assert "Stopped." in stopped.stdout
    assert broker.node.is_ready(), "the first checkout's node is untouched"


def test_another_user_can_neither_use_nor_administer_the_node(broker: Broker):
    """guest does not exist; the password file is the owner's alone."""
    guest = pika.ConnectionParameters(
        broker.host,
        broker.port,
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1,
    )
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(guest)
    r = requests.get(f"{broker.management_url}/api/whoami", auth=("guest", "guest"), timeout=5)
    assert r.status_code == 401
    creds_file = broker.node.credentials_file
    assert creds_file.stat().st_mode & 0o077 == 0
    assert broker.node.base.stat().st_mode & 0o077 == 0
    if os.geteuid() == 0:  # try it for real as another user
        denied = subprocess.run(
            ["runuser", "-u", "nobody", "--", "cat", str(creds_file)],
            capture_output=True,
            text=True,
        )
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # Another user's checkout has another node directory, so it never takes ours for its own.
    other = Node(Path("/tmp/another-users-checkout/.rabbitmq/x"), broker.node.runtime)
    assert other.name != broker.node.name
    assert not other.is_ready()


def test_private_only_ignores_amqp_url_and_port_5672(monkeypatch, broker: Broker):
    """make test tests its own node whatever AMQP_URL says and whatever runs on 5672."""
    monkeypatch.setenv("AMQP_URL", "amqp://someone:secret@127.0.0.1:1/%2F")
    monkeypatch.setenv("TUTORIAL_BROKER", "private")
    with socket.socket() as squatter:
        try:  # something that is not RabbitMQ on 5672, where the port is free to take
            squatter.bind(("127.0.0.1", 5672))
            squatter.listen()
        except OSError:
            pass
        from helpers import find_broker

        found = find_broker(start=False, progress=None)
    assert found.source == "private node" and found.port == broker.port


@pytest.mark.parametrize(
    ("what", "url", "expected"),
    [
        ("wrong password", "amqp://tutorial:wrong-password@127.0.0.1:{port}/%2F", "password"),
        (
            "unknown vhost",
            "amqp://{user}:{password}@127.0.0.1:{port}/no-such-vhost",
            "virtual host",
        ),
    ],
)
def test_bad_credentials_in_amqp_url_are_one_sentence_within_3_s(broker, what, url, expected):
    env = {k: v for k, v in os.environ.items() if k != "TUTORIAL_BROKER"}
    env["AMQP_URL"] = url.format(port=broker.port, user=broker.username, password=broker.password)
    t0 = time.monotonic()
    result = _cli(env, "start", timeout=30)
    took = time.monotonic() - t0
    assert result.returncode == 1, result.stdout
    assert took < 5, f"{what}: {took:.1f} s (about 1 s of it is starting Python)"
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert broker.password not in result.stderr + result.stdout
    assert "wrong-password" not in result.stderr + result.stdout


def test_rootfs_mirror_comes_from_the_machines_apt_sources(monkeypatch):
    """No host name is hard-coded: the mirror is the one apt already uses (or the override)."""
    monkeypatch.setenv("TUTORIAL_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    assert rootfs.debian_mirror() == "http://mirror.invalid/debian"
    monkeypatch.delenv("TUTORIAL_DEBIAN_MIRROR")
    mirror = rootfs.debian_mirror()
    if Path("/etc/debian_version").exists() and os.environ.get("TUTORIAL_RABBITMQ") == "reference":
        assert mirror and mirror.rstrip("/").endswith("/debian")


def _event_exchange_running(n: Node) -> bool:
    result = n.rabbitmqctl(
        "eval", "lists:keymember(rabbitmq_event_exchange, 1, application:which_applications())."
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "true"


def test_a_reused_node_without_the_event_exchange_gets_it_online(tmp_path, monkeypatch):
    """A node an older checkout started runs without rabbitmq_event_exchange. Finding it
    again (what a notebook's first cell does) enables the plugin in the running node, without
    a restart and without a word, and in its enabled_plugins file, so it stays on."""
    from conftest import throwaway_node

    with throwaway_node(tmp_path / "node", "plugins") as n:
        assert n.missing_plugins() == [] and _event_exchange_running(n), "new nodes have it"
        older = subprocess.run(
            n._ctl_argv(
                "disable", "--online", "rabbitmq_event_exchange", script="rabbitmq-plugins"
            ),
            env=n._ctl_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert older.returncode == 0, older.stdout + older.stderr
        assert n.missing_plugins() == ["rabbitmq_event_exchange"]
        assert not _event_exchange_running(n)
        pid = n.pid()
        ports = n.ports
        monkeypatch.setenv("TUTORIAL_NODE_DIR", str(n.base))
        monkeypatch.setenv("TUTORIAL_NODE_NAME", n.name)
        monkeypatch.setenv("TUTORIAL_NODE_AMQP_PORT", str(ports.amqp))
        monkeypatch.setenv("TUTORIAL_NODE_MANAGEMENT_PORT", str(ports.management))
        monkeypatch.setenv("TUTORIAL_NODE_DIST_PORT", str(ports.dist))
        said: list[str] = []
        found = find_broker(private_only=True, progress=said.append)
        assert found.node is not None and found.node.base == n.base
        assert said == []
        assert n.missing_plugins() == [] and _event_exchange_running(n)
        assert n.pid() == pid, "enabled online, not by a restart"
