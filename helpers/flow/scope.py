"""Which names the diagram draws, and along which edges a message is drawn: plain functions
of the topology (and of the built-in exchanges events used), no state of their own.

Scope (`Prefix`) is one entry or a tuple of them, each matched by `in_prefix`:

- a name ending in a separator (`ch04.`, `ch04.pdf_`) is a prefix: every name under it;
- any other name is that exact name and the names under it after a separator: `ch05.jobs`
  draws `ch05.jobs` and `ch05.jobs.dlx`, but `celery` does not draw `celeryev`;
- a compiled regular expression (`re.compile(r"^orders\b")`) draws the names it finds
  (`re.search`);
- "" draws everything.

Plus what touches them: bindings and alternate exchanges into and out of the drawn names,
dead-letter exchanges of drawn queues. The diagrams' own trace queues and marker are never
drawn, and housekeeping names (`is_housekeeping`: Celery's pidbox) only on request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from helpers.flow.events import TRACE_EXCHANGE, TRACING_MARK
from helpers.flow.lifecycle import EVENT_EXCHANGE
from helpers.flow.topology import Topology

DEFAULT_EXCHANGE = ""
WATCHED = (TRACE_EXCHANGE, EVENT_EXCHANGE)  # what the diagrams read; never drawn

Entry = str | re.Pattern[str]
Prefix = Entry | tuple[Entry, ...]
SEPARATORS = ".-_/:"  # what ends a prefix, and what may follow an exact name
# Housekeeping: a framework's own traffic, not the learner's messages. Celery's remote
# control (the `celery.pidbox` exchange, `<id>.celery.pidbox` queues, `reply.celery.pidbox`)
# and its workers' heartbeat events (`celeryev`, routing key `worker.heartbeat`).
HOUSEKEEPING_NAMES = re.compile(r"(^|\.)pidbox$|\.pidbox\.|^celeryev\.[0-9a-f-]{36}$")
HOUSEKEEPING_KEYS = re.compile(r"^worker\.heartbeat$")


@dataclass(frozen=True)
class Scope:
    queues: frozenset[str]  # drawn queues
    exchanges: frozenset[str]  # drawn exchanges
    hidden: frozenset[str]  # queues never drawn: the diagrams' own trace queues


def in_prefix(name: str, prefix: Prefix) -> bool:
    """Whether the name is in scope (see the module docstring for the rules)."""
    entries = prefix if isinstance(prefix, tuple) else (prefix,)
    return any(_matches(name, entry) for entry in entries)


def _matches(name: str, entry: Entry) -> bool:
    if isinstance(entry, re.Pattern):
        return entry.search(name) is not None
    if entry == "" or name == entry:
        return True
    if not name.startswith(entry):
        return False
    return entry[-1] in SEPARATORS or name[len(entry)] in SEPARATORS


def is_housekeeping(name: str, routing_key: str = "") -> bool:
    """Whether an exchange or queue (with a routing key: a publish) is housekeeping."""
    return bool(HOUSEKEEPING_NAMES.search(name)) or (
        name == "celeryev" and bool(HOUSEKEEPING_KEYS.match(routing_key))
    )


def describe(prefix: Prefix) -> str:
    """The scope in words, for the empty picture ("nothing named ch04.… yet")."""
    entries = prefix if isinstance(prefix, tuple) else (prefix,)
    words = [
        f"/{e.pattern}/" if isinstance(e, re.Pattern) else e + ("…" if e[-1:] in SEPARATORS else "")
        for e in entries
    ]
    return ", ".join(words)


def is_builtin(name: str) -> bool:
    return name == DEFAULT_EXCHANGE or name.startswith("amq.")


def scope_of(
    topology: Topology,
    prefix: Prefix,
    hidden: Iterable[str],
    used_exchanges: Iterable[str],
    housekeeping: bool = False,
) -> Scope:
    """The queues and exchanges drawn for `prefix`.

    Queues: those in the prefix, less `hidden`, every trace queue (any diagram's) and,
    unless `housekeeping`, housekeeping queues.
    Exchanges: those in the prefix; built-ins that events used (`used_exchanges`); the
    dead-letter exchanges of drawn queues; and whatever bindings and alternate exchanges
    lead into or out of that set, followed until it is stable.
    """
    # Queues that watch the broker (any diagram's trace and client-event queues, also
    # another kernel's) are never drawn, nor are the exchanges they watch.
    hidden_all = frozenset(hidden) | {
        b.destination
        for b in topology.bindings
        if b.source in WATCHED and b.destination_type == "queue"
    }
    if not housekeeping:
        hidden_all |= {q.name for q in topology.queues if is_housekeeping(q.name)}
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
            if b.source == DEFAULT_EXCHANGE or b.source in WATCHED:
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
    exchanges -= {*WATCHED, TRACING_MARK}  # the diagrams' own, never drawn
    if not housekeeping:
        exchanges = {x for x in exchanges if not is_housekeeping(x)}
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
