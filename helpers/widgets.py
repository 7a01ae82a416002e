"""The live message-flow diagram and the publish panel, for notebooks.

The diagram shows what the real broker did: the topology comes from the management API,
and each message's path from the firehose (`routed_queues`), never from routing rules
re-implemented in Python. It is a stock `ipywidgets.HTML` holding inline SVG (SMIL
animations), so it needs no JupyterLab build, and its last state is saved with the notebook.

Use it in a chapter like this::

    from helpers.widgets import FlowDiagram

    diagram = FlowDiagram(broker, prefix="ch04.")  # only names starting with ch04.
    diagram                                         # last expression: shows the live diagram

    channel.basic_publish(exchange="ch04.logs", routing_key="kern.error", body=b"disk full")
    diagram.wait_until_caught_up()   # the picture now shows every message published so far

    diagram.publish_panel()          # the diagram with a form that calls basic_publish
    diagram.close()                  # firehose off (if we switched it on), trace queue gone

or as a context manager (`with FlowDiagram(broker, prefix="ch04.") as diagram: ...`).
`prefix` may also be a tuple of prefixes or exact names, to draw one section's objects, e.g.
`prefix=("ch04.fanout_logs", queue_name)` with a server-named queue (`amq.gen-...`).

What a notebook can rely on:

- Creating the diagram switches the firehose on for `broker.vhost`, and `close()` switches it
  off again unless it was on before (several diagrams, even in other kernels, share it). Its
  trace queue is exclusive and auto-delete, and is never drawn: nothing is left behind.
- `wait_until_caught_up()` blocks (a few seconds at most) until every message published
  before the call is drawn and the queue counts have settled, so the saved state is the same
  on every run. Call it at the end of every cell that publishes, acks or consumes.
- The displayed output's text/plain is the `summary()` of what was drawn when it was first
  displayed (exchanges, bindings, queues with their counts, message totals; no ids, ports or
  timings), which nbval compares. `repr(diagram)` is the current summary.
- Its text/html is a static picture, updated on each `wait_until_caught_up()`, so GitHub
  and nbviewer show the last state; `tests/nbval_sanitize.cfg` leaves it out of comparisons.
- At most ~10 renders a second reach the browser, however fast messages arrive.
- Everything from messages and the broker (bodies, keys, headers, names) is HTML-escaped.
"""

from __future__ import annotations

import atexit
import base64
import html
import json
import threading
import time
import uuid
import weakref
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ipywidgets
import pika
import pika.exceptions

from helpers.errors import explain
from helpers.flow import DEFAULT_EXCHANGE, FlowState, Message, Topology, read_topology
from helpers.management import ManagementClient
from helpers.trace import TraceEvent, Tracer

if TYPE_CHECKING:
    from helpers.broker import Broker

ANIMATION_S = 1.4  # how long a dot travels; messages older than this are not animated
MAX_DOTS = 40  # dots per render; more messages than that are summed up as "+N"
LAGGING_STATS_S = 1.2  # quorum/stream counts: unchanged this long (> a stats interval)
TOPOLOGY_EVERY_S = 1.0  # idle refresh of counts and topology from the management API
TOPOLOGY_AFTER_EVENTS_S = 0.25
STATIC_START = "<!--flow-diagram-->"
STATIC_END = "<!--/flow-diagram-->"

# -- drawing -------------------------------------------------------------------------------

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 150, 44, 100, 18, 16
COLORS = {
    "producer": ("#eef6ff", "#3b82f6"),
    "exchange": ("#fff7e6", "#d97706"),
    "queue": ("#ecfdf3", "#16a34a"),
    "consumer": ("#f5f3ff", "#7c3aed"),
}


def esc(value: Any) -> str:
    """Escape text from elsewhere (names, keys, bodies) for HTML and SVG, quotes included."""
    return html.escape(str(value), quote=True)


