"""What can be checked of the Binder setup without reaching mybinder.org.

1. binder/ is self-sufficient and agrees with the top-level requirements.txt (Binder reads
   only binder/ when it exists, so a pin added at the top must be repeated there).
2. binder/start really brings up a broker when run the way Binder runs it: as an ordinary
   (non-root) user with a fresh HOME. The node gets its own name, ports and directory here,
   so the tutorial's running private node is never touched. The checkout is copied under a
   mode-700 directory first, as a CI runner or `mktemp -d` may place it, to show that the
   test stages what the ordinary user runs instead of assuming it can read the checkout.
   As root the ordinary user is `nobody`: the test creates no system user.
"""

from __future__ import annotations

import importlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from conftest import free_ports

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
# Not installed on Binder: nobody runs the tests there.
TEST_ONLY = {"pytest", "pytest-xdist", "nbval", "ruff", "playwright", "pyyaml"}
ORDINARY_USER = "nobody"  # exists on every Debian/Ubuntu system; nothing to create or remove


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
    assert service["image"].startswith("rabbitmq:4") and "management" in service["image"]
    ports = service["ports"]
    assert {p.split(":", 1)[1] for p in ports} == {
        "5672:5672",  # AMQP 0-9-1 and AMQP 1.0
        "15672:15672",  # management
        "1883:1883",  # MQTT (chapter 09)
        "61613:61613",  # STOMP (chapter 09)
    }
    assert all(p.startswith("127.0.0.1:") for p in ports)
    # The mounted config denies the same deprecated features as the private node.
    from helpers.node.private import DENIED_FEATURES

    source, target = service["volumes"][0].split(":")[:2]
    conf = (REPO / source).read_text()
    assert target.startswith("/etc/rabbitmq/conf.d/")
    for feature in DENIED_FEATURES:
        assert f"deprecated_features.permit.{feature} = false" in conf


def test_compose_file_enables_the_private_nodes_plugins() -> None:
    """The container runs the plugins the private node runs (the event exchange too)."""
    from helpers.node.private import PLUGINS

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[1::-1] for v in compose["services"]["rabbitmq"]["volumes"])
    plugins_file = REPO / mounts["/etc/rabbitmq/enabled_plugins"]
    named = plugins_file.read_text().strip().rstrip(".").strip("[]").split(",")
    assert set(PLUGINS) <= set(named)
    assert "rabbitmq_prometheus" in named, "the image's own plugin stays on"


# -- the start script, run like Binder runs it ----------------------------------------------


def _ordinary_user() -> tuple[str, int, int]:
    """(name, uid, gid) to run as: `nobody` when root, else me."""
    entry = pwd.getpwnam(ORDINARY_USER) if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _as_user(user: str, argv: list[str]) -> list[str]:
    """argv run as `user`: directly when that is me, else through runuser (or su)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return ["su", "-s", "/bin/bash", user, "-c", shlex.join(argv)]


RUNTIME_PACKAGES = ("pika", "requests", "urllib3", "idna", "charset_normalizer", "certifi")


def _python_for(user: str, home: Path) -> tuple[Path, dict[str, str]]:
    """A `python` the user can run that sees our requirements: (directory for PATH, extra env).

    On Binder `python` is the image's environment. Here the test's own interpreter is the
    match, unless the user may not run it (a venv made from root's pyenv, or one inside a
    mode-700 checkout): then the system interpreter of the same version reads copies of the
    packages binder/start needs, staged in the user's home.
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
    site = home / "site-packages"
    site.mkdir()
    for name in RUNTIME_PACKAGES:
        module = importlib.import_module(name)
        shutil.copytree(
            Path(module.__file__).parent, site / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for path in [shim, site, *site.rglob("*")]:
        os.lchown(path, *pwd.getpwnam(user)[2:4])
    return shim, {"PYTHONPATH": str(site)}


CONNECT = """
import os, sys, pika
from helpers import find_broker
broker = find_broker(start=False, progress=None, private_only=True)
with pika.BlockingConnection(broker.connection_parameters(socket_timeout=5)) as conn:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello from binder")
    method, _props, body = ch.basic_get(q, auto_ack=True)
overview = broker.management.overview()
print("uid", os.getuid(), "body", body.decode(), "node", overview["node"])
"""


def _checkout_under_private_dir(parent: Path) -> Path:
    """A copy of what binder/ needs, in a directory only its owner (root, say) may enter."""
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)  # whatever the umask said
    checkout = parent / "checkout"
    checkout.mkdir()
    for part in ("binder", "helpers"):
        shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def _stage_for(user_home: Path, checkout: Path, uid: int, gid: int) -> Path:
    """What the ordinary user runs, copied where that user may read it (as Binder's image has)."""
    staged = user_home / "repo"
    shutil.copytree(checkout, staged)
    for path in [staged, *staged.rglob("*")]:
        os.chown(path, uid, gid)
    return staged


def test_start_script_runs_a_broker_as_an_ordinary_user(tmp_path: Path) -> None:
    user, uid, gid = _ordinary_user()
    checkout = _checkout_under_private_dir(tmp_path / "private")
    home = Path(tempfile.mkdtemp(prefix="classdev-binder-"))  # /tmp: the user can reach it
    os.chown(home, uid, gid)
    repo = _stage_for(home, checkout, uid, gid)
    node_dir = home / "rabbitmq"
    amqp, management, dist = free_ports(3)
    node_name = f"classdev-binder-{os.getpid()}@localhost"
    python_dir, python_env = _python_for(user, home)
    env = {
        **python_env,
        "PYTHONPATH": ":".join(p for p in (str(repo), python_env.get("PYTHONPATH")) if p),
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
    start = [str(repo / "binder" / "start"), "python", "-c", CONNECT]
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
            cwd=repo,
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
