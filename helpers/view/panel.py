"""The publish panel: a form that calls the real `channel.basic_publish` beside a diagram."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets
import pika
import pika.exceptions

from helpers.errors import explain
from helpers.flow.state import DEFAULT_EXCHANGE, Message, Prefix
from helpers.view.svg import esc

if TYPE_CHECKING:
    from helpers.broker import Broker


class PublishTarget(Protocol):
    """What the panel needs of the diagram beside it (`FlowDiagram` offers it)."""

    broker: Broker
    prefix: Prefix
    widget: ipywidgets.DOMWidget
    closed: bool

    def exchange_names(self) -> list[str]:
        """The exchanges drawn now."""
        ...

    def find_publish(self, message_id: str) -> Message | None:
        """The newest publish with this message_id the diagram has seen, if any."""
        ...

    def wait_until_caught_up(self, timeout: float = 10.0) -> object: ...


class PublishPanel(ipywidgets.VBox):
    """Choose an exchange, type a routing key, headers and a body, press Publish.

    It calls the real `channel.basic_publish` on a connection of its own for each click,
    shows the exact code it ran, and where the broker put the message, read back from the
    firehose. The form sits above the diagram, which keeps the notebook's full width (beside
    it, on a laptop screen, the picture shrank to unreadable).
    """

    def __init__(self, diagram: PublishTarget, show_diagram: bool = True):
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
        fields = ipywidgets.HBox(
            [
                ipywidgets.VBox([self.exchange, self.routing_key, self.button]),
                ipywidgets.VBox([self.headers, self.body]),
            ],
            layout=ipywidgets.Layout(flex_flow="row wrap"),
        )
        form = ipywidgets.VBox([fields, self.result, self.code])
        children = [form, diagram.widget] if show_diagram else [form]
        super().__init__(children, layout=ipywidgets.Layout(width="100%"))

    def __repr__(self) -> str:
        return f"PublishPanel(prefix={self.diagram.prefix!r})"

    def refresh_exchanges(self) -> None:
        names = self.diagram.exchange_names()
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
        m = self.diagram.find_publish(message_id)
        if m is None:
            return "not seen in the firehose (outside the diagram's prefix?)"
        if m.queues:
            return "routed to " + ", ".join(m.queues)
        if m.hidden_routes:
            return "routed to queues outside the diagram's prefix"
        return f"unroutable: dropped by {m.exchange or '(default exchange)'}"


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
