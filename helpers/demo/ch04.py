"""Chapter 04's printouts: what each queue received, and an exchange's bindings.

Both only show what the pika calls of the chapter did; `bindings_from` reads the bindings
from the management API (`GET /api/exchanges/{vhost}/{exchange}/bindings/source`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers.broker import Broker


def show(received: dict[str, list[str]]) -> None:
    """Print {label: [bodies]}, one line per queue."""
    for label, bodies in received.items():
        print(f"{label:<16} got {bodies}")


def bindings_from(broker: Broker, exchange: str) -> None:
    """Print the bindings whose source is `exchange`, as the management API lists them."""
    rows = [
        (b["destination"], b["routing_key"])
        for b in broker.management.bindings(broker.vhost)
        if b["source"] == exchange
    ]
    for destination, key in sorted(rows):
        print(f"{exchange} --[{key}]--> {destination}")
