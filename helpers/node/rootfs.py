"""The reference RabbitMQ in a Debian root filesystem, built once per user and machine.

Why: learners run RabbitMQ 4.x, but Debian 12 and Ubuntu 24.04 ship 3.10-3.12, and Debian's
current RabbitMQ (sid: 4.3 with Erlang 29) needs a newer C library than those systems have.
A minimal Debian sid root filesystem (`debootstrap --variant=minbase`, about 40 s) with
`rabbitmq-server` installed in it (about 15 s, 60 MB) runs that RabbitMQ on any of them.

It lives in a per-user cache outside every checkout (`~/.cache/rabbitmq-pika-tutorial/`),
so every checkout and CI on the same machine share it. `python -m helpers rabbitmq remove`
deletes it. Building it needs root or passwordless sudo and the machine's Debian package
mirror; without them the tutorial uses the RabbitMQ the machine has.

Traps handled here, each found by hand: the sid Release file can be past its Valid-Until
date; minbase writes no /etc/hosts (the node then hangs and dies with `nxdomain` for
localhost); the package would start a system service unless policy-rc.d says no.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from helpers.errors import BrokerUnavailable
from helpers.node.runtime import RootfsRuntime, privilege_launcher

SUITE = "sid"
_COMPLETE = ".tutorial-rootfs-complete"
_APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """The per-user cache that holds the root filesystem (outside every checkout)."""
    override = os.environ.get("TUTORIAL_CACHE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "rabbitmq-pika-tutorial").resolve()


def root_dir() -> Path:
    return cache_dir() / f"rootfs-{SUITE}"


def is_provisioned() -> bool:
    root = root_dir()
    return (root / _COMPLETE).is_file() and (root / "usr/lib/rabbitmq/bin/rabbitmq-server").exists()


def runtime() -> RootfsRuntime | None:
    """The reference runtime if it is built and this user can enter it, else None."""
    if not is_provisioned():
        return None
    launcher = privilege_launcher()
    if launcher is None:
        return None
    return RootfsRuntime(root_dir(), launcher)


def why_not_provisionable() -> str | None:
    """None when this machine can build the root filesystem, else the reason in a phrase."""
    if not Path("/etc/debian_version").exists():
        return "this is not a Debian or Ubuntu machine"
    if privilege_launcher() is None:
        return "building it needs root or passwordless sudo"
    if debian_mirror() is None:
        return "no Debian package mirror is configured in /etc/apt"
    return None


def debian_mirror() -> str | None:
    """The Debian mirror this machine's apt already uses (never a hard-coded host).

    TUTORIAL_DEBIAN_MIRROR overrides it. Security and Ubuntu archives are skipped: sid lives
    only on Debian's main archive.
    """
    override = os.environ.get("TUTORIAL_DEBIAN_MIRROR")
    if override:
        return override
    files: list[Path] = []
    for source in _APT_SOURCES:
        if source.is_dir():
            files += sorted(source.glob("*.list")) + sorted(source.glob("*.sources"))
        elif source.is_file():
            files.append(source)
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M) + re.findall(
            r"^URIs:\s*(\S+)", text, re.M
        ):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def provision(progress: Progress = print) -> RootfsRuntime:
    """Build the root filesystem with the reference RabbitMQ, unless it is there already.

    Safe to call from several processes at once: a lock makes the others wait for the first.
    Raises BrokerUnavailable with one paragraph that says what to do when it cannot.
    """
    reason = why_not_provisionable()
    if reason:
        raise BrokerUnavailable(_cannot(reason))
    launcher = privilege_launcher() or ()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "provision.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_provisioned():
            _build(launcher, progress)
    return RootfsRuntime(root_dir(), launcher)


def _build(launcher: tuple[str, ...], say: Progress) -> None:
    root = root_dir()
    partial = root.with_name(root.name + ".partial")
    mirror = debian_mirror()
    t0 = time.monotonic()
    say(
        f"Provisioning RabbitMQ from Debian {SUITE} in {root} (once per machine, about a "
        "minute; `python -m helpers rabbitmq remove` deletes it)..."
    )

    def run(step: str, argv: list[str]) -> None:
        say(f"  {step}...")
        result = subprocess.run([*launcher, *argv], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise BrokerUnavailable(_cannot(f"`{' '.join(argv[:3])} ...` failed:\n{tail}"))

    if shutil.which("debootstrap") is None:
        run("installing debootstrap", ["sh", "-c", _APT_INSTALL_HOST])
    run("removing an unfinished earlier attempt", ["rm", "-rf", str(partial)])
    run(
        f"debootstrap --variant=minbase {SUITE} (about 40 s)",
        ["debootstrap", "--variant=minbase", SUITE, str(partial), mirror or ""],
    )
    run("preparing the root filesystem", ["sh", "-c", _PREPARE, "prepare", str(partial)])
    run(
        "installing rabbitmq-server inside it (about 20 s)",
        ["chroot", str(partial), "sh", "-c", _APT_INSTALL_RABBITMQ],
    )
    run(
        "finishing",
        ["sh", "-c", f'touch "$1/{_COMPLETE}" && mv "$1" "$2"', "mv", str(partial), str(root)],
    )
    say(f"  done in {time.monotonic() - t0:.0f} s.")


_APT_INSTALL_HOST = (
    "DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap"
)

# /etc/hosts: minbase writes none. policy-rc.d: the package must not start a service.
# Check-Valid-Until: the mirror's sid Release file may be past its date.
_PREPARE = r"""
set -e
r=$1
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$r/etc/hosts"
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
printf 'Acquire::Check-Valid-Until "false";\n' > "$r/etc/apt/apt.conf.d/99tutorial"
"""

_APT_INSTALL_RABBITMQ = (
    "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
    "apt-get install -y -qq --no-install-recommends rabbitmq-server && "
    "apt-get clean && rm -rf /var/lib/apt/lists/*"
)


def remove(progress: Progress = print) -> bool:
    """Delete the cache with the root filesystem; True if there was one."""
    cache = cache_dir()
    if not cache.exists():
        return False
    launcher = privilege_launcher() or ()
    progress(f"Removing {cache}...")
    subprocess.run([*launcher, "rm", "-rf", "--one-file-system", str(cache)], check=False)
    return not cache.exists()


def _cannot(reason: str) -> str:
    return (
        f"Could not provision the reference RabbitMQ ({reason}). The tutorial goes on with "
        "the RabbitMQ this machine has; its chapters target RabbitMQ 4.x, so some outputs will "
        "differ. For 4.x: run `make lab` as root or with passwordless sudo on a Debian or "
        "Ubuntu machine with network access to its package mirror, or run "
        "`docker run -d -p 127.0.0.1:5672:5672 -p 127.0.0.1:15672:15672 "
        "rabbitmq:4-management` and use that broker."
    )
