"""The programs of the flow diagram: each client connection's counts gathered under the
program it belongs to (`helpers.flow.clients.Clients.program`), and the words of its box.

A chapter opens a connection per cell under one name, so a program usually spans many
connections; its box adds up what they published and received, and lists its consumers.
Kept apart from `helpers.view.scene`, which turns programs, exchanges and queues into a
picture, so each stays small.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from helpers.flow.clients import Consumer, is_helper
from helpers.flow.state import Client, FlowState
from helpers.flow.topology import client_address
from helpers.i18n import _

MAX_PROGRAMS = 24  # program boxes drawn; the rest are one "other programs" box
MAX_CONSUMER_LINES = 3  # consumers listed in one program's box; the rest as "+N more"
OTHERS = "other programs"


@dataclass
class Program:
    """What one program did, gathered from its connections and channels."""

    name: str
    order: int  # in order of first appearance
    connections: set[str] = field(default_factory=set)
    published: Counter = field(default_factory=Counter)  # exchange -> messages
    received: Counter = field(default_factory=Counter)  # queue -> deliveries
    got: Counter = field(default_factory=Counter)  # queue -> deliveries by basic_get
    consumers: list[Consumer] = field(default_factory=list)  # consuming now
    ended: list[Consumer] = field(default_factory=list)  # consumers that delivered, gone


UNKNOWN = "a program the diagram saw only consume"  # a consumer whose channel is not known


def program_name(state: FlowState, client: Client) -> str:
    """The program a (connection, channel) belongs to."""
    if client[0] == "others":
        return OTHERS
    return state.clients.program(client[0]) if client[0] else UNKNOWN


def gather(state: FlowState, show_helpers: bool = True) -> dict[str, Program]:
    """Every program with something on the picture, at most MAX_PROGRAMS of them."""
    found: dict[str, Program] = {}

    def of(client: Client) -> Program:
        name = program_name(state, client)
        p = found.get(name)
        if p is None:
            p = found[name] = Program(name, len(found))
        if client[0] != "others":
            p.connections.add(client[0])
        return p

    for client in sorted(state.producers, key=state.producers.__getitem__):
        of(client)
    for (client, x), n in state.produced.items():
        of(client).published[x] += n
    live = state.visible_consumers()
    for (q, client), n in sorted(state.deliveries_to.items()):
        p = of(client)
        p.received[q] += n
        if client[0] == "others":
            continue
        seen = state.clients.consumers_ever(q, *client)
        if not seen:
            p.got[q] += n
        p.ended += [c for c in seen if c not in live and c not in p.ended]
    for c in live:
        of((c.connection, c.channel)).consumers.append(c)
    for (replier, caller), _n in state.direct_replies.items():
        of(replier)
        of(caller)
    if not show_helpers:
        found = {k: p for k, p in found.items() if not is_helper(k)}
    found = _fold_unnamed(state, found)
    if len(found) > MAX_PROGRAMS:
        found = _bounded(state, found)
    return found


def _fold_unnamed(state: FlowState, found: dict[str, Program]) -> dict[str, Program]:
    """Programs that gave no name and have left, doing the same thing (the same exchanges
    published to, the same queues received from), are one box: "3 unnamed programs". Each
    run of a script (the official tutorials' send.py, say) is a connection of its own,
    and a box per run would bury what they did."""
    groups: dict[tuple[frozenset, frozenset], list[Program]] = {}
    for p in found.values():
        unnamed = p.connections and all(state.clients.given_name(c) is None for c in p.connections)
        if unnamed and not p.consumers and has_left(state, p):
            # Queues gone since (each run's own reply or log queue) count as one kind.
            received = frozenset(q if q in state.scope.queues else "(gone)" for q in p.received)
            groups.setdefault((frozenset(p.published), received), []).append(p)
    out = dict(found)
    for same in groups.values():
        if len(same) < 2:
            continue
        name, n = _("{n} unnamed programs").format(n=len(same)), 1
        while name in out:  # two groups of the same size
            n += 1
            name = _("{n} unnamed programs #{k}").format(n=len(same), k=n)
        merged = Program(name, min(p.order for p in same))
        for p in same:
            del out[p.name]
            merged.connections |= p.connections
            merged.published.update(p.published)
            merged.received.update(p.received)
            merged.got.update(p.got)
            merged.ended += p.ended
        out[merged.name] = merged
    return out


def _bounded(state: FlowState, found: dict[str, Program]) -> dict[str, Program]:
    """At most MAX_PROGRAMS boxes: those still connected first, in order of appearance; the
    rest share one "other programs" box, so their counts stay on the picture."""
    ranked = sorted(found.values(), key=lambda p: (has_left(state, p), p.order))
    keep = {p.name: p for p in ranked[: MAX_PROGRAMS - 1]}
    rest = Program(OTHERS, 10**6)
    for p in ranked[MAX_PROGRAMS - 1 :]:
        rest.connections |= p.connections
        rest.published.update(p.published)
        rest.received.update(p.received)
        rest.got.update(p.got)
        rest.consumers += p.consumers
    keep[OTHERS] = rest
    return keep


def has_left(state: FlowState, p: Program) -> bool:
    """All its connections have closed (never for the "other programs" box)."""
    if p.name == OTHERS or not p.connections:
        return False
    return not any(state.clients.is_open(c) for c in p.connections)


def describe(p: Program, left: bool) -> tuple[list[str], str]:
    """The lines of a program's box, most important first, and the whole story for hover."""
    lines: list[str] = []
    story: list[str] = []
    if is_helper(p.name):
        lines.append(_("the tutorial's own"))
    if p.name == OTHERS:
        lines.append(_("{n} connections").format(n=len(p.connections)))
    sent = sum(p.published.values())
    if sent:
        lines.append(_("published {sent}").format(sent=sent))
        story.append(
            _("published ")
            + ", ".join(
                _("{n} to {exchange}").format(n=n, exchange=x or _("(default)"))
                for x, n in sorted(p.published.items())
            )
        )
    consumers = [(c, "") for c in p.consumers]
    consumers += [(c, _(" · ended")) for c in _distinct(p.ended, p.consumers)]
    for c, ended in consumers[:MAX_CONSUMER_LINES]:
        ack = _("manual ack") if c.ack_required else _("auto ack")
        prefetch = (
            _("prefetch {n}").format(n=c.prefetch) if c.prefetch else _("no prefetch limit")
        )
        lines.append(_("consumer {tag}{ended}").format(tag=c.tag, ended=ended))
        lines.append(f"{prefetch} · {ack}")
        story.append(
            _("consumer {tag} on {queue} (channel {channel}, {prefetch}, {ack})").format(
                tag=c.tag, queue=c.queue, channel=c.channel, prefetch=prefetch, ack=ack
            )
            + (_(" has ended") if ended else "")
        )
    if len(consumers) > MAX_CONSUMER_LINES:
        lines.append(_("+{n} more consumers").format(n=len(consumers) - MAX_CONSUMER_LINES))
        story += [
            _("consumer {tag} on {queue}").format(tag=c.tag, queue=c.queue)
            for c, _e in consumers[MAX_CONSUMER_LINES:]
        ]
    received = sum(p.received.values())
    got = sum(p.got.values())
    if received:
        shown = _("basic_get {n}") if got == received else _("received {n}")
        lines.append(shown.format(n=received))
        story.append(
            _("received {n}").format(n=received)
            + (_(" ({got} by basic_get)").format(got=got) if got else "")
            + ": "
            + ", ".join(
                _("{n} from {queue}").format(n=n, queue=q) for q, n in sorted(p.received.items())
            )
        )
    if left:
        lines.append(_("left"))
        story.append(_("its connections have closed; its counts stay until the diagram is reset"))
    addresses = sorted(client_address(c) for c in p.connections)
    where = f" ({', '.join(addresses[:3])}{' …' if len(addresses) > 3 else ''})"
    return lines, f"{p.name}{where}: " + "; ".join(story)


def _distinct(consumers: list[Consumer], live: list[Consumer]) -> list[Consumer]:
    """One line per consumer tag and queue: a program that consumed again in a later cell
    (a new connection, the same tag) is one consumer to the learner."""
    seen = {(c.queue, c.tag) for c in live}
    out = []
    for c in consumers:
        if (c.queue, c.tag) not in seen:
            seen.add((c.queue, c.tag))
            out.append(c)
    return out
