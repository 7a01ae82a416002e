"""Where each box of the flow diagram goes: a pure function of the state.

Producers | exchanges (by depth of exchange-to-exchange links) | queues | consumers, one
column each; no drawing, no widgets, so it is tested without a browser.
"""

from __future__ import annotations

import time
from typing import Any

from helpers.flow.state import MAX_CLIENTS, FlowState

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 150, 50, 100, 18, 16
LEGEND_H = 40  # the totals and what they count, under the boxes
MIN_WIDTH = 700  # room for the legend
REPLY_GUTTER = 70  # left of the producers: where direct reply-to loops and labels go


class Layout:
    """Node positions: producers | exchanges (by depth) | queues | consumers."""

    def __init__(self, state: FlowState, now: float | None = None):
        self.state = state
        self.now = time.monotonic() if now is None else now
        self.exchanges = state.visible_exchanges()
        self.queues = state.visible_queues()
        self.bindings = state.visible_bindings()
        self.alternates = state.alternate_links()
        self.consumers = state.visible_consumers()
        queue_names = {q.name for q in self.queues}

        # Programs that hung up fade, then leave the picture (their counts stay in the totals).
        def here(client: tuple[str, int]) -> bool:
            return state.fading(client, self.now) < 1.0

        present = {c for (c, _x), _n in state.produced.items() if here(c)}
        # At most MAX_CLIENTS boxes: live programs first, then those that left most recently.
        keep = sorted(
            present, key=lambda c: (state.fading(c, self.now), -state.producers.get(c, 0))
        )
        self.producers = sorted(keep[:MAX_CLIENTS], key=lambda c: state.producers.get(c, 10**6))
        with_consumer = {(c.queue, c.connection, c.channel) for c in self.consumers}
        self.getters = sorted(
            {
                (q, client)
                for (q, client) in state.deliveries_to
                if q in queue_names and (q, *client) not in with_consumer and here(client)
            }
        )
        # One colour per program (connection), in order of appearance, shared by its producer
        # and consumer boxes.
        self.programs: dict[str, int] = {}
        for conn in [c[0] for c in self.producers] + [
            *(c.connection for c in self.consumers),
            *(client[0] for _q, client in self.getters),
        ]:
            self.programs.setdefault(conn, len(self.programs))
        # Direct reply-to loops from one producer box back to another: drawn left of the
        # producers, away from the publish edges and their counts on the right.
        drawn = set(self.producers)
        self.direct_replies = [
            (replier, caller, n)
            for (replier, caller), n in sorted(state.direct_replies.items(), key=str)
            if replier in drawn and caller in drawn
        ]
        self.gutter = REPLY_GUTTER if self.direct_replies else 0
        depth = {x.name: 0 for x in self.exchanges}
        links = [
            (b.source, b.destination) for b in self.bindings if b.destination_type == "exchange"
        ]
        links += self.alternates
        for _ in range(4):  # longest path, bounded so a cycle of bindings cannot loop
            for src, dst in links:
                if src in depth and dst in depth and src != dst:
                    depth[dst] = max(depth[dst], min(depth[src] + 1, 3))
        self.levels = max(depth.values(), default=0) + 1
        col_p = 0 if self.producers else -1
        col_x0 = col_p + 1
        col_q = col_x0 + self.levels
        col_c = col_q + 1
        self.pos: dict[tuple[str, Any], tuple[float, float]] = {}
        columns: dict[int, list[tuple[str, Any]]] = {}
        for c in self.producers:
            columns.setdefault(col_p, []).append(("p", c))
        for x in self.exchanges:
            columns.setdefault(col_x0 + depth[x.name], []).append(("x", x.name))
        for q in self.queues:
            columns.setdefault(col_q, []).append(("q", q.name))
        for c in self.consumers:
            columns.setdefault(col_c, []).append(("c", (c.queue, c.tag)))
        for g in self.getters:
            columns.setdefault(col_c, []).append(("g", g))
        rows = max((len(v) for v in columns.values()), default=1)
        # Exchanges behind other exchanges sit half a row lower, so that a binding which
        # passes their column on its way to a queue is not hidden behind their box.
        stagger = (NODE_H + ROW_GAP) / 2 if self.levels > 1 else 0
        self.height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + LEGEND_H + stagger
        ncols = (max(columns) + 1) if columns else 1
        self.width = max(
            MIN_WIDTH, self.gutter + MARGIN * 2 + ncols * NODE_W + (ncols - 1) * COL_GAP
        )
        for col, nodes in columns.items():
            total = len(nodes) * NODE_H + (len(nodes) - 1) * ROW_GAP
            shift = stagger if col_x0 < col < col_q else 0
            top = (self.height - LEGEND_H - stagger - total) / 2 + shift
            for i, node in enumerate(nodes):
                x = MARGIN + self.gutter + col * (NODE_W + COL_GAP)
                self.pos[node] = (x, top + i * (NODE_H + ROW_GAP))

    def left(self, node: tuple[str, Any]) -> tuple[float, float]:
        x, y = self.pos[node]
        return x, y + NODE_H / 2

    def right(self, node: tuple[str, Any]) -> tuple[float, float]:
        x, y = self.pos[node]
        return x + NODE_W, y + NODE_H / 2

    def consumer_node(self, queue: str, client: tuple[str, int]) -> tuple[str, Any] | None:
        for c in self.consumers:
            if c.queue == queue and (c.connection, c.channel) == client:
                return ("c", (c.queue, c.tag))
        node = ("g", (queue, client))
        return node if node in self.pos else None
