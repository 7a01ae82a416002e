"""No error, status line or saved output shows a password, whatever shape the URL has
(issue 19, finding 3).

Every URL below carries the same known password. It goes through the three places a URL
enters the helpers: `find_broker()` (AMQP_URL; a notebook saves its error), `python -m
helpers broker status` and `python -m helpers classroom provision --url`. Not even a piece of
the password may come out ("s3cr3t" is checked, not just the whole of it), and each error is
one line. The broker is this checkout's shared node; a user with that password is made on it
for the well-formed URLs that log in, and removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from helpers import Broker, BrokerUnavailable, TutorialError, find_broker

PASSWORD = "s3cr3t-XYZ"
PIECE = "s3cr3t"  # no part of the password may show, not only the whole of it
REPO = Path(__file__).resolve().parent.parent

MALFORMED = [
    f"user:{PASSWORD}@127.0.0.1:5672/%2F",  # no scheme
    f"amqp:/user:{PASSWORD}@127.0.0.1/",  # one slash
    f"amqp:user:{PASSWORD}@127.0.0.1/",  # no slash
    f"amqp//user:{PASSWORD}@127.0.0.1/",  # no colon
    f"http://user:{PASSWORD}@127.0.0.1:5672/",  # another scheme
    f"amqp://user:{PASSWORD}@127.0.0.1:port/",  # a port that is not a number
    f"amqp://user:{PASSWORD}@127.0.0.1:99999/",  # a port out of range
    f"amqp://user:{PASSWORD}/127.0.0.1",  # "@" forgotten: the password looks like a port
    f"amqp://user:{PASSWORD}/x@127.0.0.1/",  # an unescaped "/" in the password
    f"amqp://user:{PASSWORD}#x@127.0.0.1/",  # an unescaped "#" in the password
    f"amqp://user:{PASSWORD}?x@127.0.0.1/",  # an unescaped "?" in the password
    f"amqp://user:123/{PASSWORD}@127.0.0.1/",  # "/" after digits: a "port" that parses
    f"amqp://user:{PASSWORD}@[::1/",  # a broken IPv6 address
    f"amqp://user:{PASSWORD}@",  # no host
    f"  amqp://user:{PASSWORD}  ",  # no host, blanks around
    f"{PASSWORD}@127.0.0.1",  # the password alone
    f"amqp://user:{PASSWORD}\n@127.0.0.1/",  # a line break pasted into it
]
# The commands get the shapes that take different paths through the parser (each command
# costs a Python start, 0.2 s of CPU); find_broker() gets them all.
FOR_COMMANDS = [MALFORMED[i] for i in (0, 1, 5, 7, 8, 16)]


@pytest.fixture(scope="module")
def user_with_password(broker: Broker) -> Iterator[str]:
    """A user on the shared node whose password is PASSWORD (management tag, vhost '/')."""
    name = f"secrets-test-{os.getpid()}"
    broker.management.put_user(name, PASSWORD, ["management"])
    broker.management.set_permissions("/", name)
    try:
        yield name
    finally:
        broker.management.delete_user(name)


@pytest.fixture(scope="module")
def well_formed(broker: Broker, user_with_password: str) -> list[str]:
    """Well-formed URLs that fail in every way a login can, and two that log in."""
    from conftest import free_ports

    host, port, user = broker.host, broker.port, user_with_password
    management_port = urlsplit(broker.management_url).port
    (dead,) = free_ports(1)
    return [
        f"amqp://{user}:{PASSWORD}@{host}:{port}/%2F",  # logs in
        f"amqp://{user}:{PASSWORD}@{host}:{port}",  # logs in, default vhost
        f"amqp://{user}:{PASSWORD}@{host}:{port}/no-such-vhost",  # access refused
        f"amqp://nobody:{PASSWORD}@{host}:{port}/%2F",  # login refused
        f"amqp://{user}:{quote(PASSWORD + '/#@', safe='')}@{host}:{port}/%2F",  # encoded
        f"amqp://{user}:{PASSWORD}@{host}:{dead}/%2F",  # nothing listens
        f"amqp://{user}:{PASSWORD}@{host}:{management_port}/%2F",  # not AMQP
        f"amqps://{user}:{PASSWORD}@{host}:{port}/%2F",  # TLS to a plain port
        f"amqps://{user}:{PASSWORD}@{host}:{dead}/%2F",  # TLS, nothing listens
    ]


@pytest.fixture(scope="module")
def urls(well_formed: list[str]) -> list[str]:
    return MALFORMED + well_formed


@pytest.fixture(scope="module")
def command_urls(well_formed: list[str]) -> list[str]:
    return FOR_COMMANDS + well_formed


def _clean_env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "AMQP_CA_FILE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return {**env, **more}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _in_parallel(jobs: list[tuple[list[str], dict[str, str], Path]]):
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda job: _run(*job), jobs))


def _assert_one_line_error(result: subprocess.CompletedProcess[str], url: str) -> None:
    assert result.returncode == 1, (url, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, (url, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (url, result.stderr)


def test_find_broker_never_shows_the_password(monkeypatch, urls):
    monkeypatch.delenv("TUTORIAL_BROKER", raising=False)
    monkeypatch.delenv("RABBITMQ_MANAGEMENT_URL", raising=False)
    logged_in = 0
    for url in urls:
        monkeypatch.setenv("AMQP_URL", url)
        try:
            broker = find_broker(start=False, progress=None)
        except TutorialError as exc:
            shown = [
                str(exc),
                repr(exc),
                "".join(traceback.format_exception(exc)),
                *exc._render_traceback_(),  # what a notebook saves
            ]
            for text in shown:
                assert PIECE not in text, (url, text)
            assert "\n" not in str(exc), (url, str(exc))
            if url in MALFORMED:
                assert isinstance(exc, BrokerUnavailable) and "must look like" in str(exc)
        else:
            logged_in += 1
            shown = [repr(broker), str(broker), broker.display_url, broker.management_url]
            for text in [*shown, repr(broker.management)]:
                assert PIECE not in text, (url, text)
    assert logged_in == 2  # the two well-formed URLs with the right password and vhost


def test_broker_status_never_prints_the_password(command_urls, well_formed, broker):
    management_port = urlsplit(broker.management_url).port
    jobs = [(["broker", "status"], _clean_env(AMQP_URL=url), REPO) for url in command_urls]
    # A management URL with credentials in it is shown without them, scheme or not.
    for management in ("http://", ""):
        management += f"admin:{PASSWORD}@127.0.0.1:{management_port}"
        env = _clean_env(AMQP_URL=well_formed[0], RABBITMQ_MANAGEMENT_URL=management)
        jobs.append((["broker", "status"], env, REPO))
    results = _in_parallel(jobs)
    for (_args, env, _cwd), result in zip(jobs, results, strict=True):
        url = env["AMQP_URL"]
        assert PIECE not in result.stdout + result.stderr, (url, result.stdout, result.stderr)
        if result.returncode == 0:
            assert url not in MALFORMED
            assert "source:             AMQP_URL" in result.stdout
            assert f"{broker.host}:{broker.port}" in result.stdout and ":***@" in result.stdout
        else:
            _assert_one_line_error(result, url)
    assert [r.returncode for r in results].count(0) == 4  # 2 URLs, 2 with a management URL


def test_classroom_provision_never_prints_the_password(command_urls, well_formed, tmp_path, broker):
    management_port = urlsplit(broker.management_url).port
    csv = tmp_path / "seats.csv"
    base = ["classroom", "provision", "--students", "1", "--csv", str(csv), "--prefix"]
    # The URL whose "AMQP port" is the management port is left out: provisioning would ask
    # port + 10000 (the Erlang distribution port), which holds the connection for 5 s.
    jobs = [
        ([*base, f"secrets{os.getpid()}", "--url", url], _clean_env(), tmp_path)
        for url in command_urls
        if f":{management_port}/" not in url
    ]
    jobs.append(
        (
            [*base, f"secrets{os.getpid()}", "--url", well_formed[0], "--management-url",
             f"http://admin:{PASSWORD}@127.0.0.1:{management_port}"],
            _clean_env(),
            tmp_path,
        )
    )  # fmt: skip
    for (args, _env, _cwd), result in zip(jobs, _in_parallel(jobs), strict=True):
        url = args[args.index("--url") + 1]
        assert PIECE not in result.stdout + result.stderr, (url, result.stdout, result.stderr)
        # None of these is an administrator's URL: each fails, in one line.
        _assert_one_line_error(result, url)
    assert not csv.exists()
