"""Classroom provisioning against the real broker: isolation, idempotency, clean teardown.

Everything here uses prefixes starting with `classdev` so it never touches a real workshop
(or another engineer's test) on the same broker, and every test tears down what it made.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
import requests

from conftest import classroom_admin
from helpers import Broker
from helpers.broker import find_broker
from helpers.classroom import (
    ClassroomError,
    Seat,
    admin_client,
    find_classroom,
    marker_tag,
    provision,
    read_passwords,
    student_names,
    teardown,
    write_csv,
)
from helpers.errors import ManagementError
from helpers.management import ManagementClient

PREFIX = "classdev"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def admin(broker: Broker) -> Iterator[ManagementClient]:
    yield from classroom_admin(broker, PREFIX)


def _provision(admin: ManagementClient, broker: Broker, names, **kwargs) -> list[Seat]:
    return provision(
        admin,
        names,
        amqp_host=broker.host,
        amqp_port=broker.port,
        management_url=broker.management_url,
        prefix=kwargs.pop("prefix", PREFIX),
        **kwargs,
    )


def _params(seat: Seat, vhost: str | None = None) -> pika.URLParameters:
    params = pika.URLParameters(seat.amqp_url)
    if vhost is not None:
        params.virtual_host = vhost
    params.connection_attempts = 1
    params.socket_timeout = 3
    return params


def _can_log_in(seat: Seat) -> bool:
    try:
        pika.BlockingConnection(_params(seat)).close()
    except pika.exceptions.ProbableAuthenticationError:
        return False
    return True


def _state(admin: ManagementClient) -> dict:
    """Everything provisioning controls, to compare two runs."""
    tag = marker_tag(PREFIX)
    users = {u["name"]: sorted(u["tags"]) for u in admin.users() if tag in u["tags"]}
    vhosts = {
        v["name"]: (sorted(v["tags"]), v["tracing"], v["description"])
        for v in admin.vhosts()
        if v["name"].startswith(PREFIX + "-")
    }
    permissions = {
        (p["vhost"], p["user"], p["configure"], p["write"], p["read"])
        for p in admin.get("permissions")
        if p["user"] in users
    }
    return {"users": users, "vhosts": vhosts, "permissions": permissions}


def test_student_names() -> None:
    assert student_names(3) == ["student01", "student02", "student03"]
    assert student_names(100)[-1] == "student100"
    assert student_names(names=["alice", " bob ", ""]) == ["alice", "bob"]
    for bad in (["al ice"], ["-x"], ["a/b"], ["ok", "ok"], []):
        with pytest.raises(ClassroomError):
            student_names(names=bad)
    with pytest.raises(ClassroomError):
        student_names(0)


def test_students_are_isolated(admin: ManagementClient, broker: Broker) -> None:
    alice, bob = _provision(admin, broker, ["alice", "bob"])
    assert (alice.username, alice.vhost) == (f"{PREFIX}-alice", f"{PREFIX}-alice")
    assert alice.status == bob.status == "created"
    assert alice.password != bob.password and len(alice.password) >= 20

    # Over AMQP: in with her own URL, refused on Bob's vhost and on the default vhost.
    with pika.BlockingConnection(_params(alice)) as conn:
        conn.channel().queue_declare("classdev.mine", exclusive=True)
    for other in (bob.vhost, "/"):
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(_params(alice, vhost=other))

    # Over HTTP: her vhost answers, Bob's does not.
    auth = (alice.username, alice.password)
    base = broker.management_url
    own = requests.get(f"{base}/api/queues/{alice.vhost}", auth=auth, timeout=5)
    assert own.status_code == 200
    theirs = requests.get(f"{base}/api/queues/{bob.vhost}", auth=auth, timeout=5)
    # 3.x answers 401 not_authorised; 4.x answers 404, as if Bob's vhost did not exist.
    assert theirs.status_code in (401, 403, 404), theirs.text
    assert [v["name"] for v in requests.get(f"{base}/api/vhosts", auth=auth, timeout=5).json()] == [
        alice.vhost
    ]
    # And she cannot make herself more: no users, no vhosts.
    sneaky = requests.put(
        f"{base}/api/users/{PREFIX}-sneaky", json={"password": "x", "tags": ""}, auth=auth
    )
    assert sneaky.status_code in (401, 403)
    with pytest.raises(ClassroomError, match="not an administrator"):
        admin_client(base, alice.username, alice.password)


def _as_student(monkeypatch: pytest.MonkeyPatch, broker: Broker, seat) -> Broker:
    """What a student's notebook sees: find_broker() with only the student's AMQP_URL set."""
    monkeypatch.setenv("AMQP_URL", seat.amqp_url)
    if broker.management_url != f"http://{broker.host}:{broker.port + 10000}":
        monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", broker.management_url)
    return find_broker(start=False, progress=None)


def test_student_has_what_the_diagram_needs(
    admin: ManagementClient, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    (carol,) = _provision(admin, broker, ["carol"])
    found = _as_student(monkeypatch, broker, carol)
    assert (found.username, found.vhost, found.source) == (carol.username, carol.vhost, "AMQP_URL")

    api = found.management
    assert api.tracing(carol.vhost) is True  # provisioning switched the firehose on
    with pytest.raises(ManagementError, match="not allowed for this user"):
        api.set_tracing(carol.vhost, False)  # only an administrator may switch it
    assert admin.tracing(carol.vhost) is True

    # The firehose really reports her publishes, with the queues the broker routed to.
    with pika.BlockingConnection(_params(carol)) as conn:
        ch = conn.channel()
        trace = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(trace, "amq.rabbitmq.trace", "publish.#")
        ch.queue_declare("classdev.work", exclusive=True)
        ch.basic_publish("", "classdev.work", b"hello")
        deadline = time.monotonic() + 5
        method = None
        while method is None and time.monotonic() < deadline:
            method, props, body = ch.basic_get(trace, auto_ack=True)
            if method is None:
                time.sleep(0.1)
        assert method is not None, "no trace message arrived"
        assert body == b"hello"
        assert props.headers["routed_queues"] == ["classdev.work"]
        # The topology the diagram draws is readable with her own credentials.
        assert "classdev.work" in {q["name"] for q in api.queues(carol.vhost)}
        assert "amq.rabbitmq.trace" in {e["name"] for e in api.exchanges(carol.vhost)}
        assert any(b["destination"] == trace for b in api.bindings(carol.vhost))


def test_flow_diagram_tracer_works_for_a_student(
    admin: ManagementClient, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The diagram's firehose consumer, run with nothing but a student's AMQP_URL."""
    from helpers.flow.tracer import Tracer

    (dora,) = _provision(admin, broker, ["dora"])
    student = _as_student(monkeypatch, broker, dora)
    events = []
    tracer = Tracer(student, events.extend).start()
    try:
        with pika.BlockingConnection(_params(dora)) as conn:
            ch = conn.channel()
            ch.queue_declare("classdev.flow", exclusive=True)
            ch.basic_publish("", "classdev.flow", b"traced")
            assert tracer.sync(timeout=5)
    finally:
        tracer.stop()
    published = [e for e in events if e.kind == "publish" and e.body == b"traced"]
    assert [e.routed_queues for e in published] == [("classdev.flow",)]
    assert admin.tracing(dora.vhost) is True  # the student's diagram left it on, as provisioned


