"""The programs in examples/ do what examples/README.md says, run for real against the broker.

Each test runs the programs as a learner would, `python examples/NAME.py ...` in a
subprocess (with AMQP_URL pointing at the test broker), and reads what they print. Every
test uses names of its own (`examples.test-<random>.…`) and deletes them afterwards.
"""

from __future__ import annotations

import ast
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from helpers import Broker

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROGRAMS = [
    "send.py",
    "worker.py",
    "topic_logger.py",
    "dead_letter_consumer.py",
    "rpc_server.py",
    "rpc_client.py",
    "stream_reader.py",
    "reliable_publisher.py",
    "idempotent_consumer.py",
]
TIMEOUT_S = 20  # no program in these tests should run anywhere near this long


@pytest.fixture
def env(broker: Broker) -> dict[str, str]:
    return {**os.environ, "AMQP_URL": broker.amqp_url}


@pytest.fixture
def prefix(params: pika.ConnectionParameters, broker: Broker) -> Iterator[str]:
    """A name prefix of this test's own; whatever carries it is deleted afterwards."""
    name = f"examples.test-{uuid.uuid4().hex[:8]}"
    yield name
    api = broker.management
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        for q in api.queues(broker.vhost):
            if q["name"].startswith(name):
                channel.queue_delete(q["name"])
        for x in api.exchanges(broker.vhost):
            if x["name"].startswith(name):
                channel.exchange_delete(x["name"])


def run(env: dict[str, str], program: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / program), *args],
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


class Running:
    """A program running in the background, its output read line by line as it comes."""

    def __init__(self, env: dict[str, str], program: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / program), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A Ctrl-C must reach it even where the test runner's children ignore SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, start: str, timeout: float = 10.0) -> str:
        """The first line from now on that starts with `start`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if line.startswith(start):
                return line
        self.stop()
        raise AssertionError(f"no line starting {start!r}: {self.lines}, {self.stderr}")

    def finish(self, timeout: float = TIMEOUT_S) -> tuple[int, list[str]]:
        """Wait for the program to end: (exit code, every line it printed)."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.stop()
        while (line := self._new.get(timeout=5)) is not None:
            self.lines.append(line)
        assert "Traceback" not in self.stderr, self.stderr
        return code, self.lines

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr = self.process.stderr.read()


def test_every_program_has_help_and_a_docstring_naming_its_chapter(env):
    for program in PROGRAMS:
        source = (EXAMPLES / program).read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert "Chapter" in doc or "Chapters" in doc, program
        assert "pika.BlockingConnection(" in source, program  # the pika calls are in sight
        assert '"connection_name": "examples.' in source, program
        assert "blocked_connection_timeout" in source, program
        done = run({**env, "AMQP_URL": "amqp://nobody:x@127.0.0.1:1/%2F"}, program, "--help")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage:"), program
    nowhere = run({**env, "AMQP_URL": "amqp://nobody:x@127.0.0.1:1/%2F"}, "worker.py")
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith("error: cannot reach the broker"), nowhere.stderr
    readme = (EXAMPLES / "README.md").read_text()
    assert all(program in readme for program in PROGRAMS)


def test_send_then_a_worker_receives_exactly_n(env, prefix, params):
    tasks = f"{prefix}.tasks"
    lost = run(env, "send.py", "--queue", tasks, "nobody listens")
    assert lost.returncode == 1
    assert lost.stdout.startswith("returned:  nobody listens (312 NO_ROUTE"), lost.stdout

    sent = run(env, "send.py", "--queue", tasks, "--declare", "--count", "5")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [f"confirmed: message {n}" for n in range(1, 6)]

    worker = run(env, "worker.py", "--queue", tasks, "--count", "5", "--work", "0",
                 "--idle", "5")
    assert worker.returncode == 0, worker.stderr
    acked = [line for line in worker.stdout.splitlines() if line.startswith("acked:")]
    assert acked == [f"acked:    message {n}" for n in range(1, 6)]
    with pika.BlockingConnection(params) as connection:
        left = connection.channel().queue_declare(tasks, passive=True).method.message_count
    assert left == 0


def test_two_workers_share_the_queue_and_ctrl_c_puts_the_busy_message_back(env, prefix, params):
    tasks = f"{prefix}.tasks"
    slow = Running(env, "worker.py", "--queue", tasks, "--work", "30")
    slow.wait_for("waiting for messages")
    run(env, "send.py", "--queue", tasks, "task A")
    assert slow.wait_for("received:") == "received: task A"
    slow.process.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the work
    code, lines = slow.finish()
    assert code == 130
    assert "stopped (Ctrl-C)" in slow.stderr
    assert not any(line.startswith("acked:") for line in lines)
    # Not acked, so back in the queue: the next worker gets it, marked as redelivered.
    worker = run(env, "worker.py", "--queue", tasks, "--count", "1", "--work", "0",
                 "--idle", "5")
    assert "received: task A (redelivered)" in worker.stdout.splitlines()


