"""Switching a vhost's firehose on and off, shared fairly by every diagram of the tutorial.

Tracing costs the broker work, so it is on only while at least one diagram is attached to
the vhost, and switched off again by the last one to leave unless it was already on before
the first one came. The reference count lives on the broker itself, as the arguments of
the diagrams' trace-queue bindings (`BINDING_MARK`, `WAS_ON`), so it works across kernels
and disappears with them: each trace queue is exclusive and goes with its connection.

A kernel that dies with a diagram open cannot switch tracing off. So whenever a diagram
switches tracing on, it also declares a small marker exchange (`TRACING_MARK`); the last
diagram to leave deletes it with the switch. A marker found with no diagram attached means
a diagram died while tracing was on because of it: the next diagram takes tracing as off
before, and switches it off when it leaves (`reset_stale_tracing()` does it at once).

The marker is durable: a broker restart drops every diagram's trace queue, and RabbitMQ 3.x
also drops transient exchanges then while it keeps tracing on. A transient marker would be
gone, and the next diagram would take tracing as on before the tutorial came and leave it on.

Every call here is one of `ManagementClient`'s, so this is the only module that knows the
rules, for the firehose process and the kernel alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from helpers.flow.events import BINDING_MARK, TRACE_EXCHANGE, TRACING_MARK, WAS_ON

if TYPE_CHECKING:
    from helpers.management import ManagementClient


def _trace_bindings(api: ManagementClient, vhost: str) -> list[dict[str, Any]]:
    return [
        b
        for b in api.bindings_from(TRACE_EXCHANGE, vhost)
        if b.get("destination_type") == "queue" and (b.get("arguments") or {}).get(BINDING_MARK)
    ]


def binding_arguments(was_on: bool) -> dict[str, Any]:
    """The arguments a diagram's trace queue is bound with: its share of the count."""
    return {BINDING_MARK: True, WAS_ON: was_on}


def diagram_trace_queues(api: ManagementClient, vhost: str) -> list[str]:
    """Names of the trace queues of every live diagram on this vhost (any kernel)."""
    return sorted({b["destination"] for b in _trace_bindings(api, vhost)})


def tracing_was_on_before(api: ManagementClient, vhost: str) -> bool:
    """Whether tracing was already on before this tutorial's diagrams switched it on.

    If other diagrams are attached, they recorded the answer when the first of them came;
    otherwise the answer is the vhost's tracing flag right now.
    """
    others = _trace_bindings(api, vhost)
    if others:
        return any(b["arguments"].get(WAS_ON) for b in others)
    if api.exchange(TRACING_MARK, vhost) is not None:
        return False  # a diagram switched it on and died: it was off before that
    return api.tracing(vhost)


def switch_on(api: ManagementClient, vhost: str, was_on: bool) -> None:
    """Tracing on for a diagram that has bound its trace queue; the marker if it is ours."""
    if not was_on and api.exchange(TRACING_MARK, vhost) is None:
        # Left until the last diagram goes, so a dead kernel's tracing can be found; durable,
        # so that it outlives a broker restart (see the module docstring). A transient one an
        # older diagram declared is kept as it is (declaring it durable would be refused).
        api.declare_exchange(TRACING_MARK, vhost, "fanout", internal=True, durable=True)
    if not api.tracing(vhost):
        api.set_tracing(vhost, True)


def switch_off_if_last(api: ManagementClient, vhost: str, was_on: bool) -> bool:
    """Called by a diagram that has deleted its trace queue: tracing off if it was the last
    and tracing was off before the diagrams came. True if it switched it off."""
    if was_on or diagram_trace_queues(api, vhost):
        return False
    _switch_off(api, vhost)
    return True


def reset_stale_tracing(api: ManagementClient, vhost: str) -> bool:
    """Switch tracing off if a diagram that died left it on; True if it did.

    Nothing happens while any diagram is attached, or when tracing was on before the
    tutorial's diagrams came (a classroom vhost, say).
    """
    if _trace_bindings(api, vhost) or api.exchange(TRACING_MARK, vhost) is None:
        return False
    _switch_off(api, vhost)
    return True


def _switch_off(api: ManagementClient, vhost: str) -> None:
    api.set_tracing(vhost, False)
    api.delete_exchange(TRACING_MARK, vhost)
