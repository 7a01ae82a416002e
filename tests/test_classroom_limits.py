"""Classroom provisioning at its edges (issue 19, finding 9): absurd sizes and Ctrl-C.

The real command runs in a subprocess against the shared private node, as an instructor would
run it. Everything here uses the prefix `classlim`, which no other test uses, and the fixture
tears it down before and after each test.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from conftest import classroom_admin
from helpers import Broker
from helpers.management import ManagementClient

PREFIX = "classlim"
# helpers.classroom.MAX_STUDENTS, written out: the limit is part of what is tested, and so the
# test also runs (and fails) on code that has no limit.
MAX_STUDENTS = 200
REPO = Path(__file__).resolve().parent.parent
STUDENTS = 150  # about 25 ms each on an idle node: still running when Ctrl-C comes
PROGRESS = re.compile(r"^\s+\d+/\d+ \S+: ")  # "  3/150 classlim-student003: created"


@pytest.fixture
def admin(broker: Broker) -> Iterator[ManagementClient]:
    yield from classroom_admin(broker, PREFIX)


def _command(broker: Broker, csv_path: Path, *args: str) -> list[str]:
    url = f"amqp://{broker.username}:{broker.password}@{broker.host}:{broker.port}/"
    return [
        *(sys.executable, "-m", "helpers", "classroom", *args),
        *("--url", url, "--management-url", broker.management_url),
        *("--prefix", PREFIX, "--csv", str(csv_path)),
    ]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "CLASSROOM_PREFIX")}


def _run(command: list[str], timeout: float) -> tuple[int | None, str, str]:
    """(exit code or None if it ran past `timeout`, stdout, stderr).

    Plain values, so a failing assertion never shows the command line (the admin URL in it
    holds the password).
    """
    try:
        done = subprocess.run(
            command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        return None, str(exc.stdout or ""), str(exc.stderr or "")
    return done.returncode, done.stdout, done.stderr


def _on_broker(admin: ManagementClient) -> tuple[set[str], set[str]]:
    """(users, vhosts) named with our prefix, whoever made them."""
    users = {u["name"] for u in admin.users() if u["name"].startswith(PREFIX + "-")}
    vhosts = {v["name"] for v in admin.vhosts() if v["name"].startswith(PREFIX + "-")}
    return users, vhosts


@pytest.mark.parametrize("count", ["100000", str(MAX_STUDENTS + 1), "0", "-5"])
def test_absurd_sizes_are_refused_at_once(
    tmp_path: Path, admin: ManagementClient, broker: Broker, count: str
) -> None:
    csv_path = tmp_path / "seats.csv"
    code, out, err = _run(_command(broker, csv_path, "provision", "--students", count), 10)

    # "At once": refused before any seat was made (checked on the broker below), not within
    # a time (the interpreter alone took over 2 s to start on a loaded machine).
    assert code is not None, f"--students {count} was still running after 10 s"
    assert code != 0, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(MAX_STUDENTS) in lines[0] and len(lines[0]) < 200, lines[0]
    assert out == ""
    assert _on_broker(admin) == (set(), set()) and not csv_path.exists()


def test_ctrl_c_leaves_a_csv_of_exactly_what_exists(
    tmp_path: Path, admin: ManagementClient, broker: Broker
) -> None:
    csv_path = tmp_path / "seats.csv"
    proc = subprocess.Popen(
        _command(broker, csv_path, "provision", "--students", str(STUDENTS)),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # readline must not wait forever
    watchdog.start()
    try:
        progress: list[str] = []
        while len(progress) < 3:
            line = proc.stdout.readline()
            if not line:
                break  # it ended without saying how far it got
            if PROGRESS.match(line):
                progress.append(line)
        assert len(progress) == 3, "no progress lines appeared while provisioning"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # its message would show the admin URL
            out, err = "", "still running 30 s after Ctrl-C"
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    code = proc.returncode
    assert code != 0, out
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    said = lines[0]
    assert "Interrupted" in said and "provision again" in said and "teardown" in said, said

    # Every student it made is whole (a user and its vhost), and the CSV lists exactly them.
    users, vhosts = _on_broker(admin)
    assert users == vhosts
    assert 3 <= len(users) < STUDENTS, f"{len(users)} made: not stopped part-way"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["username"] for r in rows} == users
    assert f"{len(users)} that exist" in said
    for row in rows:  # and each row's URL logs in to its own vhost
        params = pika.URLParameters(row["AMQP_URL"])
        params.connection_attempts, params.socket_timeout = 1, 3
        pika.BlockingConnection(params).close()

    # Teardown removes all of it (and the CSV, whose passwords are dead then).
    code, out, err = _run(_command(broker, csv_path, "teardown"), 60)
    assert code == 0, err
    assert f"Removed {len(users)} vhosts and {len(users)} users" in out
    assert _on_broker(admin) == (set(), set()) and not csv_path.exists()
