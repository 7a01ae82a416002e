"""Self-check for chapter 06 (request/reply): a client `call(n, timeout)` that gets its answer
and gives up in time.

The check starts an RPC server of its own (a thread with its own connection, consuming
`ch06.exercise.requests` with prefetch 1, answering `str(fib(n))` to `reply_to` with the
request's `correlation_id`), calls the learner's function twice in a thread, and stops the
server before it returns:

1. `call(10, 2.0)` while the server answers. Before the real answer the server sends a reply
   with another correlation id (the late answer to "an earlier call"): a client that does
   not compare correlation ids returns that one.
2. `call(12, 0.5)` while the server takes the request and stays silent: the client must give
   up after about half a second (return None, or raise TimeoutError). A client still waiting
   after a few seconds waits forever; the server then answers it late, which lets most such
   clients return, so the learner's kernel keeps no stuck thread.

What the server received (the queue, reply_to, correlation_id) picks the hint when the answer
is wrong. The check never blocks for more than about ten seconds, and leaves nothing behind:
the server deletes its queue and closes its connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from helpers.broker import Broker
from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

QUEUE = "ch06.exercise.requests"
N, TIMEOUT = 10, 2.0  # the answered call
SILENT_N, SILENT_TIMEOUT = 12, 0.5  # the call nobody answers
EARLIER = "ch06.check.an-earlier-call"  # correlation id of the decoy reply
EARLIER_ANSWER = 144  # fib(12): what a late answer to an earlier call could be
GRACE_S = 3.0  # how much longer than its timeout a call may take before "waits forever"


def fib(n: int) -> int:
    a, b = 0, 1
    for _step in range(n):
        a, b = b, a + b
    return a


@dataclass
class Request:
    body: bytes
    reply_to: str | None
    correlation_id: str | None


@dataclass
class Outcome:
    """What one call of the learner's function did, seen from the check's thread."""

    running: bool = True
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


@dataclass
class _Server:
    """The check's RPC server: a thread with its own connection (see the module docstring)."""

    broker: Broker
    queue: str
    answering: bool = True
    requests: list[Request] = field(default_factory=list)
    unanswered: list[Request] = field(default_factory=list)
    error: str = ""

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._late = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ch06-check-server")

    def __enter__(self) -> _Server:
        self._thread.start()
        if not self._ready.wait(timeout=10) and not self.error:
            self.error = _("the check's server did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def answer_late(self) -> None:
        """Answer every request kept unanswered (from the server's thread)."""
        self._late.set()

    def _run(self) -> None:
        params = self.broker.connection_parameters(
            client_properties={"connection_name": "ch06.check"}
        )
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPError as exc:
            self.error = _("the check's server could not connect: {exc!r}").format(exc=exc)
            self._ready.set()
            return
        try:
            channel = connection.channel()
            channel.queue_delete(queue=self.queue)  # nothing an earlier attempt left
            channel.queue_declare(queue=self.queue, durable=True)
            channel.basic_qos(prefetch_count=1)
            channel.basic_consume(queue=self.queue, on_message_callback=self._on_request)
            self._ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.05)
                if self._late.is_set():
                    self._late.clear()
                    for request in self.unanswered:
                        self._reply(channel, request, str(fib(_number(request.body))))
                    self.unanswered.clear()
            channel.queue_delete(queue=self.queue)
        except pika.exceptions.AMQPError as exc:
            self.error = _("the check's server stopped: {exc!r}").format(exc=exc)
            self._ready.set()
        finally:
            if connection.is_open:
                connection.close()

    def _on_request(self, ch: Any, method: Any, properties: Any, body: bytes) -> None:
        request = Request(body, properties.reply_to, properties.correlation_id)
        self.requests.append(request)
        if request.reply_to:
            if self.answering:
                decoy = Request(body, request.reply_to, EARLIER)
                self._reply(ch, decoy, str(EARLIER_ANSWER))
                self._reply(ch, request, str(fib(_number(body))))
            else:
                self.unanswered.append(request)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    @staticmethod
    def _reply(ch: Any, request: Request, answer: str) -> None:
        ch.basic_publish(
            exchange="",
            routing_key=request.reply_to or "",
            properties=pika.BasicProperties(correlation_id=request.correlation_id),
            body=answer.encode(),
        )


def _number(body: bytes) -> int:
    try:
        return int(body)
    except ValueError:
        return 0


def _call(function: Callable[..., Any], args: tuple[Any, ...], limit: float) -> Outcome:
    """Run function(*args) in a thread; wait at most `limit` seconds for it."""
    outcome = Outcome()

    def run() -> None:
        started = time.monotonic()
        try:
            outcome.value = function(*args)
        except BaseException as exc:  # noqa: BLE001 - the learner's code may raise anything
            outcome.error = exc
        outcome.elapsed = time.monotonic() - started
        outcome.running = False

    thread = threading.Thread(target=run, daemon=True, name="ch06-check-call")
    thread.start()
    thread.join(timeout=limit)
    return outcome


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def check_exercise(broker: Broker, call: object, queue: str = QUEUE) -> CheckResult:
    """Judge the learner's `call(n, timeout)` against a server the check runs itself."""
    if call is None:
        return hint(
            _(
                "Nothing to check yet: define call(n, timeout) in the empty cell above (it "
                "publishes str(n) to 'ch06.exercise.requests' and waits for the answer), run that "
                "cell, then this check again."
            )
        )
    if not callable(call):
        return hint(_(
            "`call` is {call!r}, not a function: define it with def call(n, timeout):"
        ).format(call=call))
    with _Server(broker, queue) as server:
        if server.error:
            return hint(_(
                "The check could not run: {server_error}."
            ).format(server_error=server.error))
        first = _call(call, (N, TIMEOUT), TIMEOUT + GRACE_S)
        verdict = _judge_answer(server, first, queue)
        if verdict is not None:
            if first.running:
                server.answer_late()
                time.sleep(0.5)
            return verdict
        server.answering = False
        second = _call(call, (SILENT_N, SILENT_TIMEOUT), SILENT_TIMEOUT + GRACE_S)
        verdict = _judge_timeout(second)
        if second.running:
            server.answer_late()  # most clients that wait forever return once answered
            time.sleep(0.5)
        if verdict is not None:
            return verdict
    return passed(
        _(
            "call({N}, {TIMEOUT}) returned {value} and ignored a reply with another correlation "
            "id; call({SILENT_N}, {SILENT_TIMEOUT}) gave up in time when the server stayed silent."
        ).format(
            N=N,
            TIMEOUT=TIMEOUT,
            value=fib(N),
            SILENT_N=SILENT_N,
            SILENT_TIMEOUT=SILENT_TIMEOUT,
        )
    )


