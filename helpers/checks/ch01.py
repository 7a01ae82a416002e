"""Self-check for chapter 01 (connections and channels).

The exercise: open a connection named `ch01.exercise` that carries two channels, keep it in
`exercise_connection`, and leave it open. The check asks the broker, through the management
API, which connections it holds: that is the same view an operator has, so it only passes
when the broker really sees the name and both channels, not when a Python variable merely
says so.

What the learner's connection object tells the check first, so that the typical mistakes get
their hint at once instead of after a wait for the broker's statistics:
- closed already (a `with` block closes it at its end);
- dropped by the broker while it sat idle (missed heartbeats: nothing answered them between
  the learner's cell and the check), which the check finds out by letting pika read;
- opened without the name, or with another one;
- opened with one channel (or three).

The management API refreshes connection and channel lists on a timer (every 5 s on a stock
broker, faster on the tutorial's private node), so a passing answer may take a few seconds:
the check polls, and meanwhile lets pika process the learner's connection
(`process_data_events`), which answers the broker's heartbeats. A connection's `channels`
count can lag its channel list by one more interval (seen on a stock RabbitMQ 4.3: listed
with 0 channels for the first 5 s), hence a deadline of three stock intervals.

Running the learner's cell twice leaves the first connection open (assigning the variable
again does not close it), so the broker then lists two connections with the name. The check
closes the ones that are not the learner's current connection, says so, and goes on.
"""

from __future__ import annotations

import time
from typing import Any

import pika.exceptions

from helpers.checks import CheckResult, hint, passed
from helpers.errors import ManagementError
from helpers.i18n import _

EXERCISE_NAME = "ch01.exercise"
EXPECTED_CHANNELS = 2
POLL_S = 0.25
# Connections this check closed (earlier runs' leftovers). The broker lists a connection it
# closed until the client answers or 30 s pass, and nobody runs pika for a leftover.
_CLOSED: set[str] = set()


def connection_name(info: dict[str, Any]) -> str | None:
    """The name a client gave its connection (`client_properties={"connection_name": ...}`)."""
    return info.get("user_provided_name") or (info.get("client_properties") or {}).get(
        "connection_name"
    )


def check_exercise(
    broker: Any, connection: Any = None, name: str = EXERCISE_NAME, timeout: float = 15.0
) -> CheckResult:
    """The notebook's check: `connection` is the learner's `exercise_connection` (or None)."""
    if connection is None:
        return hint(
            _(
                "There is no `exercise_connection` yet: write your code in the cell above, keep "
                "the connection in a variable called exercise_connection, and run that cell."
            )
        )
    return check(connection, name=name, timeout=timeout, broker=broker)


def check(
    connection: Any = None,
    name: str = EXERCISE_NAME,
    timeout: float = 15.0,
    broker: Any = None,
) -> CheckResult:
    """Pass when the broker lists exactly one open connection `name` with two channels.

    `connection` is optional: given the learner's pika connection, the check can tell "you
    closed it already", "the broker dropped it", "it has no name" and "it has one channel"
    apart from "the broker has never heard that name", without waiting for the broker.
    """
    if broker is None:
        from helpers import find_broker

        broker = find_broker(start=False, progress=None)

    if connection is not None:
        early = _look_at(connection, name)
        if early is not None:
            return early

    api = broker.management
    deadline = time.monotonic() + timeout
    closed_extra: set[str] = set()
    mine: list[dict[str, Any]] = []
    numbers: list[int] = []
    while True:
        mine = [
            c
            for c in api.connections()
            if connection_name(c) == name
            and c.get("vhost", broker.vhost) == broker.vhost
            and c["name"] not in _CLOSED
            and c.get("state") not in ("closing", "closed")
        ]
        if len(mine) > 1 and connection is not None:
            current = _current(connection, mine)
            if current is not None:
                closed_extra |= _close_others(api, mine, current)
                mine = [current]
        if len(mine) == 1:
            numbers = sorted(ch["number"] for ch in api.connection_channels(mine[0]["name"]))
            if mine[0].get("channels") == EXPECTED_CHANNELS and len(numbers) == EXPECTED_CHANNELS:
                return passed(
                    _(
                        "The broker sees your connection {name!r} with {EXPECTED_CHANNELS} "
                        "channels (numbers {v_0} and {v_1})."
                    ).format(
                        name=name,
                        EXPECTED_CHANNELS=EXPECTED_CHANNELS,
                        v_0=numbers[0],
                        v_1=numbers[1],
                    ) + _note(len(closed_extra))
                )
        if time.monotonic() > deadline:
            break
        if not _wait(connection, POLL_S):
            return _dropped()

    if not mine:
        return hint(
            _(
                "The broker lists no open connection named {name!r}. Give the name with "
                "client_properties={{'connection_name': ...}} in ConnectionParameters, and do not "
                "close the connection (no `with` block) before the check runs."
            ).format(name=name)
        )
    if len(mine) > 1:
        return hint(
            _(
                "The broker lists {n_mine} open connections named {name!r}: running your cell "
                "again opened a new one and left the old one open (assigning a variable again "
                "does not close a connection). Run the chapter's first cell (it closes them), "
                "then your cell once, then the check."
            ).format(n_mine=len(mine), name=name)
        )
    count = len(numbers)
    if count == EXPECTED_CHANNELS:
        return hint(
            _(
                "The broker lists your connection {name!r} with {count} channels, but its counts "
                "have not caught up yet: run the check again in a few seconds."
            ).format(name=name, count=count)
        )
    return hint(
        _(
            "Your connection {name!r} is there, but it carries {count} channel{value}, not "
            "{EXPECTED_CHANNELS}: each connection.channel() call opens one more, and a channel "
            "error closes one."
        ).format(
            name=name,
            count=count,
            value='' if count == 1 else 's',
            EXPECTED_CHANNELS=EXPECTED_CHANNELS,
        )
    )


