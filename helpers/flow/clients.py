"""Who the clients are: the programs behind the connections, and their consumers.

Two sources, the better one first:

- the broker's **client events** (`helpers.flow.lifecycle.ClientEvent`, from the
  `rabbitmq_event_exchange` plugin): a connection's name the moment it opens, each consumer
  the moment it starts, each close as it happens; in the same queue as the trace messages,
  so a consumer is known before its first delivery is counted;
- the **management API** (`helpers.flow.topology`), which lists connections and consumers
  from statistics gathered about once a second: the fallback where the plugin is missing,
  and the source for what existed before the diagram started.

A *program* is what the learner's code called its connection (`connection_name`), else the
connection's address. Every cell of a chapter opens its own connection under the chapter's
name, so all of them are one program, one box. Two connections open at the same time under
one name (two worker threads) are two programs, "name" and "name #2"; that is known only
from client events, so without them one name is one program.
"""

from __future__ import annotations

import re

from helpers.flow.lifecycle import ClientEvent
from helpers.flow.topology import Consumer, Topology, client_address

# The tutorial's own connections (chapter checks, the publish panel, the chapter claim, the
# diagram's firehose): drawn in a quieter style, and hidden on request.
HELPER_NAMES = re.compile(r"^(tutorial\b|helpers\.|ch\d\d\.check$)")
AMQP_091 = "AMQP 0-9-1"  # pika's protocol: programs of other protocols are labelled
MAX_KNOWN = 10_000  # connections and consumers remembered; beyond, the oldest are forgotten


def is_helper(program: str) -> bool:
    """Whether a program is one of the tutorial's own connections (see HELPER_NAMES)."""
    return bool(HELPER_NAMES.match(program))