@pytest.mark.parametrize(
    "program, args",
    [
        ("worker.py", ["--queue", "{p}.tasks"]),
        ("topic_logger.py", ["--exchange", "{p}.logs", "kern.*"]),
        ("dead_letter_consumer.py", ["--queue", "{p}.orders"]),
        ("rpc_server.py", ["--queue", "{p}.rpc"]),
        ("stream_reader.py", ["--stream", "{p}.events", "next"]),
        ("idempotent_consumer.py", ["--queue", "{p}.payments", "--db", "{tmp}/db.sqlite3"]),
    ],
)
def test_ctrl_c_stops_a_waiting_consumer_cleanly(env, prefix, tmp_path, program, args):
    args = [a.format(p=prefix, tmp=tmp_path) for a in args]
    running = Running(env, program, *args)
    running.wait_for(("reading", "waiting"))
    time.sleep(0.3)  # inside pika's wait for a message
    running.process.send_signal(signal.SIGINT)
    code, _ = running.finish(timeout=10)
    assert code == 130
    assert running.stderr.strip() == "stopped (Ctrl-C)"


def test_the_topic_logger_gets_only_matching_keys(env, prefix):
    logs = f"{prefix}.logs"
    logger = Running(env, "topic_logger.py", "--exchange", logs, "--count", "3",
                     "--idle", "10", "kern.*", "*.critical")
    logger.wait_for("waiting for logs")
    codes = {}
    for key in ("kern.info", "app.info", "app.critical", "kern.disk.full", "kern.critical"):
        codes[key] = run(env, "send.py", "--exchange", logs, "--routing-key", key,
                         f"about {key}").returncode
    code, lines = logger.finish()
    assert code == 0
    assert lines[1:] == [
        "kern.info: about kern.info",
        "app.critical: about app.critical",
        "kern.critical: about kern.critical",
        "received 3 message(s)",
    ]
    # The publisher heard (mandatory=True) about the messages no binding matched.
    assert codes == {"kern.info": 0, "app.info": 1, "app.critical": 0,
                     "kern.disk.full": 1, "kern.critical": 0}


def test_rejected_orders_arrive_as_dead_letters_with_x_death(env, prefix):
    orders = f"{prefix}.orders"
    consumer = Running(env, "dead_letter_consumer.py", "--queue", orders, "--count", "4",
                       "--idle", "10")
    consumer.wait_for("waiting for messages")
    assert run(env, "send.py", "--queue", orders, "3", "banana", "12", "-1").returncode == 0
    code, lines = consumer.finish()
    assert code == 0
    assert lines[1:] == [
        "acked:    3",
        f"rejected: banana (not a quantity; dead-lettered to {orders}.dlx)",
        "acked:    12",
        f"rejected: -1 (not a quantity; dead-lettered to {orders}.dlx)",
        "handled 4 message(s)",
    ]
    dead = run(env, "dead_letter_consumer.py", "--queue", orders, "--dead-letters",
               "--count", "2", "--idle", "10")
    x_death = (f"  x-death: queue={orders} reason=rejected count=1 exchange='' "
               f"routing-keys=['{orders}']")
    assert dead.stdout.splitlines()[1:] == [
        "dead letter: banana", x_death, "dead letter: -1", x_death, "handled 2 message(s)",
    ]


def test_the_rpc_client_gets_the_right_answers_and_gives_up_in_time(env, prefix):
    requests = f"{prefix}.rpc"
    no_server = run(env, "rpc_client.py", "--queue", requests, "--timeout", "1", "360")
    assert no_server.returncode == 1
    assert no_server.stdout == f"360: no queue {requests} (start rpc_server.py first)\n"

    server = Running(env, "rpc_server.py", "--queue", requests, "--count", "3", "--idle", "10")
    server.wait_for("waiting for requests")
    client = run(env, "rpc_client.py", "--queue", requests, "360", "97", "1001")
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines() == [
        "360 = 2 * 2 * 2 * 3 * 3 * 5", "97 = 97", "1001 = 7 * 11 * 13",
    ]
    assert server.finish()[0] == 0

    # A slow server: the client stops waiting; the late answer goes nowhere, harmlessly.
    slow = Running(env, "rpc_server.py", "--queue", requests, "--count", "1", "--delay", "1",
                   "--idle", "10")
    slow.wait_for("waiting for requests")
    started = time.monotonic()
    impatient = run(env, "rpc_client.py", "--queue", requests, "--timeout", "0.3", "12")
    assert time.monotonic() - started < 3
    assert impatient.returncode == 1
    assert impatient.stdout == "12: no answer within 0.3 s\n"
    code, lines = slow.finish()
    assert code == 0
    assert lines[-2:] == ["12 -> 2 * 2 * 3", "answered 1 request(s)"]


