"""Which RabbitMQ installation a private node runs from, and how its commands are launched.

Two kinds:

- `SystemRuntime`: the RabbitMQ the machine has installed (Debian's, Homebrew's). Its
  scripts run directly, as whoever starts them. Debian 12 and Ubuntu 24.04 ship 3.10-3.12.
- `RootfsRuntime`: the reference RabbitMQ (4.3 today) installed in a Debian root filesystem
  kept in a per-user cache (see `rootfs.py`). Its scripts run inside that root filesystem
  with `chroot`, in a private mount namespace into which the node's own directory is bound at
  the same path, so every path in the node's environment means the same thing inside and
  out. Entering a chroot needs root: as root it runs directly, with passwordless sudo it runs
  through `sudo -n` and drops back to the calling user (`chroot --userspec`), so the node's
  files and processes belong to that user either way.

Both give back an argv for `rabbitmq-server` or `rabbitmqctl`; the node does the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The release the chapters' committed outputs were made on. `make test` compares outputs on it.
REFERENCE_SERIES = "4.3"

# Where Debian (and Ubuntu) install the unwrapped scripts. The wrapper in /usr/sbin refuses
# any user but root or `rabbitmq`, so we call these directly.
SEARCH_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/sbin")
ROOTFS_BIN = "/usr/lib/rabbitmq/bin"
_VERSION_IN_PATH = re.compile(r"rabbitmq_server-(\d+\.\d+\.\d+)")

# Runs inside a fresh mount namespace: bind the node's directory to the same path inside the
# root filesystem, give it /proc and /dev, then enter it as the given user.
_ENTER = r"""
set -e
root=$1; base=$2; user=$3; shift 3
mkdir -p "$root$base"
mount --bind "$base" "$root$base"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot --userspec="$user" "$root" "$@"
"""


@dataclass(frozen=True)
class SystemRuntime:
    """The installed RabbitMQ, run as is."""

    server: str  # path of the unwrapped rabbitmq-server script

    kind = "system"

    @property
    def version(self) -> str:
        return _version_from(Path(self.server).resolve().as_posix()) or _scan_lib(
            Path(self.server).resolve().parent.parent.parent
        )

    def describe(self) -> str:
        return f"RabbitMQ {self.version} installed on this machine ({self.server})"

    def command(self, script: str, args: list[str], env: dict[str, str]) -> list[str]:
        path = str(Path(self.server).with_name(script))
        if not os.access(path, os.X_OK):
            path = find_executable(script) or script
        return [path, *args]


@dataclass(frozen=True)
class RootfsRuntime:
    """The reference RabbitMQ inside a root filesystem, entered with chroot."""

    root: Path
    launcher: tuple[str, ...]  # () as root, ("sudo", "-n") with passwordless sudo

    kind = "reference"

    @property
    def version(self) -> str:
        return _scan_lib(self.root / "usr/lib/rabbitmq/lib")

    def describe(self) -> str:
        return f"RabbitMQ {self.version} from the tutorial's root filesystem ({self.root})"

    def command(self, script: str, args: list[str], env: dict[str, str]) -> list[str]:
        """argv that runs `script` inside the root filesystem with the node's `env`.

        `env` must hold the node's variables, including HOME: its directory is bound into the
        root filesystem. sudo drops the caller's environment, so it is passed with `env`.
        """
        base = env["HOME"]
        user = f"{os.getuid()}:{os.getgid()}"
        passed = [f"{k}={v}" for k, v in env.items() if _is_node_variable(k)]
        return [
            *self.launcher,
            "env",
            *passed,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            _ENTER,
            "tutorial-chroot",
            str(self.root),
            base,
            user,
            f"{ROOTFS_BIN}/{script}",
            *args,
        ]


Runtime = SystemRuntime | RootfsRuntime


def _is_node_variable(name: str) -> bool:
    return name.startswith(("RABBITMQ_", "ERL_")) or name in ("HOME", "LANG", "LC_ALL")


def _version_from(path: str) -> str | None:
    match = _VERSION_IN_PATH.search(path)
    return match.group(1) if match else None


def _scan_lib(lib: Path) -> str:
    """Version from the `rabbitmq_server-X.Y.Z` directory a RabbitMQ install keeps its code in."""
    try:
        found = sorted(
            v for v in (_version_from(p.name) for p in lib.glob("rabbitmq_server-*")) if v
        )
    except OSError:
        found = []
    return found[-1] if found else "unknown"


def find_executable(name: str) -> str | None:
    """Path of an installed RabbitMQ script (`rabbitmq-server`, `rabbitmqctl`), or None."""
    for directory in SEARCH_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def system_runtime() -> SystemRuntime | None:
    """The machine's own RabbitMQ, or None when none is installed."""
    server = find_executable("rabbitmq-server")
    return SystemRuntime(server) if server else None


def privilege_launcher() -> tuple[str, ...] | None:
    """How to run a command as root without asking: () as root, sudo -n, or None (cannot)."""
    if os.geteuid() == 0:
        return ()
    if shutil.which("sudo"):
        probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return ("sudo", "-n")
    return None


def is_reference(version: str) -> bool:
    return version == REFERENCE_SERIES or version.startswith(REFERENCE_SERIES + ".")
