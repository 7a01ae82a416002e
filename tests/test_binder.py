"""What can be checked of the Binder setup without reaching mybinder.org.

1. binder/ is self-sufficient and agrees with the top-level requirements.txt (Binder reads
   only binder/ when it exists, so a pin added at the top must be repeated there).
2. binder/start really brings up a broker when run the way Binder runs it: as an ordinary
   (non-root) user with a fresh HOME. The node gets its own name, ports and directory here,
   so the tutorial's running private node is never touched.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
TEST_ONLY = {"pytest", "nbval", "ruff", "playwright", "pyyaml"}  # not installed on Binder
ORDINARY_USER = "binderuser"


def _requirements(path: Path) -> tuple[dict[str, str], list[str]]:
    """({project name: full requirement}, [other lines such as `-e .`]) of a pip file."""
    reqs: dict[str, str] = {}
    others: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if line.startswith("-") or not match:
            others.append(line)
            continue
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        reqs[name] = line.replace(" ", "")
    return reqs, others


def test_binder_requirements_match_the_top_level_ones() -> None:
    top, top_other = _requirements(REPO / "requirements.txt")
    binder, binder_other = _requirements(BINDER / "requirements.txt")
    wanted = {name: spec for name, spec in top.items() if name not in TEST_ONLY}
    assert binder == wanted, (
        "binder/requirements.txt must list every requirement of requirements.txt except the "
        f"test tools {sorted(TEST_ONLY)}, with the same pins"
    )
    # The helper package: `-e .` at the top; on Binder postBuild installs it from the root.
    assert "-e ." in top_other
    assert binder_other == []
    post_build = (BINDER / "postBuild").read_text()
    assert re.search(r"^python -m pip install .*--no-deps -e \.$", post_build, re.M)
    assert re.search(r'^cd "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/\.\."$', post_build, re.M)


def test_binder_files_are_what_repo2docker_expects() -> None:
    packages = [
        line.partition("#")[0].strip() for line in (BINDER / "apt.txt").read_text().splitlines()
    ]
    assert "rabbitmq-server" in packages
    for script in ("postBuild", "start"):
        path = BINDER / script
        assert os.access(path, os.X_OK), f"binder/{script} must be executable"
        assert path.read_text().startswith("#!/bin/bash\n")
    start_lines = [
        line.strip()
        for line in (BINDER / "start").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert start_lines[-1] == 'exec "$@"', "binder/start must hand over to the notebook server"


def test_compose_file_publishes_on_loopback_only() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["rabbitmq"]
    assert service["image"].startswith("rabbitmq:3") and "management" in service["image"]
    ports = service["ports"]
    assert {p.split(":", 1)[1] for p in ports} == {"5672:5672", "15672:15672"}
    assert all(p.startswith("127.0.0.1:") for p in ports)


# -- the start script, run like Binder runs it ----------------------------------------------


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ordinary_user() -> tuple[str, int, int]:
    """(name, uid, gid) to run as: `binderuser` (created if missing) when root, else me."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid())
        return me.pw_name, me.pw_uid, me.pw_gid
    try:
        entry = pwd.getpwnam(ORDINARY_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", ORDINARY_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(ORDINARY_USER)
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _as_user(user: str, argv: list[str]) -> list[str]:
    """argv run as `user`: directly when that is me, else through runuser (or su)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return ["su", "-s", "/bin/bash", user, "-c", shlex.join(argv)]


def _python_for(user: str, home: Path) -> tuple[Path, dict[str, str]]:
    """A `python` the user can run that sees our requirements: (directory for PATH, extra env).

    On Binder `python` is the image's environment. Here the test's own interpreter is the
    match, unless the user may not run it (a venv made from root's pyenv, say): then the
    system interpreter of the same version reads the venv's site-packages instead.
    """
    venv_bin = Path(sys.executable).parent
    probe = subprocess.run(
        _as_user(user, [sys.executable, "-c", "import pika, requests"]), capture_output=True
    )
    if probe.returncode == 0:
        return venv_bin, {}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    assert system, (
        f"{user} cannot run {sys.executable} and there is no system {version} to use instead"
    )
    shim = home / "bin"
    shim.mkdir()
    (shim / "python").symlink_to(system)
    purelib = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return shim, {"PYTHONPATH": purelib}


CONNECT = """
import os, sys, pika, requests
amqp, mgmt = int(sys.argv[1]), int(sys.argv[2])
params = pika.ConnectionParameters("127.0.0.1", amqp, connection_attempts=1, socket_timeout=5)
with pika.BlockingConnection(params) as conn:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello from binder")
    method, _props, body = ch.basic_get(q, auto_ack=True)
overview = requests.get(f"http://127.0.0.1:{mgmt}/api/overview", auth=("guest", "guest"),
                        timeout=5).json()
print("uid", os.getuid(), "body", body.decode(), "node", overview["node"])
"""


def test_start_script_runs_a_broker_as_an_ordinary_user() -> None:
    user, uid, gid = _ordinary_user()
    home = Path(tempfile.mkdtemp(prefix="classdev-binder-"))  # /tmp: the user can reach it
    node_dir = home / "rabbitmq"
    os.chown(home, uid, gid)
    amqp, management, dist = _free_ports(3)
    node_name = f"classdev-binder-{os.getpid()}@localhost"
    python_dir, python_env = _python_for(user, home)
    env = {
        **python_env,
        "HOME": str(home),  # fresh, like a new Binder session
        "USER": user,
        "PATH": f"{python_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "TUTORIAL_NODE_NAME": node_name,
        "TUTORIAL_NODE_AMQP_PORT": str(amqp),
        "TUTORIAL_NODE_MANAGEMENT_PORT": str(management),
        "TUTORIAL_NODE_DIST_PORT": str(dist),
        "TUTORIAL_NODE_DIR": str(node_dir),
    }
    with_env = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
    start = [str(BINDER / "start"), "python", "-c", CONNECT, str(amqp), str(management)]
    try:
        started = subprocess.run(
            _as_user(user, [*with_env, *start]),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.strip().splitlines()[-1] == (
            f"uid {uid} body hello from binder node {node_name}"
        ), started.stdout + started.stderr
        assert (node_dir / "mnesia").is_dir() and node_dir.stat().st_uid == uid

        stopped = subprocess.run(
            _as_user(
                user, [*with_env, "python", "-c", "from helpers import node; print(node.stop())"]
            ),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stopped.stdout.strip().endswith("True"), stopped.stdout + stopped.stderr
    finally:
        _kill_leftover(node_dir / "node.pid")
        shutil.rmtree(home, ignore_errors=True)


def _kill_leftover(pid_file: Path) -> None:
    """If a failed run left our throwaway node running, end it (only that pid)."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
