"""Short, actionable errors.

A learner who mistypes a password should read one sentence that says what to do, not a page
of traceback. `TutorialError` renders itself as one line in IPython, and `explain()` turns
the pika exceptions people actually meet into such a sentence.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

import pika.exceptions as pe
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

INSTALL_HINT = (
    "Install RabbitMQ (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`; macOS: "
    "`brew install rabbitmq`) and run `make lab` again, or start one with Docker: "
    "`docker run -d --name rabbitmq -p 127.0.0.1:5672:5672 -p 127.0.0.1:15672:15672 "
    "rabbitmq:4-management`."
)


class TutorialError(Exception):
    """An error whose message already says what to do; shown without a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback.
        return [f"{type(self).__name__}: {self}"]


class BrokerUnavailable(TutorialError):
    """No broker could be found or started."""


# How explain() learns which resource alarm blocked a connection. This module sits below the
# management client in the helpers' import tree, so it cannot ask the broker itself;
# `helpers.alarms` (imported with the package) lends it a lookup: the exception in, (the
# alarms in effect, or None when the broker could not be asked; whether the broker is this
# checkout's private node, which `python -m helpers alarm clear` can lower again) out.
AlarmLookup = Callable[[BaseException], "tuple[list[str] | None, bool]"]
_alarm_lookup: AlarmLookup | None = None


def set_alarm_lookup(lookup: AlarmLookup | None) -> None:
    """Let explain() ask the broker which alarm blocks a connection (see `helpers.alarms`)."""
    global _alarm_lookup
    _alarm_lookup = lookup


