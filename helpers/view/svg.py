"""Drawing the flow diagram as SVG (with SMIL animation) and its log of recent messages.

Everything from messages and the broker (bodies, keys, headers, names) goes through
`esc()`.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from typing import Any

from helpers.flow.state import DEFAULT_EXCHANGE, FlowState, Message
from helpers.flow.topology import client_address
from helpers.view.layout import MARGIN, NODE_H, NODE_W, ROW_GAP, Layout
from helpers.view.text import (
    binding_label,
    connection_label,
    message_body,
    message_headers,
    producer_label,
)

ANIMATION_S = 1.4  # how long a dot travels; messages older than this are not animated
MAX_DOTS = 40  # dots per render; more messages than that are summed up as "+N"
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


def _curve(a: tuple[float, float], b: tuple[float, float]) -> str:
    mx = (a[0] + b[0]) / 2
    return f"M{a[0]:.0f},{a[1]:.0f} C{mx:.0f},{a[1]:.0f} {mx:.0f},{b[1]:.0f} {b[0]:.0f},{b[1]:.0f}"


def _box(
    lay: Layout,
    node: tuple[str, Any],
    kind: str,
    title: str,
    line1: str,
    line2: str,
    css: str,
    line3: str = "",
    program: str | None = None,
    faded: float = 0.0,
) -> str:
    """A box with a bold first line; the full `title` shows on hover. Producer and consumer
    boxes of one connection (`program`) share a coloured stripe, so one program's two sides
    read as one; a box whose connection has closed fades out."""
    x, y = lay.pos[node]
    fill, stroke = COLORS[kind]
    opacity = f' opacity="{1 - 0.7 * faded:.2f}"' if faded else ""
    stripe = ""
    if program is not None:
        stripe = (
            f'<rect class="program" x="{x:.0f}" y="{y + 4:.0f}" width="5" height="{NODE_H - 8}" '
            f'rx="2" fill="{PROGRAM_COLORS[lay.programs.get(program, 0) % len(PROGRAM_COLORS)]}"/>'
        )
    third = (
        f'<text x="{x + 10:.0f}" y="{y + 44:.0f}" font-size="10" fill="#6b7280">'
        f"{esc(_clip(line3, 26))}</text>"
        if line3
        else ""
    )
    return (
        f'<g class="{css}" data-name="{esc(title)}"{opacity}><title>{esc(title)}</title>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>{stripe}'
        f'<text x="{x + 10:.0f}" y="{y + 17:.0f}" font-size="12" font-weight="600" '
        f'fill="#111827">{esc(_clip(line1))}</text>'
        f'<text x="{x + 10:.0f}" y="{y + 31:.0f}" font-size="11" fill="#4b5563">'
        f"{esc(_clip(line2, 24))}</text>{third}</g>"
    )


LABEL_LINE = 12  # px between stacked labels
BLOCKED_TAG_W = 50  # the "blocked" tag on a producer's box
LABEL_CHARS = 16  # what fits between two columns at font-size 10

PROGRAM_COLORS = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d")


def _reply_depth(lay: Layout, ay: float, by: float) -> float:
    """How far into the gutter a reply loop reaches: longer loops further out, so that
    loops into one caller nest instead of running over each other."""
    rows = abs(ay - by) / (NODE_H + ROW_GAP)
    return min(lay.gutter - 6, 18 + 14 * rows)


def _reply_path(lay: Layout, replier: tuple[str, int], caller: tuple[str, int]) -> str:
    """A loop out of the replier's box and into the caller's, in the gutter left of both."""
    (ax, ay), (bx, by) = lay.left(("p", replier)), lay.left(("p", caller))
    far = min(ax, bx) - _reply_depth(lay, ay, by) * 1.33  # a cubic reaches 3/4 of it
    return f"M{ax:.0f},{ay:.0f} C{far:.0f},{ay:.0f} {far:.0f},{by:.0f} {bx:.0f},{by:.0f}"


def _reply_edge(lay: Layout, replier: tuple[str, int], caller: tuple[str, int], n: int) -> str:
    """Direct reply-to: the reply goes from the replying program to the caller, no queue.

    The count sits where the loop leaves the replier, just left of its box: each replier
    has its own row, so two loops' counts never meet.
    """
    ax, ay = lay.left(("p", replier))
    return (
        f'<g class="edge reply"><title>direct reply-to: {n} repl{"y" if n == 1 else "ies"} '
        f"sent straight to the caller's channel, through no queue</title>"
        f'<path d="{_reply_path(lay, replier, caller)}" fill="none" stroke="#059669" '
        f'stroke-width="2" stroke-dasharray="5,4" marker-end="url(#reply-arrow)"/>'
        f'<text x="{ax - 4:.0f}" y="{ay - 5:.0f}" font-size="10" text-anchor="end" '
        f'fill="#065f46" paint-order="stroke" stroke="#fff" stroke-width="3">reply · {n}</text>'
        "</g>"
    )


def _edge(
    a: tuple[float, float],
    b: tuple[float, float],
    label: str,
    count: int,
    dashed: bool = False,
    css: str = "edge",
    slot: int | None = None,
) -> str:
    """A curve from a to b, labelled with `label` and the count of messages it carried.

    With `slot` the label sits just before b, above the curve's end (the n-th label into b
    one line higher): edges fanning out of one exchange are far apart there, while at
    their middles, all near the exchange, their labels would be drawn over each other.
    """
    color = "#6b7280" if count else "#d1d5db"
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    hover = f"<title>{esc(label)}</title>" if label else ""  # the full label, however clipped
    out = (
        f'<g class="{css}">{hover}<path d="{_curve(a, b)}" fill="none" stroke="{color}" '
        f'stroke-width="{2 if count else 1.2}"{dash}/>'
    )
    # Before a box the label has the gap between columns; the full label shows on hover.
    room = 22 if slot is None else LABEL_CHARS - (len(str(count)) + 3 if count else 0)
    text = " · ".join(t for t in (_clip(label, room), str(count) if count else "") if t)
    if text:
        if slot is None:
            x, y, anchor = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2 - 4, "middle"
        else:
            x, y, anchor = b[0] - 6, b[1] - 5 - LABEL_LINE * slot, "end"
        out += (
            f'<text class="label" x="{x:.0f}" y="{y:.0f}" font-size="10" '
            f'text-anchor="{anchor}" fill="#374151" paint-order="stroke" stroke="#fff" '
            f'stroke-width="3">{esc(text)}</text>'
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
    lay = Layout(state, now)
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
    for replier, caller, n in lay.direct_replies:
        parts.append(_reply_edge(lay, replier, caller, n))
    # Several bindings between the same two nodes (a queue bound with "info" and "error")
    # share one edge and one label, "error | info", rather than labels drawn on each other.
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for b in lay.bindings:
        labels = grouped.setdefault((b.source, b.destination_type, b.destination), [])
        label = binding_label(state, b)
        args = dict(b.arguments)
        if label and "x-match" in args:
            # A headers binding leads with its mode, which clipping must not cut off.
            mode = args.pop("x-match")
            label = f"{mode}: " + ", ".join(f"{k}={v}" for k, v in args.items())
        if label and label not in labels:
            labels.append(label)
    slots: Counter = Counter()  # labels already placed before each destination box
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
                    slot=slots[dst],
                )
            )
            slots[dst] += 1
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
                    slot=slots[("x", alt)],
                )
            )
            slots[("x", alt)] += 1
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
    blocked = dict(state.topology.blocked)
    for client in lay.producers:
        label = producer_label(state, client)
        program = connection_label(state, client)
        parts.append(
            _box(
                lay,
                ("p", client),
                "producer",
                f"{label}: {program} ({client[0]}) channel {client[1]}",
                program,
                f"{label} · channel {client[1]}",
                "producer",
                program=client[0],
                faded=state.fading(client, lay.now),
            )
        )
        if client[0] in blocked:
            parts.append(_blocked_tag(lay, ("p", client), blocked[client[0]]))
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
                f"consumer {c.tag} on {c.queue}, {connection_label(state, (c.connection, 0))} "
                f"channel {c.channel} ({ack}, {prefetch})",
                connection_label(state, (c.connection, c.channel)),
                f"{c.tag} · ch {c.channel}",
                "consumer",
                line3=f"{prefetch}, {ack}",
                program=c.connection,
            )
        )
    for q, client in lay.getters:
        tag = state.former_consumer(q, client)
        parts.append(
            _box(
                lay,
                ("g", (q, client)),
                "consumer",
                f"{'consumer ' + tag + ' (it has left)' if tag else 'basic_get'}: "
                f"{connection_label(state, client)} ({client[0]}) channel {client[1]}",
                connection_label(state, client),
                f"{tag} (left) · ch {client[1]}" if tag else f"basic_get · channel {client[1]}",
                "consumer getter",
                program=client[0],
                faded=state.fading(client, lay.now),
            )
        )
    if animate:
        parts.extend(_dots(state, lay, now))
    t = state.totals()
    caption = (
        f"published {t['published']} · routed {t['routed']} · unroutable {t['unroutable']} · "
        f"delivered {t['delivered']} · redelivered {t['redelivered']}"
    )
    legend = (
        "routed counts copies (a message placed in 3 queues counts 3) · unroutable: dropped "
        "by an exchange · delivered: handed to a consumer or basic_get"
    )
    parts.append(
        f'<text class="totals" x="{MARGIN}" y="{lay.height - 22:.0f}" font-size="11" '
        f'fill="#374151"><title>{esc(legend)}</title>{esc(caption)}</text>'
        f'<text class="legend" x="{MARGIN}" y="{lay.height - 8:.0f}" font-size="10" '
        f'fill="#6b7280">{esc(legend)}</text>'
    )
    if not (lay.exchanges or lay.queues):
        parts.append(
            f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="12" fill="#6b7280">'
            f"nothing named {esc(state.prefix)}… yet: declare an exchange or a queue</text>"
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-svg" '
        f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" width="{lay.width:.0f}" '
        f'style="max-width:100%;height:auto;font-family:sans-serif">{_defs(lay)}'
        f'{"".join(parts)}</svg>'
    )
    return f'<div class="flowdiagram">{svg}{_blocked_note(state, lay)}{_log(state)}</div>'


def _blocked_tag(lay: Layout, node: tuple[str, Any], how: str) -> str:
    """A red "blocked" tag on a producer's box whose connection a resource alarm blocks.

    `how` is the connection's state in the management API: "blocked" (it published during
    the alarm, and the broker stopped reading it) or "blocking" (its next publish will be).
    """
    x, y = lay.pos[node]
    why = (
        "the broker stopped reading this connection: it published during a resource alarm, "
        "and waits until the alarm clears"
        if how == "blocked"
        else "a resource alarm is on: this connection's next publish waits until it clears"
    )
    left = x + NODE_W - BLOCKED_TAG_W - 4
    return (
        f'<g class="blocked-tag" data-state="{esc(how)}"><title>{esc(why)}</title>'
        f'<rect x="{left:.0f}" y="{y - 8:.0f}" width="{BLOCKED_TAG_W}" height="16" rx="4" '
        'fill="#dc2626"/>'
        f'<text x="{left + BLOCKED_TAG_W / 2:.0f}" y="{y + 4:.0f}" font-size="10" '
        'font-weight="600" text-anchor="middle" fill="#fff">blocked</text></g>'
    )


def _blocked_note(state: FlowState, lay: Layout) -> str:
    """One red line under the picture naming the connections a resource alarm holds up that
    have no box of their own (a connection's first publish never reaches an exchange while
    it is blocked, so the firehose has not shown it)."""
    drawn = {client[0] for client in lay.producers}
    names = sorted(
        {
            state.connection_name(name) or client_address(name)
            for name, how in state.topology.blocked
            if how == "blocked" and name not in drawn
        }
    )
    if not names:
        return ""
    return (
        '<div class="flow-blocked" style="font:12px sans-serif;color:#dc2626">'
        f"blocked by the broker (a resource alarm), publishes waiting: {esc(', '.join(names))}"
        "</div>"
    )


def _defs(lay: Layout) -> str:
    """The arrowhead that shows which end of a reply loop is the caller."""
    if not lay.direct_replies:
        return ""
    return (
        '<defs><marker id="reply-arrow" viewBox="0 0 8 8" refX="7" refY="4" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#059669"/></marker></defs>'
    )


def _dots(state: FlowState, lay: Layout, now: float) -> list[str]:
    out: list[str] = []
    skipped = 0
    for m in reversed(state.recent):
        age = now - m.at
        if age >= ANIMATION_S or age < -1:
            break
        if len(out) >= MAX_DOTS:
            skipped += 1
            continue
        title = f"{m.exchange or '(default)'} [{m.routing_key}] {message_body(m)}"
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
                (ax, ay), (bx, by) = lay.left(("p", m.client)), lay.left(("p", caller))
                far = min(ax, bx) - _reply_depth(lay, ay, by)  # along the loop
                pts = [(ax, ay), (far, ay), (far, by), (bx, by)]
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
    body = f"{esc(message_body(m))} ({m.size} B)"
    x = esc(m.exchange or "(default)")
    key = esc(m.routing_key)
    headers = message_headers(m)
    headers = f" headers {esc(headers)}" if headers else ""
    if m.kind == "deliver":
        again = " (redelivered)" if m.redelivered else ""
        return f"delivered from {esc(m.queues[0])}{again}: {body}"
    if m.kind == "reply":
        callers = [c for (r, c) in state.direct_replies if r == m.client]
        to = esc(producer_label(state, callers[-1])) if callers else "the caller"
        return f"{esc(producer_label(state, m.client))} → direct reply-to → {to}: {body}"
    where = ", ".join(esc(q) for q in m.queues) if m.queues else None
    if where is None:
        where = "elsewhere (outside the prefix)" if m.hidden_routes else "nowhere: unroutable"
    who = esc(producer_label(state, m.client))
    return f"{who} → {x} [{key}]{headers}: {body} → {where}"
