"""Programs nobody here wrote, run for `record_flow_cases.py`: a Celery worker and client, a
kombu producer and consumer, and RabbitMQ's official Python tutorials.

They run in subprocesses from a temporary directory, talking to the scenario's vhost, so
the recording is what those programs really send. This module has only the programs' text
and the process handling; the scenarios (what runs when, what the broker must have seen)
are in `record_flow_cases.py`. Neither Celery nor kombu is imported here: they are needed
only to record (`pip install celery`, which brings kombu), never to run the tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# -- Celery -----------------------------------------------------------------------------------

CELERY_TASKS = '''\
"""Tasks for the recording: one that adds, one that retries once."""

import os

from celery import Celery

app = Celery("rec_tasks", broker=os.environ["REC_AMQP_URL"], backend="rpc://")


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self, n):
    if self.request.retries == 0:
        raise self.retry(countdown=1)
    return n
'''

CELERY_CLIENT = '''\
"""16 single tasks, one that retries, a group of 3: 20 tasks, every result awaited."""

from celery import group

from rec_tasks import add, flaky

singles = [add.delay(n, n) for n in range(16)]
retried = flaky.delay(7)
together = group(add.s(n, 100) for n in range(3)).apply_async()
assert [r.get(timeout=30) for r in singles] == [2 * n for n in range(16)]
assert retried.get(timeout=30) == 7
assert together.get(timeout=30) == [100, 101, 102]
print("20 tasks done")
'''

CELERY_WORKER_NAME = "rec-worker@recorder"  # fixed, so the pidbox queue's name is too

# -- kombu ------------------------------------------------------------------------------------

KOMBU_COMMON = '''\
"""A topic exchange and two queues, declared the kombu way."""

import os

from kombu import Exchange, Queue

URL = os.environ["REC_AMQP_URL"]
logs = Exchange("kombu.logs", type="topic", durable=True)
queues = [
    Queue("kombu.errors", logs, routing_key="*.error", durable=True),
    Queue("kombu.all", logs, routing_key="#", durable=True),
]
MESSAGES = [
    ("app.error", "disk full"),
    ("app.info", "started"),
    ("db.error", "deadlock"),
    ("app.info", "request served"),
    ("app.debug", "cache miss"),
    ("web.error", "bad gateway"),
]
'''

KOMBU_PRODUCER = """\
from kombu import Connection, Producer

from kombu_common import MESSAGES, URL, logs, queues

with Connection(URL) as connection:
    producer = Producer(connection, exchange=logs, serializer="json")
    for key, text in MESSAGES:
        producer.publish({"text": text}, routing_key=key, declare=queues, retry=True)
print(f"published {len(MESSAGES)}")
"""

KOMBU_CONSUMER = """\
from kombu import Connection, Consumer

from kombu_common import URL, queues

got = []


def on_message(body, message):
    got.append((message.delivery_info["routing_key"], body["text"]))
    message.ack()


with Connection(URL) as connection:
    with Consumer(connection, queues=queues, callbacks=[on_message], prefetch_count=10):
        while len(got) < 9:  # 3 errors + all 6
            connection.drain_events(timeout=10)
print(f"consumed {len(got)}")
"""

# -- the official tutorials -------------------------------------------------------------------

TUTORIALS = (
    "send.py", "receive.py", "new_task.py", "worker.py", "emit_log.py", "receive_logs.py",
    "emit_log_direct.py", "receive_logs_direct.py", "emit_log_topic.py",
    "receive_logs_topic.py", "rpc_server.py", "rpc_client.py",
)  # fmt: skip
TUTORIAL_HOST = re.compile(r"host=(['\"])localhost\1")


def tutorials_digest(source: Path) -> str:
    """A sha256 of the tutorials' files as published, to tell which version was recorded."""
    digest = hashlib.sha256()
    for name in TUTORIALS:
        digest.update(name.encode() + b"\0" + (source / name).read_bytes() + b"\0")
    return digest.hexdigest()


def copy_tutorials(
    source: Path, target: Path, host: str, port: int, vhost: str, username: str, password: str
) -> None:
    """The tutorials as published, pointed at our node, vhost and user instead of
    localhost:5672 as guest."""
    where = (
        f"host={host!r}, port={port}, virtual_host={vhost!r}, "
        f"credentials=pika.PlainCredentials({username!r}, {password!r})"
    )
    for name in TUTORIALS:
        text, found = TUTORIAL_HOST.subn(where, (source / name).read_text())
        if found != 1:
            raise SystemExit(f"{source / name}: expected one host='localhost', found {found}")
        (target / name).write_text(text)


# -- running them -----------------------------------------------------------------------------


class Programs:
    """Programs in subprocesses, in a private temporary directory: the background ones are
    stopped (SIGINT, as Ctrl+C would, then SIGKILL) when the `with` block ends."""

    def __init__(self, amqp_url: str):
        self.dir = Path(tempfile.mkdtemp(prefix="rec-programs-"))
        self.env = {
            **os.environ,
            "REC_AMQP_URL": amqp_url,
            "PYTHONPATH": str(self.dir),
            "PYTHONUNBUFFERED": "1",
        }
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Programs:
        return self

    def __exit__(self, *_exc: object) -> None:
        for process, _log in self.background:
            self.stop(process)
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name: str, text: str) -> None:
        (self.dir / name).write_text(text)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """`python ARGS` in the background, its output in a log file of its own."""
        log = self.dir / f"bg-{len(self.background)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.dir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C of the recorder does not reach it
            )
        self.background.append((process, log))
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        for p, log in self.background:
            if p is process:
                return log.read_text(errors="replace")
        raise KeyError(process)

    def wait_for_output(
        self, process: subprocess.Popen[bytes], text: str, timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(process):
            if process.poll() is not None:
                ended = process.returncode
                raise RuntimeError(f"the program ended ({ended}):\n{self.log(process)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} after {timeout} s:\n{self.log(process)}")
            time.sleep(0.1)

    def run(self, *args: str, timeout: float = 60) -> str:
        """`python ARGS` to its end; its output, or an error with its output."""
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            output = done.stdout + done.stderr
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{output}")
        return done.stdout

    def stop(
        self,
        process: subprocess.Popen[bytes],
        sig: int = signal.SIGINT,
        group: bool = True,
        timeout: float = 30,
    ) -> int:
        """Signal a background program (its process group, as Ctrl+C in a terminal does, or
        with `group=False` the program alone) and wait for it; SIGKILL when it does not end."""
        if process.poll() is None:
            try:
                if group:
                    os.killpg(process.pid, sig)
                else:
                    process.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode
