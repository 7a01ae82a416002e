"""Where the broker is, and how the example programs end. Not a wrapper around pika.

Every program builds its own `pika.URLParameters` and opens its own `BlockingConnection`;
this module only answers two questions they all share:

- `broker_url()`: which broker? `AMQP_URL` if set; else, when run from the tutorial's
  repository, the broker its notebooks use (`helpers.find_broker()`: 127.0.0.1:5672, else
  the tutorial's private node); else `amqp://guest:guest@localhost:5672/%2F`.
- `run(main)`: run `main()` and exit with its code; Ctrl-C exits with 130 and no traceback
  (the program's `with pika.BlockingConnection(...)` block has closed the connection by
  then), and a broker that cannot be reached or that closes the channel is one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pika
import pika.exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
REPOSITORY = Path(__file__).resolve().parent.parent


def broker_url() -> str:
    """The AMQP URL to connect to (it may hold a password: do not print it)."""
    url = os.environ.get("AMQP_URL", "").strip()
    if url:
        return url
    if (REPOSITORY / "helpers" / "__init__.py").exists() and str(REPOSITORY) not in sys.path:
        sys.path.append(str(REPOSITORY))  # run from the repository with any Python
    try:
        import helpers
    except ImportError:  # copied elsewhere, or the tutorial's requirements are missing
        return DEFAULT_URL
    try:
        broker = helpers.find_broker(progress=lambda line: print(line, file=sys.stderr))
    except helpers.TutorialError as error:
        raise SystemExit(f"No broker: {error}") from None
    if broker.tls:
        # URLParameters checks an amqps:// broker against the system's CA store only.
        print("note: AMQP over TLS, checked against the system's CA store", file=sys.stderr)
    return broker.amqp_url


def _interrupted(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__context__
    return False


def run(main: Callable[[], int | None]) -> None:
    """Run `main()`, then exit: 0 (or what main returned), 130 after Ctrl-C, 1 on a broker
    error (one line on stderr)."""
    sys.stdout.reconfigure(line_buffering=True)  # each line shows at once, also in a pipe
    try:
        code = main() or 0
    except KeyboardInterrupt:
        print("\nstopped (Ctrl-C)", file=sys.stderr)
        code = 130
    except Exception as error:
        if _interrupted(error):
            # Ctrl-C came in the middle of pika's work (seen: inside connection.channel()),
            # and closing the connection on the way out failed because of it.
            print("\nstopped (Ctrl-C)", file=sys.stderr)
            code = 130
        elif isinstance(error, pika.exceptions.AMQPError):
            print(f"error: {describe(error)}", file=sys.stderr)
            code = 1
        else:
            raise
    sys.exit(code)


def describe(error: pika.exceptions.AMQPError) -> str:
    """One line for a pika error."""
    exc = pika.exceptions
    if isinstance(error, exc.ConnectionBlockedTimeout):
        return (
            "the broker blocked this connection for too long (a memory or disk alarm): "
            "it takes no messages until it has room again"
        )
    if isinstance(error, exc.ProbableAuthenticationError | exc.ProbableAccessDeniedError):
        return f"the broker refused the login: {error}"
    if isinstance(error, exc.ChannelClosedByBroker):
        return f"the broker closed the channel: {error.reply_code} {error.reply_text}"
    if isinstance(error, exc.ConnectionClosedByBroker):
        return f"the broker closed the connection: {error.reply_code} {error.reply_text}"
    if isinstance(error, exc.AMQPConnectionError):
        first = error.args[0] if error.args else error
        why = str(first) or repr(first)  # pika's connector errors show only in their repr
        return f"cannot reach the broker (is it running? is AMQP_URL right?): {why}"
    return f"{type(error).__name__}: {error}"
