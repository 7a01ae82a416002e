"""Which names the diagram draws, and along which edges a message is drawn: plain functions
of the topology (and of the built-in exchanges events used), no state of their own.

Scope is by a name prefix (`ch04.`), or several prefixes or exact names (a tuple), plus what
touches them: bindings and alternate exchanges into and out of the drawn names, dead-letter
exchanges of drawn queues. The diagrams' own trace queues and marker are never drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from helpers.flow.events import TRACE_EXCHANGE, TRACING_MARK
from helpers.flow.topology import Topology

DEFAULT_EXCHANGE = ""

Prefix = str | tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    queues: frozenset[str]  # drawn queues
    exchanges: frozenset[str]  # drawn exchanges
    hidden: frozenset[str]  # queues never drawn: the diagrams' own trace queues


def in_prefix(name: str, prefix: Prefix) -> bool:
    """Whether the name starts with the prefix (or with one of them, for a tuple)."""
    return name.startswith(prefix)


def is_builtin(name: str) -> bool:
    return name == DEFAULT_EXCHANGE or name.startswith("amq.")


def scope_of(
    topology: Topology, prefix: Prefix, hidden: Iterable[str], used_exchanges: Iterable[str]
) -> Scope:
    """The queues and exchanges drawn for `prefix`.

    Queues: those in the prefix, less `hidden` and every trace queue (any diagram's).
    Exchanges: those in the prefix; built-ins that events used (`used_exchanges`); the
    dead-letter exchanges of drawn queues; and whatever bindings and alternate exchanges
    lead into or out of that set, followed until it is stable.
    """
    hidden_all = frozenset(hidden) | {
        b.destination
        for b in topology.bindings
        if b.source == TRACE_EXCHANGE and b.destination_type == "queue"
    }
    queues = {
        q.name for q in topology.queues if in_prefix(q.name, prefix) and q.name not in hidden_all
    }
    builtin = {e.name for e in topology.exchanges if is_builtin(e.name)}
    exchanges = {
        e.name for e in topology.exchanges if in_prefix(e.name, prefix) and not is_builtin(e.name)
    }
    exchanges |= {x for x in used_exchanges if x in builtin or in_prefix(x, prefix)}
    exchanges |= {
        q.dead_letter_exchange
        for q in topology.queues
        if q.name in queues and q.dead_letter_exchange is not None
    }
    alternates = {e.name: e.alternate for e in topology.exchanges if e.alternate}
    changed = True
    while changed:
        changed = False
        for b in topology.bindings:
            if b.source in (DEFAULT_EXCHANGE, TRACE_EXCHANGE):
                continue
            dest_in = b.destination in (queues if b.destination_type == "queue" else exchanges)
            if dest_in and b.source not in exchanges:
                exchanges.add(b.source)
                changed = True
            if b.source in exchanges and b.destination_type == "exchange":
                if b.destination not in exchanges:
                    exchanges.add(b.destination)
                    changed = True
        for src, alt in alternates.items():
            if src in exchanges and alt not in exchanges:
                exchanges.add(alt)
                changed = True
    exchanges -= {TRACE_EXCHANGE, TRACING_MARK}  # the diagrams' own, never drawn
    return Scope(frozenset(queues), frozenset(exchanges), hidden_all)


def path_between(topology: Topology, exchange: str, queue: str) -> list[str]:
    """Exchange names from `exchange` to the one bound to `queue`, for drawing a dot.

    The broker already said the message reached `queue`; this only finds which drawn
    edges lead there (a direct binding, else through exchange-to-exchange bindings or
    an alternate exchange), breadth first. Returns [] when no drawn edge leads there.
    """
    if exchange == DEFAULT_EXCHANGE:
        return [exchange]
    edges: dict[str, list[str]] = {}
    into_queue: set[str] = set()
    for b in topology.bindings:
        if b.destination_type == "exchange":
            edges.setdefault(b.source, []).append(b.destination)
        elif b.destination == queue:
            into_queue.add(b.source)
    for e in topology.exchanges:
        if e.alternate:
            edges.setdefault(e.name, []).append(e.alternate)
    frontier, seen = [[exchange]], {exchange}
    while frontier:
        nxt = []
        for p in frontier:
            if p[-1] in into_queue:
                return p
            for dest in edges.get(p[-1], ()):
                if dest not in seen:
                    seen.add(dest)
                    nxt.append(p + [dest])
        frontier = nxt
    return []