def _clip(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Layout:
    """Node positions: producers | exchanges (by depth) | queues | consumers."""

    def __init__(self, state: FlowState):
        self.state = state
        self.exchanges = state.visible_exchanges()
        self.queues = state.visible_queues()
        self.bindings = state.visible_bindings()
        self.alternates = state.alternate_links()
        self.consumers = state.visible_consumers()
        queue_names = {q.name for q in self.queues}
        self.producers = sorted(
            {c for (c, _x), _n in state.produced.items()}, key=lambda c: state.producers.get(c, 99)
        )
        with_consumer = {(c.queue, c.connection, c.channel) for c in self.consumers}
        self.getters = sorted(
            {
                (q, client)
                for (q, client) in state.deliveries_to
                if q in queue_names and (q, *client) not in with_consumer
            }
        )
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
        self.height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + 24 + stagger
        ncols = (max(columns) + 1) if columns else 1
        self.width = MARGIN * 2 + ncols * NODE_W + (ncols - 1) * COL_GAP
        for col, nodes in columns.items():
            total = len(nodes) * NODE_H + (len(nodes) - 1) * ROW_GAP
            shift = stagger if col_x0 < col < col_q else 0
            top = (self.height - 24 - stagger - total) / 2 + shift
            for i, node in enumerate(nodes):
                x = MARGIN + col * (NODE_W + COL_GAP)
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


def _curve(a: tuple[float, float], b: tuple[float, float]) -> str:
    mx = (a[0] + b[0]) / 2
    return f"M{a[0]:.0f},{a[1]:.0f} C{mx:.0f},{a[1]:.0f} {mx:.0f},{b[1]:.0f} {b[0]:.0f},{b[1]:.0f}"


def _box(
    lay: _Layout, node: tuple[str, Any], kind: str, title: str, line1: str, line2: str, css: str
) -> str:
    x, y = lay.pos[node]
    fill, stroke = COLORS[kind]
    return (
        f'<g class="{css}" data-name="{esc(title)}"><title>{esc(title)}</title>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        f'<text x="{x + 8:.0f}" y="{y + 18:.0f}" font-size="12" font-weight="600" '
        f'fill="#111827">{esc(_clip(line1))}</text>'
        f'<text x="{x + 8:.0f}" y="{y + 35:.0f}" font-size="11" fill="#4b5563">'
        f"{esc(_clip(line2, 24))}</text></g>"
    )


def _reply_path(lay: _Layout, replier: tuple[str, int], caller: tuple[str, int]) -> str:
    """A loop out of the replier's box and back into the caller's, right of both."""
    (ax, ay), (bx, by) = lay.right(("p", replier)), lay.right(("p", caller))
    bulge = max(ax, bx) + COL_GAP * 0.6
    return f"M{ax:.0f},{ay:.0f} C{bulge:.0f},{ay:.0f} {bulge:.0f},{by:.0f} {bx:.0f},{by:.0f}"


def _reply_edge(lay: _Layout, replier: tuple[str, int], caller: tuple[str, int], n: int) -> str:
    """Direct reply-to: the reply goes from the replying program to the caller, no queue."""
    (ax, ay), (bx, by) = lay.right(("p", replier)), lay.right(("p", caller))
    lx, ly = max(ax, bx) + COL_GAP * 0.45, (ay + by) / 2
    return (
        f'<g class="edge reply"><title>direct reply-to: {n} repl{"y" if n == 1 else "ies"} '
        f"sent straight to the caller's channel, through no queue</title>"
        f'<path d="{_reply_path(lay, replier, caller)}" fill="none" stroke="#059669" '
        f'stroke-width="2" stroke-dasharray="5,4"/>'
        f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="10" text-anchor="middle" fill="#065f46" '
        f'paint-order="stroke" stroke="#fff" stroke-width="3">reply · {n}</text></g>'
    )


def _edge(
    a: tuple[float, float],
    b: tuple[float, float],
    label: str,
    count: int,
    dashed: bool = False,
    css: str = "edge",
) -> str:
    color = "#6b7280" if count else "#d1d5db"
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    hover = f"<title>{esc(label)}</title>" if len(label) > 22 else ""  # the clipped rest
    out = (
        f'<g class="{css}">{hover}<path d="{_curve(a, b)}" fill="none" stroke="{color}" '
        f'stroke-width="{2 if count else 1.2}"{dash}/>'
    )
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    text = " · ".join(t for t in (_clip(label, 22), str(count) if count else "") if t)
    if text:
        out += (
            f'<text x="{mx:.0f}" y="{my - 4:.0f}" font-size="10" text-anchor="middle" '
            f'fill="#374151" paint-order="stroke" stroke="#fff" stroke-width="3">'
            f"{esc(text)}</text>"
        )
    return out + "</g>"


def _dead_letter_edge(queue: tuple[float, float], exchange: tuple[float, float]) -> str:
    """A dashed red link from a queue's left side back to its dead-letter exchange.

    It runs against the flow (right to left) and ends in an arrowhead at the exchange; it
    leaves and enters low on the boxes, so it stays apart from the bindings' mid-height ends.
    """
    ax, ay = queue[0], queue[1] + NODE_H - 8
    bx, by = exchange[0] + NODE_W, exchange[1] + NODE_H - 8
    mx = (ax + bx) / 2
    path = f"M{ax:.0f},{ay:.0f} C{mx:.0f},{ay:.0f} {mx:.0f},{by:.0f} {bx + 7:.0f},{by:.0f}"
    arrow = f"{bx + 8:.0f},{by - 4:.0f} {bx + 8:.0f},{by + 4:.0f} {bx:.0f},{by:.0f}"
    return (
        f'<g class="edge deadletter"><path d="{path}" fill="none" stroke="#dc2626" '
        'stroke-width="1.3" stroke-dasharray="5,4"/>'
        f'<polygon points="{arrow}" fill="#dc2626"/>'
        f'<text x="{ax - 4:.0f}" y="{ay + 12:.0f}" font-size="10" text-anchor="end" '
        'fill="#dc2626" paint-order="stroke" stroke="#fff" stroke-width="3">dead letters</text>'
        "</g>"
    )


def _dot(
    points: list[tuple[float, float]],
    age: float,
    color: str,
    title: str,
    css: str = "dot",
    vanish: bool = False,
) -> str:
    path = "M" + " L".join(f"{x:.0f},{y:.0f}" for x, y in points)
    begin = f"{-age:.2f}s"
    dur = f"{ANIMATION_S}s"
    fade = "1;1;0" if vanish else "1;1;1"
    return (
        f'<circle class="{css}" r="6" fill="{color}" stroke="#fff" stroke-width="1.5">'
        f"<title>{esc(title)}</title>"
        f'<animateMotion dur="{dur}" begin="{begin}" fill="freeze" path="{path}"/>'
        f'<animate attributeName="opacity" values="{fade}" keyTimes="0;0.8;1" dur="{dur}" '
        f'begin="{begin}" fill="freeze"/></circle>'
    )


def render_svg(state: FlowState, now: float | None = None, animate: bool = True) -> str:
    """Draw the state as one self-contained HTML fragment (inline SVG plus a short log).

    With `animate`, messages from the last ANIMATION_S seconds move as dots along the edges
    the broker used, with a negative `begin` so a re-render continues them where they were.
    Every piece of text from elsewhere goes through `esc()`.
    """
    now = time.monotonic() if now is None else now
    lay = _Layout(state)
    parts: list[str] = []
    producer_edges = Counter()
    for (client, x), n in state.produced.items():
        producer_edges[(client, x)] += n
    # Messages per drawn edge, from the broker's routed queues and the drawn paths.
    edge_counts: Counter = Counter()
    # A message crosses a link between exchanges once, however many queues it reaches
    # beyond it; the counters hold copies per queue, so such a link counts the most copies
    # any one queue received through it (per exchange published to), not their sum.
    hops: dict[tuple[str, str, str], int] = {}
    for (x, q), n in state.routed.items():
        path = state.path(x, q)
        for a, b in zip(path, path[1:], strict=False):
            hops[(x, a, b)] = max(hops.get((x, a, b), 0), n)
        if path:
            edge_counts[(path[-1], q)] += n
    for (_x, a, b), n in hops.items():
        edge_counts[(a, b)] += n
    for (client, x), n in sorted(producer_edges.items(), key=lambda kv: str(kv[0])):
        if ("p", client) in lay.pos and ("x", x) in lay.pos:
            parts.append(
                _edge(lay.right(("p", client)), lay.left(("x", x)), "", n, css="edge publish")
            )
    for (replier, caller), n in sorted(state.direct_replies.items(), key=lambda kv: str(kv[0])):
        if ("p", replier) in lay.pos and ("p", caller) in lay.pos:
            parts.append(_reply_edge(lay, replier, caller, n))
    # Several bindings between the same two nodes (a queue bound with "info" and "error")
    # share one edge and one label, "error | info", rather than labels drawn on each other.
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for b in lay.bindings:
        labels = grouped.setdefault((b.source, b.destination_type, b.destination), [])
        label = state.binding_label(b)
        args = dict(b.arguments)
        if label and "x-match" in args:
            # A headers binding leads with its mode, which clipping must not cut off.
            mode = args.pop("x-match")
            label = f"{mode}: " + ", ".join(f"{k}={v}" for k, v in args.items())
        if label and label not in labels:
            labels.append(label)
    for (source, dest_type, dest), labels in grouped.items():
        src = ("x", source)
        dst = ("q" if dest_type == "queue" else "x", dest)
        if src in lay.pos and dst in lay.pos:
            parts.append(
                _edge(
                    lay.right(src),
                    lay.left(dst),
                    " | ".join(labels),
                    edge_counts[(source, dest)],
                    css="edge binding",
                )
            )
    for src, alt in lay.alternates:
        if ("x", src) in lay.pos and ("x", alt) in lay.pos:
            parts.append(
                _edge(
                    lay.right(("x", src)),
                    lay.left(("x", alt)),
                    "alternate",
                    edge_counts[(src, alt)],
                    dashed=True,
                    css="edge alternate",
                )
            )
    for q, dlx in state.dead_letter_links():
        if ("q", q) in lay.pos and ("x", dlx) in lay.pos:
            parts.append(_dead_letter_edge(lay.pos[("q", q)], lay.pos[("x", dlx)]))
    for c in lay.consumers:
        node = ("c", (c.queue, c.tag))
        n = state.deliveries_to[(c.queue, (c.connection, c.channel))]
        parts.append(_edge(lay.right(("q", c.queue)), lay.left(node), "", n, css="edge deliver"))
    for q, client in lay.getters:
        n = state.deliveries_to[(q, client)]
        parts.append(
            _edge(lay.right(("q", q)), lay.left(("g", (q, client))), "", n, css="edge deliver")
        )
    # Nodes on top of edges.
    for client in lay.producers:
        label = state.producer_label(client)
        parts.append(
            _box(
                lay,
                ("p", client),
                "producer",
                f"{label}: {client[0]} channel {client[1]}",
                label,
                f"channel {client[1]}",
                "producer",
            )
        )
    for x in lay.exchanges:
        shown = "(default)" if x.name == DEFAULT_EXCHANGE else x.name
        parts.append(
            _box(lay, ("x", x.name), "exchange", shown, shown, f"{x.type} exchange", "exchange")
        )
        dropped = state.unroutable[x.name]
        if dropped:
            ex, ey = lay.pos[("x", x.name)]
            parts.append(
                f'<text class="unroutable" x="{ex + NODE_W - 6:.0f}" y="{ey - 4:.0f}" '
                f'font-size="11" text-anchor="end" fill="#dc2626">✕ {dropped} unroutable</text>'
            )
    for q in lay.queues:
        parts.append(
            _box(
                lay,
                ("q", q.name),
                "queue",
                q.name,
                q.name,
                f"ready {q.ready} · unacked {q.unacked}",
                "queue",
            )
        )
        qx, qy = lay.pos[("q", q.name)]
        total = q.ready + q.unacked
        if total:
            w_ready = (NODE_W - 16) * min(q.ready, 50) / 50
            w_unacked = (NODE_W - 16) * min(q.unacked, 50) / 50
            parts.append(
                f'<rect x="{qx + 8:.0f}" y="{qy + NODE_H - 6:.0f}" width="{w_ready:.0f}" '
                f'height="3" fill="#16a34a"/><rect x="{qx + 8 + w_ready:.0f}" '
                f'y="{qy + NODE_H - 6:.0f}" width="{min(w_unacked, NODE_W - 16 - w_ready):.0f}" '
                'height="3" fill="#f59e0b"/>'
            )
    for c in lay.consumers:
        ack = "manual ack" if c.ack_required else "auto ack"
        prefetch = f"prefetch {c.prefetch}" if c.prefetch else "no prefetch limit"
        parts.append(
            _box(
                lay,
                ("c", (c.queue, c.tag)),
                "consumer",
                f"consumer {c.tag} on {c.queue} ({ack}, {prefetch})",
                f"consumer {c.tag}",
                f"{prefetch}, {ack}",
                "consumer",
            )
        )
    for q, client in lay.getters:
        parts.append(
            _box(
                lay,
                ("g", (q, client)),
                "consumer",
                f"basic_get or a gone consumer: {client[0]} channel {client[1]}",
                "client (basic_get)",
                f"channel {client[1]}",
                "consumer getter",
            )
        )
    if animate:
        parts.extend(_dots(state, lay, now))
    t = state.totals()
    caption = (
        f"published {t['published']} · routed {t['routed']} · unroutable {t['unroutable']} · "
        f"delivered {t['delivered']} · redelivered {t['redelivered']}"
    )
    parts.append(
        f'<text class="totals" x="{MARGIN}" y="{lay.height - 8:.0f}" font-size="11" '
        f'fill="#374151">{esc(caption)}</text>'
    )
    if not (lay.exchanges or lay.queues):
        parts.append(
            f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="12" fill="#6b7280">'
            f"nothing named {esc(state.prefix)}… yet: declare an exchange or a queue</text>"
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-svg" '
        f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" width="{lay.width:.0f}" '
        f'style="max-width:100%;height:auto;font-family:sans-serif">{"".join(parts)}</svg>'
    )
    return f'<div class="flowdiagram">{svg}{_log(state)}</div>'


def _dots(state: FlowState, lay: _Layout, now: float) -> list[str]:
    out: list[str] = []
    skipped = 0
    for m in reversed(state.recent):
        age = now - m.at
        if age >= ANIMATION_S or age < -1:
            break
        if len(out) >= MAX_DOTS:
            skipped += 1
            continue
        title = f"{m.exchange or '(default)'} [{m.routing_key}] {m.body}"
        if m.kind == "deliver":
            q = m.queues[0]
            node = lay.consumer_node(q, m.client)
            if ("q", q) in lay.pos and node is not None:
                pts = [lay.right(("q", q)), lay.left(node)]
                out.append(_dot(pts, age, "#7c3aed", title, "dot deliver", vanish=True))
            continue
        if m.kind == "reply":
            caller = next(
                (c for (r, c) in state.direct_replies if r == m.client and ("p", c) in lay.pos),
                None,
            )
            if ("p", m.client) in lay.pos and caller is not None:
                pts = [lay.right(("p", m.client)), lay.right(("p", caller))]
                out.append(_dot(pts, age, "#059669", "reply: " + title, "dot reply", vanish=True))
            continue
        start = [lay.right(("p", m.client))] if ("p", m.client) in lay.pos else []
        if not m.queues:
            if ("x", m.exchange) in lay.pos:
                pts = start + [lay.left(("x", m.exchange)), lay.right(("x", m.exchange))]
                out.append(
                    _dot(pts, age, "#dc2626", "unroutable: " + title, "dot dropped", vanish=True)
                )
            continue
        for q in m.queues:
            path = state.path(m.exchange, q)
            pts = list(start)
            for x in path:
                if ("x", x) in lay.pos:
                    pts += [lay.left(("x", x)), lay.right(("x", x))]
            if ("q", q) in lay.pos:
                pts.append(lay.left(("q", q)))
            if len(pts) >= 2:
                out.append(_dot(pts, age, "#2563eb", title, "dot publish", vanish=True))
    if skipped:
        out.append(
            f'<text class="more" x="{lay.width - MARGIN:.0f}" y="{lay.height - 8:.0f}" '
            f'font-size="11" text-anchor="end" fill="#6b7280">+{skipped} more in flight</text>'
        )
    return out


def _log(state: FlowState, n: int = 5) -> str:
    """The last few messages as text: what they were and where the broker put them."""
    lines = []
    for m in list(state.recent)[-n:]:
        lines.append(_log_line(state, m))
    if not lines:
        return ""
    items = "".join(f"<li>{line}</li>" for line in lines)
    return (
        '<ol class="flow-log" style="font:11px monospace;color:#374151;margin:4px 0 0 0;'
        f'padding-left:18px">{items}</ol>'
    )


def _log_line(state: FlowState, m: Message) -> str:
    body = f"{esc(m.body)} ({m.size} B)"
    x = esc(m.exchange or "(default)")
    key = esc(m.routing_key)
    headers = f" headers {esc(m.headers)}" if m.headers else ""
    if m.kind == "deliver":
        again = " (redelivered)" if m.redelivered else ""
        return f"delivered from {esc(m.queues[0])}{again}: {body}"
    if m.kind == "reply":
        callers = [c for (r, c) in state.direct_replies if r == m.client]
        to = esc(state.producer_label(callers[-1])) if callers else "the caller"
        return f"{esc(state.producer_label(m.client))} → direct reply-to → {to}: {body}"
    where = ", ".join(esc(q) for q in m.queues) if m.queues else None
    if where is None:
        where = "elsewhere (outside the prefix)" if m.hidden_routes else "nowhere: unroutable"
    who = esc(state.producer_label(m.client))
    return f"{who} → {x} [{key}]{headers}: {body} → {where}"


# -- the widget ------------------------------------------------------------------------------

_live: weakref.WeakSet[FlowDiagram] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for diagram in list(_live):
        diagram.close()


class FlowDiagram:
    """A live picture of what the broker does with messages whose names start with `prefix`.

    Creating it starts a firehose consumer in a background thread; see the module docstring.
    """

    def __init__(
        self,
        broker: Broker,
        prefix: str | tuple[str, ...] = "",
        max_renders_per_s: float = 10.0,
    ):
        self.broker = broker
        self.prefix = prefix
        self.state = FlowState(prefix=prefix)
        self.widget = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        self.widget.add_class("flow-diagram-widget")
        self.renders = 0
        self.closed = False
        self._min_interval = 1.0 / max_renders_per_s
        self._lock = threading.RLock()
        self._rendered_version = -1
        self._last_render = 0.0
        self._refresh_due = 0.0
        self._display_id: str | None = None
        self._display_text = ""
        self._panel: PublishPanel | None = None
        # The background thread gets its own HTTP session; this one is for the notebook's.
        self._api = ManagementClient(broker.management_url, broker.username, broker.password)
        self._api_bg = ManagementClient(broker.management_url, broker.username, broker.password)
        self.state.set_topology(read_topology(self._api, broker.vhost))
        self.tracer = Tracer(broker, self._on_events, self._on_tick)
        self.tracer.start()
        self.state.hide_queue(self.tracer.queue)
        self._render(force=True)
        _live.add(self)

    # -- what the notebook calls -----------------------------------------------------------

    def wait_until_caught_up(self, timeout: float = 5.0) -> bool:
        """Block until every message published so far is drawn and the counts have settled.

        Bounded by `timeout` seconds. Returns True when the picture caught up. When it could
        not (a burst still draining from the firehose, counts the broker had not settled),
        it returns False and prints one line saying so, never a silently stale picture; the
        ready counts are then taken from the queues themselves. Call it at the end of a cell
        that publishes, acks or consumes, so the state saved with the notebook is the same on
        every run.
        """
        if self.closed:
            return True
        deadline = time.monotonic() + timeout
        drained = self.tracer.settle(max(0.1, deadline - time.monotonic()))
        # The queues themselves answer at once (passive declares); the API's consumer list
        # lags, and so do quorum and stream queues' counts: poll until the API agrees with
        # the queues and, where counts lag, has held still for a stats interval.
        with self._lock:
            names = [q.name for q in self.state.visible_queues()]
        previous: Topology | None = None
        still_since = time.monotonic()
        while True:
            exact = self.tracer.queue_counts(names)
            topology = read_topology(self._api, self.broker.vhost)
            if topology != previous:
                still_since = time.monotonic()
            listed = Counter(c.queue for c in topology.consumers)
            # A consumer listed before its channel's statistics arrive has no connection
            # yet, and its deliveries could not be matched to it: not settled either.
            complete = all(c.connection for c in topology.consumers)
            api = {q.name: q for q in topology.queues}
            # A quorum queue's passive declare counts a basic_get's checked-out messages as
            # consumers (seen on 4.3): its consumers are judged by the API holding still.
            agreed = (
                complete
                and all(
                    api[q].ready == ready
                    and (
                        api[q].counts_lag
                        or not topology.consumers_listed
                        or listed[q] == consumers
                    )
                    for q, (ready, consumers) in exact.items()
                    if q in api
                )
                and self.state.pending == 0
            )
            lagging = any(api[q].counts_lag for q in exact if q in api)
            held = time.monotonic() - still_since >= (LAGGING_STATS_S if lagging else 0)
            caught = agreed and topology == previous and held
            if caught or time.monotonic() > deadline:
                break
            previous = topology
            time.sleep(0.05)
        if not caught:  # at least the ready counts are the queues' own
            topology = replace(
                topology,
                queues=tuple(
                    replace(q, ready=exact[q.name][0]) if q.name in exact else q
                    for q in topology.queues
                ),
            )
        with self._lock:
            self.state.set_topology(topology)
            self._render(force=True)
        self._update_display()
        if not (caught and drained):
            print(
                f"(the diagram did not catch up within {timeout:g} s: "
                + (
                    "messages are still arriving from the firehose"
                    if not drained
                    else "the broker's statistics had not settled"
                )
                + "; what it shows may be behind)"
            )
        return caught and drained

    def summary(self) -> str:
        """The deterministic text of what is drawn now (see FlowState.summary)."""
        with self._lock:
            return self.state.summary()

    def html(self, animate: bool = False) -> str:
        """The current picture as an HTML fragment (static by default), e.g. for a report.

        The static picture is the SVG as an `<img>` (a data: URI), not inline SVG: JupyterLab
        sanitizes the HTML of an untrusted notebook (one a newcomer just opened) and drops
        inline SVG, leaving its labels as a run of text, while an image survives; so do
        GitHub and nbviewer. The animated, inline form is the live widget's.
        """
        with self._lock:
            fragment = render_svg(self.state, animate=animate)
            alt = self.state.totals()
        if animate:
            return STATIC_START + fragment + STATIC_END
        start, end = fragment.index("<svg"), fragment.index("</svg>") + len("</svg>")
        data = base64.b64encode(fragment[start:end].encode()).decode("ascii")
        caption = ", ".join(f"{k} {v}" for k, v in alt.items())
        img = (
            f'<img class="flow-static" alt="flow diagram: {esc(caption)}" '
            f'src="data:image/svg+xml;base64,{data}" style="max-width:100%"/>'
        )
        return STATIC_START + fragment[:start] + img + fragment[end:] + STATIC_END

    def publish_panel(self, show_diagram: bool = True) -> PublishPanel:
        """A form (exchange, routing key, headers, body, Publish) that calls basic_publish.

        With `show_diagram` the diagram is shown beside it, so display one or the other.
        """
        if self._panel is None:
            self._panel = PublishPanel(self, show_diagram=show_diagram)
        return self._panel

    def close(self) -> None:
        """Stop the firehose consumer, delete its queue, switch tracing off if we were last."""
        if self.closed:
            return
        self.closed = True
        _live.discard(self)
        if self._panel is not None:
            self._panel.close_connection()
        self.tracer.stop()
        with self._lock:
            self._render(force=True)

    def __enter__(self) -> FlowDiagram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self.summary()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            self._display_text = self.summary()
        display(self._bundle(), raw=True, display_id=self._display_id)

    def _bundle(self) -> dict[str, Any]:
        data = dict(self.widget._repr_mimebundle_() or {})
        data["text/plain"] = self._display_text or self.summary()
        data["text/html"] = self.html()
        return data

    def _update_display(self) -> None:
        if self._display_id is None:
            return
        from IPython.display import update_display

        update_display(self._bundle(), raw=True, display_id=self._display_id)

    # -- the background thread -------------------------------------------------------------

    def _on_events(self, events: list[TraceEvent]) -> None:
        with self._lock:
            if self.state.add_events(events):
                self._refresh_due = min(
                    self._refresh_due, time.monotonic() + TOPOLOGY_AFTER_EVENTS_S
                )

    def _on_tick(self) -> None:
        now = time.monotonic()
        if now >= self._refresh_due:
            self._refresh_due = now + TOPOLOGY_EVERY_S
            try:
                topology = read_topology(self._api_bg, self.broker.vhost)
            except Exception:  # a hiccup of the API: keep the last picture
                topology = None
            if topology is not None:
                with self._lock:
                    self.state.set_topology(topology)
        if now - self._last_render >= self._min_interval:
            with self._lock:
                self._render()

    def _render(self, force: bool = False) -> None:
        """Render if something changed (always with `force`); caller holds the lock."""
        if not force and self.state.version == self._rendered_version:
            return
        self._rendered_version = self.state.version
        self._last_render = time.monotonic()
        value = render_svg(self.state, now=self._last_render)
        if self.closed:
            value += '<div style="font:11px sans-serif;color:#6b7280">(closed)</div>'
        if value != self.widget.value:
            self.widget.value = value
            self.renders += 1


class PublishPanel(ipywidgets.HBox):
    """Choose an exchange, type a routing key, headers and a body, press Publish.

    It calls the real `channel.basic_publish` on its own connection (opened on first use and
    closed with the diagram), shows the exact code it ran, and where the broker put the
    message, read back from the firehose.
    """

    def __init__(self, diagram: FlowDiagram, show_diagram: bool = True):
        self.diagram = diagram
        self._count = 0
        self.exchange = ipywidgets.Dropdown(description="exchange")
        self.routing_key = ipywidgets.Text(description="routing key")
        self.headers = ipywidgets.Textarea(description="headers", placeholder="key=value per line")
        self.body = ipywidgets.Textarea(description="body", value="hello")
        self.button = ipywidgets.Button(description="Publish", button_style="primary")
        self.code = ipywidgets.HTML()
        self.result = ipywidgets.HTML()
        self.button.on_click(lambda _b: self.publish_from_form())
        self.refresh_exchanges()
        form = ipywidgets.VBox(
            [
                self.exchange,
                self.routing_key,
                self.headers,
                self.body,
                self.button,
                self.result,
                self.code,
            ],
            layout=ipywidgets.Layout(min_width="320px"),
        )
        children = [form, diagram.widget] if show_diagram else [form]
        super().__init__(children)

    def __repr__(self) -> str:
        return f"PublishPanel(prefix={self.diagram.prefix!r})"

    def refresh_exchanges(self) -> None:
        with self.diagram._lock:
            names = [x.name for x in self.diagram.state.visible_exchanges()]
        if DEFAULT_EXCHANGE not in names:
            names.insert(0, DEFAULT_EXCHANGE)
        options = [("(default exchange)" if n == "" else n, n) for n in names]
        current = self.exchange.value
        self.exchange.options = options
        if current in names:
            self.exchange.value = current

    def publish_from_form(self) -> str:
        try:
            headers = parse_headers(self.headers.value)
        except ValueError as exc:
            self.result.value = f'<span style="color:#dc2626">{esc(exc)}</span>'
            return str(exc)
        return self.publish(
            self.exchange.value or "", self.routing_key.value, self.body.value.encode(), headers
        )

    def publish(
        self, exchange: str, routing_key: str, body: bytes, headers: dict[str, Any] | None = None
    ) -> str:
        """Publish for real, show the code and where it went; returns the result text."""
        self._count += 1
        message_id = f"panel-{self._count}"
        props: dict[str, Any] = {"message_id": message_id}
        if headers:
            props["headers"] = headers
        args = ", ".join(f"{k}={v!r}" for k, v in props.items())
        code = (
            "channel.basic_publish(\n"
            f"    exchange={exchange!r},\n"
            f"    routing_key={routing_key!r},\n"
            f"    body={body!r},\n"
            f"    properties=pika.BasicProperties({args}),\n"
            ")"
        )
        self.code.value = f"<pre style='font-size:11px'>{esc(code)}</pre>"
        problem = self._publish(exchange, routing_key, body, pika.BasicProperties(**props))
        if problem:
            self.result.value = f'<span style="color:#dc2626">{esc(problem)}</span>'
            return problem
        if self.diagram.closed:
            text = (
                "published; the diagram is closed (the chapter's cleanup ran), so where the "
                "message went is not drawn: run the diagram's cell again to watch."
            )
        else:
            self.diagram.wait_until_caught_up(timeout=3.0)
            text = self._where(message_id)
            self.refresh_exchanges()
        self.result.value = f"<b>{esc(text)}</b>"
        return text

    def _publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> str | None:
        """Publish on a connection of its own, closed right after; None, or what went wrong.

        A connection per click: one kept open would be dropped by the broker while the
        learner reads (missed heartbeats), and the next click would fail.
        """
        params = self.diagram.broker.connection_parameters(
            client_properties={"connection_name": "tutorial publish panel"},
            connection_attempts=1,
            socket_timeout=5,
        )
        try:
            with pika.BlockingConnection(params) as connection:
                channel = connection.channel()
                channel.basic_publish(exchange, routing_key, body, properties)
                # A round trip on the same channel: if the broker refused the publish (404 no
                # exchange), its Channel.Close arrives first and raises here with its reason.
                channel.basic_qos(prefetch_count=0)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return (
                    f"the exchange {exchange!r} does not exist (any more: the chapter's cleanup "
                    "deletes it): run the cell that declares it again, then publish."
                )
            return f"the broker refused it: {exc.reply_code} {exc.reply_text}"
        except pika.exceptions.AMQPError as exc:
            return "could not publish: " + explain(exc)
        return None

    def _where(self, message_id: str) -> str:
        with self.diagram._lock:
            found = [
                m
                for m in self.diagram.state.recent
                if m.kind == "publish" and m.message_id == message_id
            ]
        if not found:
            return "not seen in the firehose (outside the diagram's prefix?)"
        m = found[-1]
        if m.queues:
            return "routed to " + ", ".join(m.queues)
        if m.hidden_routes:
            return "routed to queues outside the diagram's prefix"
        return f"unroutable: dropped by {m.exchange or '(default exchange)'}"

    def close_connection(self) -> None:
        """Nothing to close: each publish opens and closes its own connection."""


def parse_headers(text: str) -> dict[str, Any]:
    """Headers typed in the panel: a JSON object, or `key=value` lines (values stay text)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"headers: not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("headers: a JSON object is needed")
        return value
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"headers: write key=value, one per line (got {line!r})")
        out[key.strip()] = value.strip()
    return out
