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

On a cluster (chapter 10) tracing is per node: a node traces what its own channels publish
and deliver. So the switch goes to every running node of the cluster, through each one's
management API (found in the cluster's listeners); the count and the marker, which are
definitions, are shared by the whole cluster. A node that is down is skipped: it is not
traced until a diagram switches tracing on again after it is back. A single node (the
vhost's `cluster_state` names one node) is switched exactly as before, through `api` alone.
"""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlsplit

from helpers.flow.events import BINDING_MARK, TRACE_EXCHANGE, TRACING_MARK, WAS_ON
from helpers.management import ManagementClient

ANY_ADDRESS = ("0.0.0.0", "::", "")
# The APIs `switch_on` found on a single node: switching off asks no more than it did.
_SINGLE: weakref.WeakSet[ManagementClient] = weakref.WeakSet()


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
    info = _vhost_info(api, vhost)
    if not (info and info.get("tracing")):
        api.set_tracing(vhost, True)
    for peer in _peers(api, info):
        try:
            if not peer.tracing(vhost):
                peer.set_tracing(vhost, True)
        except Exception:  # noqa: BLE001 - a node going away: skipped (module docstring)
            pass


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
    for peer in [] if api in _SINGLE else _peers(api, _vhost_info(api, vhost)):
        try:
            peer.set_tracing(vhost, False)
        except Exception:  # noqa: BLE001 - a node going away: skipped (module docstring)
            pass
    api.delete_exchange(TRACING_MARK, vhost)


def _vhost_info(api: ManagementClient, vhost: str) -> dict[str, Any] | None:
    """The vhost as the list shows it (what `ManagementClient.tracing` reads, too)."""
    return next((v for v in api.vhosts() if v.get("name") == vhost), None)


def _peers(api: ManagementClient, info: dict[str, Any] | None) -> list[ManagementClient]:
    """The management APIs of the cluster's other running nodes; [] on a single node."""
    states = (info or {}).get("cluster_state") or {}
    if len(states) < 2:
        _SINGLE.add(api)
        return []
    _SINGLE.discard(api)
    try:
        overview = api.overview()
    except Exception:  # noqa: BLE001 - the cluster cannot tell: this node alone
        return []
    own = urlsplit(api.base_url)
    session = api._session
    peers = []
    for listener in overview.get("listeners") or []:
        if listener.get("node") == overview.get("node") or states.get(listener.get("node")) != (
            "running"
        ):
            continue
        if listener.get("protocol") not in ("http", "https"):
            continue
        address = listener.get("ip_address") or ""
        host = own.hostname if address in ANY_ADDRESS else address
        if ":" in (host or ""):
            host = f"[{host}]"
        scheme = "https" if listener["protocol"] == "https" else "http"
        username, password = session.auth  # type: ignore[misc]
        peers.append(
            ManagementClient(f"{scheme}://{host}:{listener['port']}", username, password,
                             timeout=api.timeout, ca_file=api.ca_file)
        )
    return peers
