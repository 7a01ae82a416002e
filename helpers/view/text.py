"""The words the diagram shows: labels, previews and the summary that nbval compares.

Plain text, not escaped: whoever puts it into HTML or SVG escapes it (`svg.esc`). Kept
apart from `helpers.flow.state`, which counts, so that wording can change (or be
translated) without touching what is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from helpers.flow.state import DEFAULT_EXCHANGE, Client, FlowState, Message
from helpers.flow.topology import Binding, client_address
from helpers.i18n import _

PREVIEW_CHARS = 40  # characters of a body shown in the log and on hover
PREVIEW_BYTES = 16  # bytes of a binary body shown as hex
HEADER_CHARS = 20  # characters of each header value shown


def body_preview(body: bytes, limit: int = PREVIEW_CHARS, size: int | None = None) -> str:
    """A short, plain-text preview of a body: text if it is UTF-8, else hex plus the size.

    Only the first few bytes are looked at (it runs for every message of a burst). `size` is
    the whole body's length when `body` is already cut short.
    """
    size = len(body) if size is None else size
    head = body[: limit * 4]  # at most 4 bytes a character
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut in two at the end of `head` is not binary data.
        cut = exc.start >= len(head) - 3 and (len(head) < size or len(head) < len(body))
        text = head[: exc.start].decode("utf-8") if cut else None
    if text is not None and all(c.isprintable() or c in "\n\t" for c in text[:limit]):
        text = text.replace("\n", "↵").replace("\t", " ")
        long = len(text) > limit or len(head) < size
        return text[: limit - 1] + "…" if long else text
    more = "…" if size > PREVIEW_BYTES else ""
    return f"0x {body[:PREVIEW_BYTES].hex(' ')}{more} ({size} bytes)"


def message_body(m: Message) -> str:
    """A plain-text preview of a recent message's body."""
    return body_preview(m.payload, size=m.size)


def message_headers(m: Message) -> str:
    """A recent message's first headers, `key=value` with long values cut short."""
    return ", ".join(f"{k}={_short(v)}" for k, v in m.raw_headers)


MQTT_QUEUE = "mqtt-subscription-"  # the queues the MQTT plugin declares for subscriptions


def mqtt_topic(routing_key: str) -> str:
    """A topic exchange's routing or binding key as an MQTT subscriber sees it: each `.` is a
    `/`, `*` is `+` (what the MQTT plugin does on delivery; seen on 4.3.6 and 3.10.8)."""
    return "/".join("+" if word == "*" else word for word in routing_key.split("."))


def binding_label(state: FlowState, binding: Binding) -> str:
    """What to write on a binding: its key, its header arguments, nothing for fanout; an MQTT
    subscription's key with its MQTT topic beside it."""
    types = {e.name: e.type for e in state.topology.exchanges}
    if types.get(binding.source) == "fanout":
        return ""
    if binding.destination.startswith(MQTT_QUEUE) and not binding.arguments:
        return f"{binding.key} (MQTT {mqtt_topic(binding.key)})"
    return binding.label


def caption(totals: dict[str, int]) -> str:
    """The totals in one line, under the picture."""
    t = totals
    line = (
        _(
            "published {published} · routed {routed} · unroutable {unroutable} · delivered "
            "{delivered} · redelivered {redelivered}"
        ).format(
            published=t["published"],
            routed=t["routed"],
            unroutable=t["unroutable"],
            delivered=t["delivered"],
            redelivered=t["redelivered"],
        )
    )
    if "direct_replies" in t:
        line += _(" · direct replies {n}").format(n=t["direct_replies"])
    if "housekeeping_hidden" in t:
        line += _(" · housekeeping hidden {n}").format(n=t["housekeeping_hidden"])
    return line


def log_line(state: FlowState, m: Message, program: Callable[[Client], str]) -> str:
    """One recent message in the log: who sent it where, and where the broker put it."""
    body = f"{message_body(m)} ({m.size} B)"
    who = program(m.client)
    if m.kind == "deliver":
        again = _(" (redelivered)") if m.redelivered else ""
        return f"{m.queues[0]} → {who}{again}: {body}"
    if m.kind == "reply":
        callers = [c for (r, c) in state.direct_replies if r == m.client]
        to = program(callers[-1]) if callers else _("the caller")
        return f"{who} → direct reply-to → {to}: {body}"
    headers = message_headers(m)
    headers = _(" headers {headers}").format(headers=headers) if headers else ""
    if "· MQTT" in who:  # published over MQTT: the topic it gave, beside the routing key
        headers = _(" (MQTT topic {topic})").format(topic=mqtt_topic(m.routing_key)) + headers
    where = ", ".join(m.queues) if m.queues else None
    if where is None:
        outside = _("elsewhere (outside the prefix)")
        where = outside if m.hidden_routes else _("nowhere: unroutable")
    exchange = m.exchange or _("(default)")
    return f"{who} → {exchange} [{m.routing_key}]{headers}: {body} → {where}"


def blocked_why(how: str) -> str:
    """What a "blocked" tag means, for its hover: the connection's state in the API."""
    if how == "blocked":
        return (
            _(
                "the broker stopped reading this connection: it published during a resource "
                "alarm, and waits until the alarm clears"
            )
        )
    return _("a resource alarm is on: this connection's next publish waits until it clears")


def blocked_note(state: FlowState, drawn: set[str]) -> str:
    """One line naming the connections a resource alarm holds up that have no box (a
    blocked connection's first publish never reaches an exchange, so the firehose has not
    shown it); "" when there are none."""
    names = sorted(
        {
            state.connection_name(name) or client_address(name)
            for name, how in state.topology.blocked
            if how == "blocked" and name not in drawn
        }
    )
    if not names:
        return ""
    return _("blocked by the broker (a resource alarm), publishes waiting: ") + ", ".join(names)


def summary(state: FlowState) -> str:
    """A short deterministic text of what is drawn: no ids, ports, tags or timings.

    This is the diagram's text/plain, which nbval compares.
    """
    lines = [f"FlowDiagram(prefix={state.prefix!r})"]
    bindings = state.visible_bindings()
    alternates = dict(state.alternate_links())
    for x in state.visible_exchanges():
        routes = [
            f"{binding_label(state, b)} -> {b.destination}".lstrip()
            for b in bindings
            if b.source == x.name
        ]
        if x.name in alternates:
            routes.append(f"unroutable -> {alternates[x.name]}")
        shown = "(default)" if x.name == DEFAULT_EXCHANGE else x.name
        lines.append(
            f"  exchange {shown} ({x.type})" + (": " + "; ".join(routes) if routes else "")
        )
    consumers = Counter(c.queue for c in state.visible_consumers())
    for q in state.visible_queues():
        counts = f"ready={q.ready} unacked={q.unacked} consumers={consumers[q.name]}"
        if q.dead_letter_exchange is not None:
            dlx = q.dead_letter_exchange or "(default)"
            counts += f"; dead letters -> {dlx}"
        lines.append(f"  queue {q.name}: {counts}")
    totals = " ".join(f"{k}={v}" for k, v in state.totals().items())
    lines.append(f"  messages: {totals}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= HEADER_CHARS else text[: HEADER_CHARS - 1] + "…"