def offsets(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("offset ")]


def test_the_stream_reader_starts_where_it_is_told(env, prefix):
    events = f"{prefix}.events"
    first = run(env, "stream_reader.py", "--stream", events, "--publish", "3", "--count", "3")
    assert first.returncode == 0, first.stderr
    assert [line.split(":")[0] for line in offsets(first.stdout)] == [
        "offset 0", "offset 1", "offset 2"]
    time.sleep(1.1)  # a timestamp offset has whole seconds
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    assert run(env, "send.py", "--queue", events, "late 1", "late 2").returncode == 0

    again = run(env, "stream_reader.py", "--stream", events, "first", "--count", "5")
    assert len(offsets(again.stdout)) == 5  # reading removed nothing
    from_3 = run(env, "stream_reader.py", "--stream", events, "3", "--count", "2")
    assert offsets(from_3.stdout) == ["offset 3: late 1", "offset 4: late 2"]
    by_time = run(env, "stream_reader.py", "--stream", events, since, "--count", "2")
    assert offsets(by_time.stdout) == ["offset 3: late 1", "offset 4: late 2"]
    last = run(env, "stream_reader.py", "--stream", events, "last", "--idle", "1")
    assert offsets(last.stdout)[-1] == "offset 4: late 2"

    reader = Running(env, "stream_reader.py", "--stream", events, "next", "--count", "1",
                     "--idle", "10")
    reader.wait_for("reading")
    time.sleep(0.5)  # subscribed: "next" means what comes after that
    assert run(env, "send.py", "--queue", events, "live").returncode == 0
    code, lines = reader.finish()
    assert code == 0
    assert offsets("\n".join(lines)) == ["offset 5: live"]


def test_duplicates_published_on_purpose_are_processed_once(env, prefix, tmp_path):
    payments, db = f"{prefix}.payments", str(tmp_path / "payments.sqlite3")
    # Started before any consumer: no queue yet, so its messages come back and it retries.
    publisher = Running(env, "reliable_publisher.py", "--queue", payments, "--count", "5",
                        "--duplicates", "2", "--retry-delay", "0.2", "--retries", "100",
                        "--id-prefix", "pay")
    publisher.wait_for("retry:     pay-1 (returned: no queue took it)")
    # The consumer "crashes" after committing its third payment, before acking it.
    crash = run(env, "idempotent_consumer.py", "--queue", payments, "--db", db,
                "--crash-after", "3")
    assert crash.returncode == 2, crash.stderr
    code, lines = publisher.finish()
    assert code == 0
    assert lines[-1].startswith("7 confirmed in "), lines
    assert sorted(line for line in lines if line.startswith("confirmed:")) == sorted(
        [f"confirmed: pay-{n}" for n in range(1, 6)] + ["confirmed: pay-1", "confirmed: pay-2"])

    rest = run(env, "idempotent_consumer.py", "--queue", payments, "--db", db, "--idle", "1")
    assert rest.returncode == 0, rest.stderr
    output = crash.stdout + rest.stdout
    processed = sorted(line for line in output.splitlines() if line.startswith("processed:"))
    assert processed == [f"processed: pay-{n}" for n in range(1, 6)]
    # pay-1 and pay-2 twice on purpose, and the crashed-on message delivered again.
    assert output.count("duplicate:") == 3, output
    assert "(processed before, redelivered)" in output
    assert rest.stdout.splitlines()[-1].endswith(f"5 payment(s) in {db}")
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT message_id FROM payments ORDER BY message_id")
        assert [row[0] for row in rows] == [f"pay-{n}" for n in range(1, 6)]


def test_without_amqp_url_a_program_finds_the_tutorials_broker(env, prefix):
    """From the repository, with no AMQP_URL: helpers.find_broker(), as the notebooks do."""
    here = {k: v for k, v in env.items() if k != "AMQP_URL"}
    here["TUTORIAL_BROKER"] = "private"  # this test run's node, whatever runs on 5672
    done = run(here, "send.py", "--queue", f"{prefix}.nowhere", "hello")
    assert done.returncode == 1  # it reached the broker, which had no such queue
    assert "312 NO_ROUTE" in done.stdout
