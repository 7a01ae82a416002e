"""Self-check for chapter 01 (connections and channels).

The exercise: open a connection named `ch01.exercise` that carries two channels, and leave it
open. The check asks the broker, through the management API, which connections it holds:
that is the same view an operator has, so it only passes when the broker really sees the
name and both channels, not when a Python variable merely says so.

The management API refreshes connection and channel lists on a timer (every 5 s on a stock
broker, every second on the tutorial's private node), so the check polls until the answer
settles or the deadline passes. A connection's `channels` count can lag its channel list by
one more interval (seen on a stock RabbitMQ 4.3: listed with 0 channels for the first 5 s),
hence a deadline of three stock intervals.
"""

from __future__ import annotations

import time
from typing import Any

from helpers.checks import CheckResult, hint, passed

EXERCISE_NAME = "ch01.exercise"
EXPECTED_CHANNELS = 2
POLL_S = 0.25


def connection_name(info: dict[str, Any]) -> str | None:
    """The name a client gave its connection (`client_properties={"connection_name": ...}`)."""
    return info.get("user_provided_name") or (info.get("client_properties") or {}).get(
        "connection_name"
    )


def check(connection: Any = None, name: str = EXERCISE_NAME, timeout: float = 15.0) -> CheckResult:
    """Pass when the broker lists exactly one open connection `name` with two channels.

    `connection` is optional: given the learner's pika connection, the check can tell "you
    closed it already" apart from "the broker has never heard that name".
    """
    from helpers import find_broker

    if connection is not None and getattr(connection, "is_closed", False):
        return hint(
            "Your connection is already closed: the broker forgets closed connections at "
            "once. Open it again, leave it open, and run the check."
        )

    api = find_broker(start=False, progress=None).management
    deadline = time.monotonic() + timeout
    mine: list[dict[str, Any]] = []
    numbers: list[int] = []
    while True:
        mine = [c for c in api.connections() if connection_name(c) == name]
        if len(mine) == 1:
            numbers = sorted(ch["number"] for ch in api.connection_channels(mine[0]["name"]))
            if mine[0].get("channels") == EXPECTED_CHANNELS and len(numbers) == EXPECTED_CHANNELS:
                return passed(
                    f"The broker sees your connection {name!r} with {EXPECTED_CHANNELS} "
                    f"channels (numbers {numbers[0]} and {numbers[1]})."
                )
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)

    if not mine:
        return hint(
            f"The broker lists no open connection named {name!r}. Give the name with "
            "client_properties={'connection_name': ...} in ConnectionParameters, and do not "
            "close the connection (no `with` block) before the check runs."
        )
    if len(mine) > 1:
        return hint(
            f"The broker lists {len(mine)} open connections named {name!r} (did the cell run "
            "more than once?): close the extra ones, or restart the kernel, and try again."
        )
    count = len(numbers)
    if count == EXPECTED_CHANNELS:
        return hint(
            f"The broker lists your connection {name!r} with {count} channels, but its counts "
            "have not caught up yet: run the check again in a few seconds."
        )
    return hint(
        f"Your connection {name!r} is there, but it carries {count} channel"
        f"{'' if count == 1 else 's'}, not {EXPECTED_CHANNELS}: each connection.channel() "
        "call opens one more, and a channel error closes one."
    )
