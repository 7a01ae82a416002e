"""How the error index recognises an error: rules that look at an exception.

`helpers.error_index` pairs each rule with what the error means; this module only answers
"is it this one?". Rules get the root cause (`root_cause()`): pika wraps a refused socket in
AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError)), and the
learner should read about the refused socket. Broker errors are matched on the reply code and
a short, stable part of the reply text, because the texts differ between versions.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pika.exceptions as pe
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

Rule = Callable[[BaseException], bool]



def root_cause(exc: BaseException) -> BaseException:
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


def reply_text(exc: BaseException) -> str:
    """The broker's reply text, cut after "is deprecated" (4.3 adds paragraphs of advice)."""
    text = getattr(exc, "reply_text", "") or str(exc)
    if "deprecated" in text:
        text = text[: text.index("deprecated") + len("deprecated")]
    return " ".join(text.split())


def closed_with(kind: type[BaseException], code: int, *words: str) -> Rule:
    """A Channel.Close or Connection.Close from the broker with this code (and these words)."""

    def rule(exc: BaseException) -> bool:
        text = (getattr(exc, "reply_text", "") or "").lower()
        return (
            isinstance(exc, kind)
            and getattr(exc, "reply_code", None) == code
            and all(w in text for w in words)
        )

    return rule


def is_a(*kinds: type[BaseException]) -> Rule:
    return lambda exc: isinstance(exc, kinds)


def deprecated_feature(exc: BaseException) -> bool:
    """RabbitMQ 4 closes the connection with 541 when a denied deprecated feature is used."""
    return isinstance(exc, pe.ConnectionClosedByBroker) and "deprecated" in (
        exc.reply_text or ""
    ).lower()


def refused(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower()


def unresolved(exc: BaseException) -> bool:
    return isinstance(exc, socket.gaierror) or "getaddrinfo" in str(exc).lower()


def handshake_timeout(exc: BaseException) -> bool:
    # `stack_timeout=` ran out after the TCP connect: something holds the port but never
    # answers the AMQP greeting (an HTTP server waits for a request line that never comes).
    return isinstance(exc, AMQPConnectorStackTimeout) and "AMQP handshake" in str(exc)


def raised_by_pika(exc: BaseException) -> bool:
    """True when the traceback of `exc` passes through pika's own code."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("pika."):
            return True
        tb = tb.tb_next
    return False


def raised_by_url_parameters(exc: BaseException) -> bool:
    """pika.URLParameters("garbage") (no scheme, no "//") fails with a bare IndexError."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and type(frame.f_locals.get("self")).__name__ == (
            "URLParameters"
        ):
            return True
        tb = tb.tb_next
    return False
