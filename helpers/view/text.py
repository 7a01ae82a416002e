"""The words the diagram shows: labels, previews and the summary that nbval compares.

Plain text, not escaped: whoever puts it into HTML or SVG escapes it (`svg.esc`). Kept
apart from `helpers.flow.state`, which counts, so that wording can change (or be
translated) without touching what is counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from helpers.flow.state import DEFAULT_EXCHANGE, Client, FlowState, Message
from helpers.flow.topology import Binding, client_address

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


def binding_label(state: FlowState, binding: Binding) -> str:
    """What to write on a binding: its key, its header arguments, nothing for fanout."""
    types = {e.name: e.type for e in state.topology.exchanges}
    return "" if types.get(binding.source) == "fanout" else binding.label


def producer_label(state: FlowState, client: Client) -> str:
    n = state.producers.get(client)
    return f"producer {n}" if n else "other producers"


def connection_label(state: FlowState, client: Client) -> str:
    """What to call a client's connection: the name it gave, else its address.

    Names are remembered after the connection has closed, so a program that has left
    keeps its name in the picture (and in the saved one).
    """
    return state.connection_name(client[0]) or client_address(client[0])


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