class Clients:
    """Names, open and closed connections, and consumers, from client events and the API."""

    def __init__(self) -> None:
        self.live = False  # client events arrive: closes and consumers are known at once
        self._given: dict[str, str] = {}  # connection -> the connection_name it gave
        self._program: dict[str, str] = {}  # connection -> its program, once named
        # connection -> its protocol ("MQTT 5-0") and the node it is connected to
        self._protocol: dict[str, str] = {}
        self.nodes: dict[str, str] = {}
        self._open: set[str] = set()  # connections known to be open
        self.closed_at: dict[str, float] = {}  # connection -> when it was seen closed
        self._live_consumers: dict[tuple[str, str, int, str], Consumer] = {}
        # Every consumer ever seen on a (queue, connection, channel): deliveries there came
        # from a consumer, not basic_get, even after it has gone.
        self._ever: dict[tuple[str, str, int], dict[str, Consumer]] = {}

    # -- feeding it ---------------------------------------------------------------------------

    def apply(self, event: ClientEvent, now: float) -> bool:
        """Take one client event; returns whether anything the diagram shows changed."""
        self.live = True
        conn = event.connection
        kind = event.kind
        if kind == "connection.created" and conn:
            self._open.add(conn)
            self.closed_at.pop(conn, None)
            self._where(conn, event.protocol, event.node)
            if event.name:
                self._name(conn, event.name)
            return True
        if kind == "connection.closed" and conn:
            self._open.discard(conn)
            if len(self.closed_at) >= MAX_KNOWN:  # a busy broker closes many: forget the oldest
                self.closed_at.pop(next(iter(self.closed_at)))
            self.closed_at[conn] = now
            for key in [k for k in self._live_consumers if k[1] == conn]:
                del self._live_consumers[key]
            return True
        if kind == "consumer.created":
            seen = Consumer(
                event.queue,
                event.consumer_tag,
                event.prefetch,
                event.ack_required,
                conn,
                event.channel,
            )
            self._consumer(seen)
            return True
        if kind == "consumer.deleted":
            key = (event.queue, conn, event.channel, event.consumer_tag)
            gone = self._live_consumers.pop(key, None)
            if gone is None and not conn:  # the channel was not known: match by queue and tag
                for k in [k for k in self._live_consumers if (k[0], k[3]) == (key[0], key[3])]:
                    del self._live_consumers[k]
            return True
        return False

    def note_topology(self, topology: Topology, now: float, connections: set[str]) -> bool:
        """Take what the API lists: names, consumers, and (without client events) closes.

        `connections` are the connections the diagram has counted something from: without
        client events, one the API no longer lists (or never listed: it lived less than a
        second) has closed. Returns whether anything changed.
        """
        changed = False
        for conn, protocol, node in topology.protocols:
            self._where(conn, protocol, node)
        for conn, label in topology.connections:
            if label != client_address(conn) and conn not in self._given:
                self._name(conn, label)
                changed = True
        for c in topology.consumers:
            key = (c.queue, c.connection, c.channel, c.tag)
            # An event that could not name the consumer's channel (it opened before the
            # diagram) said (queue, "", 0, tag): the API's listing names it.
            unnamed = self._live_consumers.pop((c.queue, "", 0, c.tag), None)
            if unnamed is not None:
                self._ever.get((c.queue, "", 0), {}).pop(c.tag, None)
                changed = True
            if key not in self._live_consumers:
                self._consumer(
                    Consumer(
                        c.queue, c.tag, c.prefetch, c.ack_required, c.connection, c.channel
                    )
                )
                changed = True
        if not self.live:
            listed = {c.queue + "\0" + c.tag for c in topology.consumers}
            for key in [k for k in self._live_consumers if k[0] + "\0" + k[3] not in listed]:
                del self._live_consumers[key]
                changed = True
        if self.live or not topology.connections_listed:
            return changed
        open_now = {conn for conn, _label in topology.connections}
        for conn in connections | self._open:
            if conn in open_now:
                self._open.add(conn)
                changed = self.closed_at.pop(conn, None) is not None or changed
            elif conn not in self.closed_at:
                self._open.discard(conn)
                self.closed_at[conn] = now
                changed = True
        return changed

    def _name(self, conn: str, given: str) -> None:
        if len(self._given) >= MAX_KNOWN:
            self._given.pop(next(iter(self._given)))
            self._program.pop(next(iter(self._program)), None)
        self._given[conn] = given
        program = given
        if self.live:  # two connections open at once under one name are two programs
            taken = {p for c, p in self._program.items() if c != conn and c not in self.closed_at}
            n = 1
            while program in taken:
                n += 1
                program = f"{given} #{n}"
        self._program[conn] = program

    def _where(self, conn: str, protocol: str, node: str) -> None:
        if len(self.nodes) >= MAX_KNOWN:
            self.nodes.pop(next(iter(self.nodes)))
            self._protocol.pop(next(iter(self._protocol)), None)
        if protocol:
            self._protocol[conn] = protocol
        if node:
            self.nodes[conn] = node

    def _consumer(self, seen: Consumer) -> None:
        if not seen.connection and any(
            (q, t) == (seen.queue, seen.tag) for q, _c, _ch, t in self._live_consumers
        ):
            return  # known already, with its channel
        if len(self._live_consumers) < MAX_KNOWN:
            self._live_consumers[(seen.queue, seen.connection, seen.channel, seen.tag)] = seen
        if len(self._ever) < MAX_KNOWN:
            self._ever.setdefault((seen.queue, seen.connection, seen.channel), {})[seen.tag] = seen

    # -- reading it -----------------------------------------------------------------------------

    def program(self, connection: str) -> str:
        """The program a connection belongs to: its given name (see the module docstring),
        else its address; with its protocol when that is not AMQP 0-9-1 ("sensor · MQTT 5-0")."""
        name = self._program.get(connection) or client_address(connection)
        protocol = self._protocol.get(connection, "")
        return f"{name} · {protocol}" if protocol and protocol != AMQP_091 else name

    def protocol(self, connection: str) -> str:
        """The connection's protocol as the broker names it ("" when not known yet)."""
        return self._protocol.get(connection, "")

    def node(self, connection: str) -> str:
        """The node the connection is connected to ("" when not known yet)."""
        return self.nodes.get(connection, "")

    def given_name(self, connection: str) -> str | None:
        return self._given.get(connection)

    def is_open(self, connection: str) -> bool:
        return connection not in self.closed_at

    def consumers(self) -> list[Consumer]:
        """The consumers that exist now."""
        return sorted(
            self._live_consumers.values(), key=lambda c: (c.queue, c.connection, c.channel, c.tag)
        )

    def consumers_ever(self, queue: str, connection: str, channel: int) -> list[Consumer]:
        """Every consumer seen on this queue and channel, now or before."""
        found = self._ever.get((queue, connection, channel))
        if not found and connection:
            # A consumer whose channel the event did not name (it opened before the diagram).
            found = {
                c.tag: c
                for (q, conn, _ch), seen in self._ever.items()
                if q == queue and not conn
                for c in seen.values()
            }
        return list((found or {}).values())