def _judge_answer(server: _Server, outcome: Outcome, queue: str) -> CheckResult | None:
    call_text = f"call({N}, timeout={TIMEOUT})"
    if not server.requests:
        if outcome.error is not None:
            return _error_hint(call_text, outcome.error)
        return hint(
            _("The check's server got no request from {call_text}").format(call_text=call_text)
            + (_(" (it was still running after 5 s)") if outcome.running else "")
            + _(
                ": publish str(n) with exchange=\"\" and routing_key={queue!r}."
            ).format(queue=queue)
        )
    request = server.requests[0]
    if not request.reply_to:
        return hint(
            _(
                "The server got your request {request_body!r} without reply_to, so it cannot know "
                "where to answer: set reply_to in pika.BasicProperties (for direct reply-to, "
                "\"amq.rabbitmq.reply-to\")."
            ).format(request_body=request.body)
        )
    if not request.correlation_id:
        return hint(
            _(
                "The server got your request without a correlation_id: set a new one for every "
                "call (str(uuid.uuid4())) in pika.BasicProperties, so that you can tell your "
                "answer from others."
            )
        )
    if outcome.running:
        return hint(
            _(
                "The server answered at once, but {call_text} had not returned after {value:.0f} "
                "s: consume the address you put in reply_to, and wait with "
                "connection.process_data_events(time_limit=...) until the answer comes or the "
                "deadline passes."
            ).format(call_text=call_text, value=TIMEOUT + GRACE_S)
        )
    if outcome.error is not None:
        return _error_hint(call_text, outcome.error)
    value = outcome.value
    if value == EARLIER_ANSWER or value in (str(EARLIER_ANSWER), str(EARLIER_ANSWER).encode()):
        return hint(
            _(
                "{call_text} returned {value!r}, the answer to another call: the server sent that "
                "reply first, with correlation_id {EARLIER!r}. Compare properties.correlation_id "
                "with the id you sent, and drop every other reply."
            ).format(call_text=call_text, value=value, EARLIER=EARLIER)
        )
    if isinstance(value, (bytes, str)) and value in (str(fib(N)), str(fib(N)).encode()):
        return hint(_(
            "{call_text} returned {value!r}: return the answer as an int, int(body)."
        ).format(call_text=call_text, value=value))
    if value is None:
        return hint(
            _(
                "{call_text} returned None although the server answered at once: wait for the "
                "reply, with connection.process_data_events(time_limit=...) in a loop, until it "
                "has come or the timeout has passed."
            ).format(call_text=call_text)
        )
    if isinstance(value, bool) or value != fib(N):
        return hint(_(
            "{call_text} returned {value!r}; the server's answer was {value2}."
        ).format(call_text=call_text, value=value, value2=fib(N)))
    return None


def _judge_timeout(outcome: Outcome) -> CheckResult | None:
    call_text = f"call({SILENT_N}, timeout={SILENT_TIMEOUT})"
    if outcome.running:
        return hint(
            _(
                "{call_text} was still waiting {value:.1f} s later: the server got the request "
                "and did not answer (on purpose), and your client waits forever. Loop on "
                "connection.process_data_events(time_limit=...) only until a deadline, then give "
                "up and return None."
            ).format(call_text=call_text, value=SILENT_TIMEOUT + GRACE_S)
        )
    if outcome.error is not None and not _is_timeout(outcome.error):
        return _error_hint(call_text + _(" (no answer coming)"), outcome.error)
    if outcome.error is None and outcome.value is not None:
        return hint(
            _(
                "When no answer comes, call should return None (or raise TimeoutError); "
                "{call_text} returned {outcome_value!r}."
            ).format(call_text=call_text, outcome_value=outcome.value)
        )
    if outcome.elapsed < SILENT_TIMEOUT * 0.8:
        return hint(
            _(
                "{call_text} gave up after {outcome_elapsed:.2f} s, before its timeout: keep "
                "waiting until the deadline (now + timeout) has passed."
            ).format(call_text=call_text, outcome_elapsed=outcome.elapsed)
        )
    return None


def _error_hint(call_text: str, exc: BaseException) -> CheckResult:
    if "fast reply consumer does not exist" in str(exc):
        return hint(
            _(
                "{call_text} failed with {value}: with direct reply-to, call "
                "basic_consume(queue=\"amq.rabbitmq.reply-to\", ..., auto_ack=True) before "
                "publishing the request."
            ).format(call_text=call_text, value=_describe(exc))
        )
    return hint(_(
        "{call_text} raised {value}."
    ).format(call_text=call_text, value=_describe(exc)))
