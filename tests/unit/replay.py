"""Replaying a recorded case (tests/unit/data, made by scripts/record_flow_cases.py) through
the diagram's core, as the live diagram would have received it: for each step, its trace
messages as firehose events and its client events (joined by `EventJoiner` as the firehose
process joins them) in the order they arrived, then the topology the API listed after the
step."""

from __future__ import annotations

from typing import Any

from recorded import arrivals, load

from helpers.flow.events import TraceEvent, parse
from helpers.flow.lifecycle import ClientEvent, EventJoiner
from helpers.flow.state import PENDING_GRACE_S, FlowState
from helpers.flow.topology import Topology, topology_from_api

STEP_S = 2.0  # seconds between steps in the replay (the recording waited ~1.5 s)


def topology(api: dict[str, Any]) -> Topology:
    """The topology from one recorded API snapshot."""

    def listed(value: Any) -> list[dict[str, Any]] | None:
        return None if isinstance(value, dict) and "error_status" in value else value

    return topology_from_api(
        api["exchanges"],
        api["queue_totals"],
        api["bindings"],
        listed(api["consumers"]),
        listed(api["connections"]),
    )


def events(messages: list[dict[str, Any]]) -> list[TraceEvent]:
    """The recorded trace messages as the firehose process parses them."""
    out = []
    for m in messages:
        event = parse(m["routing_key"], m["headers"], m["body"])
        assert event is not None, f"not a trace message: {m['routing_key']}"
        out.append(event)
    return out


def replay(
    case: dict[str, Any] | str,
    prefix: str | None = None,
    housekeeping: bool = False,
    with_client_events: bool = True,
) -> FlowState:
    """The state after the whole case, with every pending publish settled.

    Within a step, trace messages and client events go in in the order they arrived.
    The replay's clock ends at `state.replayed_until` (for drawing it at that moment)."""
    if isinstance(case, str):
        case = load(case)
    state = FlowState(
        prefix=case["prefix"] if prefix is None else prefix, housekeeping=housekeeping
    )
    joiner = EventJoiner()
    now = 100.0
    for step in case["steps"]:
        batch: list[TraceEvent] = []
        for kind, item in arrivals(step):
            if kind == "trace":
                batch.extend(events([item]))
                continue
            if not with_client_events:
                continue
            joined: ClientEvent | None = joiner.feed(
                item["routing_key"], item["headers"], case["vhost"]
            )
            if joined is not None:
                state.add_events(batch, now=now)
                batch = []
                state.add_client_events([joined], now=now)
        state.add_events(batch, now=now)
        state.set_topology(topology(step["api"]), now=now + 0.5)
        now += STEP_S
    now += PENDING_GRACE_S
    state.set_topology(state.topology, now=now)  # nothing is pending any more
    state.replayed_until = now  # type: ignore[attr-defined]
    return state