def test_provision_twice_is_idempotent(admin: ManagementClient, broker: Broker) -> None:
    first = _provision(admin, broker, ["alice", "bob"])
    state = _state(admin)
    assert set(state["users"]) == {f"{PREFIX}-alice", f"{PREFIX}-bob"}
    assert all(tracing for _tags, tracing, _d in state["vhosts"].values())

    known = {s.username: s.password for s in first}
    second = _provision(admin, broker, ["alice", "bob"], known_passwords=known)
    assert [s.status for s in second] == ["unchanged", "unchanged"]
    assert [s.amqp_url for s in second] == [s.amqp_url for s in first]
    assert _state(admin) == state
    assert all(_can_log_in(s) for s in first)  # the URLs handed out still work

    # Without the CSV the passwords are unknown, so they are replaced (and the old ones die).
    third = _provision(admin, broker, ["alice"])
    assert third[0].status == "new password"
    assert _can_log_in(third[0]) and not _can_log_in(first[0])
    assert _state(admin) == state


def test_refuses_names_it_did_not_make(admin: ManagementClient, broker: Broker) -> None:
    foreign = f"{PREFIX}-mallory"
    admin.create_vhost(foreign)
    try:
        with pytest.raises(ClassroomError, match="was not made by classroom provisioning"):
            _provision(admin, broker, ["zed", "mallory"])
        assert admin.user(f"{PREFIX}-zed") is None  # refused before changing anything
        assert teardown(admin, PREFIX).vhosts == []
        assert admin.vhost(foreign) is not None  # not ours, so teardown left it
    finally:
        admin.delete_vhost(foreign)


def test_teardown_leaves_nothing(admin: ManagementClient, broker: Broker) -> None:
    seats = _provision(admin, broker, ["alice", "bob", "carol"])
    # An admin toggling tracing wipes a vhost's tags; teardown must still find it.
    admin.set_tracing(seats[0].vhost, True)
    conn = pika.BlockingConnection(_params(seats[1]))
    conn.channel().queue_declare("classdev.durable", durable=True)
    removed = teardown(admin, PREFIX)
    # Deleting her vhost drops her connection: the broker closes it, nothing lingers.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        for _ in range(50):
            conn.process_data_events(time_limit=0.1)
    assert removed.vhosts == removed.users == [s.username for s in seats]
    assert not any(v["name"].startswith(PREFIX + "-") for v in admin.vhosts())
    assert not any(
        u["name"].startswith(PREFIX + "-") or marker_tag(PREFIX) in u["tags"] for u in admin.users()
    )
    assert find_classroom(admin, PREFIX).users == []
    assert teardown(admin, PREFIX).vhosts == []  # a second teardown has nothing to do


def test_csv_keeps_passwords_private(tmp_path: Path, admin: ManagementClient, broker) -> None:
    seats = _provision(admin, broker, ["alice"])
    path = tmp_path / "classroom-classdev.csv"
    write_csv(path, seats)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_passwords(path, PREFIX) == {seats[0].username: seats[0].password}
    assert read_passwords(path, "other") == {}
    assert read_passwords(tmp_path / "missing.csv", PREFIX) == {}


def test_command_line_round_trip(tmp_path: Path, admin: ManagementClient, broker) -> None:
    url = f"amqp://{broker.username}:{broker.password}@{broker.host}:{broker.port}/"
    csv_path = tmp_path / "seats.csv"
    common = ["--url", url, "--management-url", broker.management_url, "--prefix", PREFIX]
    common += ["--csv", str(csv_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "CLASSROOM_PREFIX")}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "helpers", "classroom", *args, *common],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = run("provision", "--names", "ann,ben")
    assert "ann" in out and f"{PREFIX}-ben" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "student,username,password,vhost,AMQP_URL,management_url"
    assert len(lines) == 3
    run("provision", "--names", "cy")  # adding a student keeps the others in the CSV
    again = csv_path.read_text()
    assert all(line in again for line in lines[1:]) and f"{PREFIX}-cy" in again

    out = run("teardown")
    assert "Removed 3 vhosts and 3 users" in out
    assert not csv_path.exists()
    assert find_classroom(admin, PREFIX).users == []