class ManagementError(TutorialError):
    """The management HTTP API refused or failed a request.

    `status` is the HTTP status when the API answered (None when it did not answer), so a
    caller tells "not supported here" (400) from "gone" (404) without reading the text.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def explain(exc: BaseException) -> str:
    """One sentence that says what went wrong with a connection and what to do about it."""
    cause = _root_cause(exc)

    if isinstance(cause, pe.ConnectionBlockedTimeout):
        # First: it is an AMQPConnectionError, whose sentence below would blame the port.
        return blocked_publishing(*_ask_alarms(exc))
    if isinstance(cause, pe.ProbableAuthenticationError):
        return (
            "The broker refused the user name or password: check the credentials (the "
            "private node's are in .rabbitmq/<kind>/credentials.json; `find_broker()` "
            "returns them)."
        )
    if isinstance(cause, pe.ProbableAccessDeniedError):
        return (
            "The broker has no such virtual host, or this user may not use it: check the "
            "vhost name (the default is '/') and the user's permissions."
        )
    if isinstance(cause, ConnectionRefusedError) or _mentions(cause, "refused"):
        return (
            "Nothing is listening on that host and port: start the broker "
            "(`python -m helpers broker start`) or fix the port."
        )
    if isinstance(cause, socket.gaierror) or _mentions(cause, "getaddrinfo"):
        return "That host name does not resolve: check the spelling of the host."
    if _is_deprecated_feature(cause):
        return (
            "RabbitMQ refused a deprecated feature and closed the connection ("
            + _reply_text(cause)
            + "): on RabbitMQ 4 declare queues durable=True (or exclusive=True for temporary "
            "ones), and use per-consumer prefetch instead of global_qos."
        )
    if isinstance(cause, pe.ConnectionClosedByBroker):
        return (
            f"The broker closed the connection ({cause.reply_code} {_reply_text(cause)}): "
            "open a new connection."
        )
    if isinstance(cause, pe.StreamLostError):
        return (
            "The connection was lost (the broker restarted or dropped it after missed "
            "heartbeats, e.g. during a long callback): open a new connection; if it happened "
            "while connecting, check the port is RabbitMQ's."
        )
    if isinstance(cause, pe.IncompatibleProtocolError) or isinstance(
        cause, pe.AMQPConnectionError
    ):
        return (
            "Something answered on that port but did not speak AMQP: check the port "
            "(5672 is AMQP, 15672 is the management web UI)."
        )
    if isinstance(cause, AMQPConnectorStackTimeout) and "AMQP handshake" in str(cause):
        # `stack_timeout=` ran out after the TCP connect: something holds the port but never
        # answers the AMQP greeting (an HTTP server waits for a request line that never comes).
        return (
            "Something accepted the connection but never completed the AMQP handshake: it is "
            "probably not RabbitMQ, so check the port (5672 is AMQP, 15672 is the management "
            "web UI)."
        )
    if isinstance(cause, (socket.timeout, TimeoutError, AMQPConnectorStackTimeout)):
        return "The broker did not answer in time: check the host, the port and your network."
    if isinstance(cause, IndexError) and _raised_by_url_parameters(cause):
        # pika.URLParameters("garbage") (no scheme, no "//") fails with a bare IndexError.
        return (
            "pika could not parse that URL: write it as amqp://user:password@host:5672/vhost "
            "(the default vhost '/' is written %2F)."
        )
    if isinstance(cause, ValueError):
        return f"The connection settings are malformed ({cause}): fix them and try again."
    return f"{type(cause).__name__}: {cause}"


def blocked_publishing(alarms: Sequence[str] | None, private_node: bool = False) -> str:
    """The sentence for a ConnectionBlockedTimeout, given the alarms the broker has now.

    RabbitMQ (3.x and 4.x alike; seen on 3.10.8 and 4.3.6) stops reading from every
    connection that publishes while a memory or disk alarm is on, and tells it with
    `Connection.Blocked`; pika's `blocked_connection_timeout` then closes the connection with
    this error. `alarms` are "disk", "memory" (or "resource" when the broker did not say
    which); None when the broker could not be asked. `private_node`: it is this checkout's
    node, whose limits `python -m helpers alarm clear` puts back.
    """
    if alarms is None:
        return (
            "The broker blocked this connection's publishing for longer than its "
            "blocked_connection_timeout, which RabbitMQ does while a resource alarm is on "
            "(free disk space below its limit, or memory use above its watermark): free disk "
            "space or memory on the broker's machine (or ask whoever runs it), then publish "
            "again."
        )
    kinds = sorted({a for a in alarms if a in ("disk", "memory")}) or sorted(set(alarms))
    if not kinds:
        return (
            "The broker blocked this connection's publishing for longer than its "
            "blocked_connection_timeout because of a resource alarm, which has cleared since: "
            "publish again on a new connection, with confirms (the blocked message may have "
            "arrived after all)."
        )
    what = {
        ("disk",): "a disk alarm (its free disk space is below its disk_free_limit)",
        ("memory",): "a memory alarm (it uses more memory than vm_memory_high_watermark allows)",
        ("disk", "memory"): "a disk and a memory alarm",
    }.get(tuple(kinds), "a resource alarm")
    if private_node:
        fix = (
            "run `python -m helpers alarm clear` in a terminal to put the tutorial node's "
            "limits back"
        )
    elif "disk" in kinds:
        fix = (
            "free disk space on the broker's machine, or lower its limit "
            "(`rabbitmqctl set_disk_free_limit 50MB`)"
        )
    elif "memory" in kinds:
        fix = (
            "let consumers drain the queues, or raise the limit "
            "(`rabbitmqctl set_vm_memory_high_watermark <fraction of RAM>`)"
        )
    else:
        fix = "free disk space or memory on the broker's machine (or ask whoever runs it)"
    return (
        f"The broker blocks publishers because it has {what}, so pika gave up on this "
        f"connection after its blocked_connection_timeout: {fix}, then publish again."
    )


def _ask_alarms(exc: BaseException) -> tuple[list[str] | None, bool]:
    """The alarms of the broker `exc` came from, through `helpers.alarms`; never raises."""
    if _alarm_lookup is None:
        return None, False
    try:
        return _alarm_lookup(exc)
    except Exception:  # an explanation must not fail: say what is known without the broker
        return None, False


def _root_cause(exc: BaseException) -> BaseException:
    """Unwrap pika's layers, e.g. AMQPConnectionError(AMQPConnectorSocketConnectError(OSError))."""
    for _ in range(5):
        inner = getattr(exc, "exception", None)  # pika's connector phase errors
        if isinstance(inner, BaseException):
            exc = inner
            continue
        if (
            type(exc) is pe.AMQPConnectionError
            and exc.args
            and isinstance(exc.args[0], BaseException)
        ):
            exc = exc.args[0]
            continue
        break
    return exc


def _reply_text(exc: BaseException) -> str:
    text = getattr(exc, "reply_text", "") or str(exc)
    return text.split(". ", 1)[0] if "deprecated" in text else text


def _is_deprecated_feature(exc: BaseException) -> bool:
    """RabbitMQ 4 closes the connection with 541 when a denied deprecated feature is used."""
    return isinstance(exc, pe.ConnectionClosedByBroker) and "deprecated" in (
        exc.reply_text or ""
    ).lower()


def _mentions(exc: BaseException, word: str) -> bool:
    return word in str(exc).lower()


def _raised_by_url_parameters(exc: BaseException) -> bool:
    """True when the traceback of `exc` passes through `pika.URLParameters.__init__`."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and type(frame.f_locals.get("self")).__name__ == (
            "URLParameters"
        ):
            return True
        tb = tb.tb_next
    return False
