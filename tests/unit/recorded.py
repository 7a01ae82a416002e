"""Broker data recorded from real RabbitMQ nodes, for unit tests that run with no broker.

`scripts/record_flow_cases.py` wrote `data/<scenario>-<major.minor>.json` (its docstring says
what each file holds and how to record them again). JSON has no bytes, tables with types,
datetimes or decimals, so the trace and event headers were written with `$`-tags; `load()`
turns them back into what pika gave (bytes, dict, list, datetime, Decimal), turns bodies back
into bytes and fills in the readings' API parts that were written as "same as the previous
reading".

Each step holds its trace messages ("trace") and the client events of the event exchange
("events", each with "after": how many of the step's trace messages came before it);
`arrivals(step)` puts them back in the one order they arrived in.
"""

from __future__ import annotations

import base64
import copy
import datetime
import decimal
import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
SAME = {"$same": "previous reading"}

_TAGS = {
    "$bytes": lambda v: base64.b64decode(v),
    "$table": lambda v: {k: decode_headers(x) for k, x in v.items()},
    "$array": lambda v: [decode_headers(x) for x in v],
    "$time": lambda v: datetime.datetime.fromisoformat(v),
    "$decimal": lambda v: decimal.Decimal(v),
}


# Files in DATA that are not flow cases: client events (scripts/record_lifecycle_events.py,
# scripts/record_protocol_events.py).
OTHER_RECORDINGS = ("lifecycle-", "protocols-")


def names() -> list[str]:
    """Every recorded case, e.g. "direct-4.3", so a test can run on all of them."""
    return sorted(p.stem for p in DATA.glob("*.json") if not p.name.startswith(OTHER_RECORDINGS))


def decode_headers(value: Any) -> Any:
    """A `$`-tagged header value back as pika decodes it from the wire."""
    if isinstance(value, dict):
        if len(value) == 1:
            tag, inner = next(iter(value.items()))
            if tag in _TAGS:
                return _TAGS[tag](inner)
        return {k: decode_headers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_headers(v) for v in value]
    return value


def load(name: str) -> dict[str, Any]:
    """One recorded case (e.g. "direct-4.3") with trace headers and bodies decoded.

    Each call returns a fresh copy, so a test may change what it gets.
    """
    case = json.loads(_text(name))
    for step in case["steps"]:
        for message in step["trace"]:
            message["headers"] = decode_headers(message["headers"])
            message["body"] = base64.b64decode(message["body"])
        step.setdefault("events", [])  # a file recorded before client events were
        for event in step["events"]:
            event["headers"] = decode_headers(event["headers"])
    previous: dict[str, Any] = {}
    for reading in case["readings"]:
        api = reading["api"]
        for part, value in api.items():
            if value == SAME:
                api[part] = copy.deepcopy(previous[part])
        previous = api
    return case


def arrivals(step: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A loaded step's trace messages and client events in the order they arrived:
    ("trace", message) and ("event", event) pairs."""
    out: list[tuple[str, dict[str, Any]]] = []
    events = iter(step["events"])
    event = next(events, None)
    for n, message in enumerate(step["trace"]):
        while event is not None and event["after"] <= n:
            out.append(("event", event))
            event = next(events, None)
        out.append(("trace", message))
    while event is not None:
        out.append(("event", event))
        event = next(events, None)
    return out


@cache
def _text(name: str) -> str:
    path = DATA / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded case {name!r}; there are: {', '.join(names())}")
    return path.read_text(encoding="utf-8")
