"""Chapter 00's window on the broker: the `ch00.` objects as the management API lists them.

The chapter calls `show_broker(...)` after each step; the lesson is the step, this is only the
table. It asks the management API (`broker.management`) for:

- `connections()` and `channels()`: our connections and their channels (`connections=True`);
- `exchanges(vhost)` and `bindings(vhost)`: what we declared and bound;
- `queue_totals(vhost)`: each queue's live ready and unacked counts (plain `queues()` has
  counts sampled every few seconds, which can lag);
- `consumers(vhost)`: which channel consumes from which queue.

Connections, channels and consumers appear only with the next statistics sample, so
`show_broker(*expected)` asks again until every expected text matches a line, for at most
`timeout` seconds, then prints what the broker reports, whatever it is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.broker import Broker

ORDER = ["connection", "channel", "exchange", "binding", "queue"]


def broker_state(broker: Broker, prefix: str, connections: bool = False) -> list[tuple]:
    """(kind, name, details) for every object named `prefix`… the management API reports."""
    api = broker.management
    consumers = api.consumers(broker.vhost)
    rows = []

    if connections:
        mine = {}  # the broker's name for each of our connections -> the name we gave it
        for conn in api.connections():
            if conn.get("user_provided_name", "").startswith(prefix):
                mine[conn["name"]] = conn["user_provided_name"]
                rows.append(("connection", conn["user_provided_name"], f"user={conn['user']}"))
        for ch in api.channels():
            owner = mine.get((ch.get("connection_details") or {}).get("name"))
            if owner:
                # (a consumer listed before its channel's statistics has no channel_details)
                n = sum(
                    (c.get("channel_details") or {}).get("name") == ch["name"] for c in consumers
                )
                rows.append(("channel", f"{owner} ({ch['number']})", f"consumers={n}"))

    for ex in api.exchanges(broker.vhost):
        if ex["name"].startswith(prefix):
            rows.append(("exchange", ex["name"], f"type={ex['type']}"))
    for b in api.bindings(broker.vhost):
        if b["destination"].startswith(prefix):
            source = b["source"] or '""'  # "" is the default exchange
            rows.append(("binding", f"{source} -> {b['destination']}", f"key={b['routing_key']}"))
    for q in api.queue_totals(broker.vhost):
        if q["name"].startswith(prefix):
            n = sum(c["queue"]["name"] == q["name"] for c in consumers)
            rows.append(
                (
                    "queue",
                    q["name"],
                    f"ready={q['messages_ready']} "
                    f"unacked={q['messages_unacknowledged']} consumers={n}",
                )
            )
    return sorted(rows, key=lambda row: (ORDER.index(row[0]), row))


class BrokerTable:
    """`show_broker(*expected, connections=False, timeout=15.0)`: print the table."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.broker = broker
        self.prefix = prefix

    def __call__(self, *expected: str, connections: bool = False, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            lines = [
                f"{kind:<11} {name:<32} {details}"
                for kind, name, details in broker_state(self.broker, self.prefix, connections)
            ]
            seen = all(any(set(e.split()) <= set(line.split()) for line in lines) for e in expected)
            if seen or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        nothing = _("(nothing named {prefix}* on the broker)").format(prefix=self.prefix)
        print("\n".join(lines) if lines else nothing)
        if not seen:
            print(_("(the broker never reported {expected})").format(expected=expected))

    def __repr__(self) -> str:
        return f"BrokerTable(prefix={self.prefix!r})"