def _look_at(connection: Any, name: str) -> CheckResult | None:
    """A hint from the learner's connection object alone, or None to go and ask the broker."""
    if getattr(connection, "is_closed", False):
        return hint(
            _(
                "Your connection is already closed: a `with` block closes it at its end (and so "
                "does close()), and the broker forgets closed connections at once. Open it "
                "without `with`, leave it open, and run the check. (If your cell stopped with an "
                "error, fix that first.)"
            )
        )
    if not _wait(connection, 0):
        return _dropped()
    given = _given_name(connection)
    if given is not None and given != name:
        if given == "":
            return hint(
                _(
                    "Your connection is open, but it has no name, so the broker cannot list it as "
                    "{name!r}: pass client_properties={{'connection_name': {name!r}}} to "
                    "ConnectionParameters."
                ).format(name=name)
            )
        return hint(
            _(
                "Your connection is open, but its name is {given!r}, not {name!r} "
                "(client_properties={{'connection_name': ...}})."
            ).format(given=given, name=name)
        )
    count = _open_channels(connection)
    if count is not None and count != EXPECTED_CHANNELS:
        return hint(
            _(
                "Your connection {name!r} is open, but it carries {count} channel{value}, not "
                "{EXPECTED_CHANNELS}: each connection.channel() call opens one more, and a "
                "channel error closes one."
            ).format(
                name=name,
                count=count,
                value='' if count == 1 else 's',
                EXPECTED_CHANNELS=EXPECTED_CHANNELS,
            )
        )
    return None


def _dropped() -> CheckResult:
    return hint(
        _(
            "The broker dropped your connection while it sat idle: a BlockingConnection answers "
            "the broker's heartbeats only while pika runs, and nothing ran between your cell and "
            "the check (section 6, heartbeats). Run your cell again, then the check right away."
        )
    )


def _wait(connection: Any, seconds: float) -> bool:
    """Let pika run for `seconds` (heartbeats answered); False if the connection is dead."""
    if connection is None:
        time.sleep(seconds)
        return True
    try:
        connection.process_data_events(time_limit=seconds)
    except pika.exceptions.AMQPError:
        return False
    return bool(getattr(connection, "is_open", True))


def _given_name(connection: Any) -> str | None:
    """The connection_name the learner's parameters carry ("" for none); None if unknown."""
    params = getattr(getattr(connection, "_impl", None), "params", None)
    if params is None:
        return None
    return (params.client_properties or {}).get("connection_name") or ""


def _open_channels(connection: Any) -> int | None:
    """How many channels of the learner's BlockingConnection are open; None if unknown."""
    channels = getattr(getattr(connection, "_impl", None), "_channels", None)
    if not isinstance(channels, dict):
        return None
    return sum(1 for channel in channels.values() if channel.is_open)


def _local_port(connection: Any) -> int | None:
    try:
        return connection._impl._transport._sock.getsockname()[1]
    except (AttributeError, OSError, TypeError):
        return None


def _current(connection: Any, listed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Which of the listed connections is the learner's: by client port, else the newest."""
    port = _local_port(connection)
    by_port = [c for c in listed if port is not None and c.get("peer_port") == port]
    if by_port:
        return by_port[0]
    return max(listed, key=lambda c: c.get("connected_at") or 0)


def _close_others(api: Any, listed: list[dict[str, Any]], current: dict[str, Any]) -> set[str]:
    """Close the listed connections other than `current`; the broker's names of those closed.
    (The API may list a closed connection for a moment longer: closing it again is harmless.)"""
    closed = set()
    for info in listed:
        if info["name"] != current["name"]:
            try:
                api.close_connection(
                    info["name"], "closed by the chapter 01 check: an earlier run's connection"
                )
                closed.add(info["name"])
                _CLOSED.add(info["name"])
            except ManagementError:
                pass
    return closed


def _note(closed: int) -> str:
    if not closed:
        return ""
    return (
        _(
            " (The check closed {closed} older connection{value} with the same name that an "
            "earlier run of your cell had left open: assigning exercise_connection again does not "
            "close the old connection.)"
        ).format(closed=closed, value='' if closed == 1 else 's')
    )
