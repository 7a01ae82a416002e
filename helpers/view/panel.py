"""The publish panel: a form that calls the real `channel.basic_publish` beside a diagram."""

from __future__ import annotations

import calendar
import datetime
import decimal
import json
import struct
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets
import pika
import pika.exceptions
import pika.frame

from helpers.errors import explain
from helpers.flow.state import DEFAULT_EXCHANGE, Message, Prefix
from helpers.i18n import _
from helpers.view.svg import esc

if TYPE_CHECKING:
    from helpers.broker import Broker

# AMQP 0-9-1 "shortstr" (exchange names, routing keys, header names): one length octet, so at
# most 255 bytes of UTF-8. pika raises a 300-character exception past it that never says so.
SHORTSTR_MAX = 255
# pika 1.4 sends every int header as a signed 64-bit "l"; outside this range struct.error.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The header types pika 1.4's encoder (pika/data.py, encode_value) can send. Floats are not
# among them: the spec's float/double exist, but pika raises UnsupportedAMQPFieldException.
HEADER_TYPES = "str, bytes, int, bool, None, decimal.Decimal, datetime, dict or list"
# The code box shows this much of a body: in full, a 10 MB body put 10 million characters
# in the page.
BODY_SHOWN = 200
HEADERS_SHOWN = 300  # characters of the headers' repr in the code box
ANSWER_MAX = 200  # characters of any one-line answer built from the learner's input
# The class of the note a saved panel shows where no kernel runs it (site/_ext looks for it).
PANEL_NOTE_CLASS = "publish-panel-note"


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
        self.exchange = ipywidgets.Dropdown(description=_("exchange"))
        self.routing_key = ipywidgets.Text(description=_("routing key"))
        self.headers = ipywidgets.Textarea(
            description=_("headers"), placeholder=_("key=value per line")
        )
        self.body = ipywidgets.Textarea(description=_("body"), value="hello")
        self.button = ipywidgets.Button(description=_("Publish"), button_style="primary")
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

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget view for a live kernel, with a note beside it for everywhere else.

        JupyterLab (trusted) ranks the widget view first and shows the form; the site's
        build, an untrusted notebook and nbval fall back to the note (text/html, text/plain),
        so a reader without a kernel learns what the panel is for instead of seeing a repr.
        """
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:  # no view (ipywidgets returns None then): nothing to show at all
            return None
        # A static page, an untrusted notebook or GitHub cannot run the form: a dead form
        # there would invite clicks that do nothing, and the default repr
        # (`PublishPanel(prefix=(...))`) tells a reader nothing.
        note = _("Publish panel: run this chapter to publish from here.")
        html = f'<p class="{PANEL_NOTE_CLASS}"><i>{esc(note)}</i></p>'
        return {**data, "text/plain": note, "text/html": html}

    def refresh_exchanges(self) -> None:
        names = self.diagram.exchange_names()
        if DEFAULT_EXCHANGE not in names:
            names.insert(0, DEFAULT_EXCHANGE)
        options = [(_("(default exchange)") if n == "" else n, n) for n in names]
        current = self.exchange.value
        self.exchange.options = options
        if current in names:
            self.exchange.value = current

    def publish_from_form(self) -> str:
        """Publish what the form holds; returns the answer shown in the result box."""
        try:
            headers = parse_headers(self.headers.value)
            body = _utf8(self.body.value, "body")
        except ValueError as exc:
            return self._refuse(str(exc))
        return self.publish(self.exchange.value or "", self.routing_key.value, body, headers)

    def publish(
        self, exchange: str, routing_key: str, body: bytes, headers: dict[str, Any] | None = None
    ) -> str:
        """Publish for real, show the code and where it went; returns the result text.

        Input pika or the broker would refuse is answered in one line before anything is
        sent (see `publish_problem`), so a refused publish publishes nothing.
        """
        params = self._connection_parameters()
        problem = publish_problem(exchange, routing_key, body, headers, params.frame_max)
        if problem:
            return self._refuse(problem)
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
            f"    body={_body_shown(body)},\n"
            f"    properties=pika.BasicProperties({_clip(args, HEADERS_SHOWN)}),\n"
            ")"
        )
        self.code.value = f"<pre style='font-size:11px'>{esc(code)}</pre>"
        # The answer of the last click must not stand beside this click's code meanwhile.
        self.result.value = "<i>publishing…</i>"
        problem = self._publish(params, exchange, routing_key, body, pika.BasicProperties(**props))
        if problem:
            self.result.value = f'<span style="color:#dc2626">{esc(problem)}</span>'
            return problem
        if self.diagram.closed:
            text = (
                _(
                    "published; the diagram is closed (the chapter's cleanup ran), so where the "
                    "message went is not drawn: run the diagram's cell again to watch."
                )
            )
        else:
            self.diagram.wait_until_caught_up(timeout=3.0)
            text = self._where(message_id)
            self.refresh_exchanges()
        self.result.value = f"<b>{esc(text)}</b>"
        return text

    def _refuse(self, problem: str) -> str:
        """Show why nothing was published; the code box empties, as no code ran."""
        self.code.value = ""
        self.result.value = f'<span style="color:#dc2626">{esc(problem)}</span>'
        return problem

    def _connection_parameters(self) -> pika.ConnectionParameters:
        return self.diagram.broker.connection_parameters(
            client_properties={"connection_name": "tutorial publish panel"},
            connection_attempts=1,
            socket_timeout=5,
        )

    def _publish(
        self,
        params: pika.ConnectionParameters,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
    ) -> str | None:
        """Publish on a connection of its own, closed right after; None, or what went wrong.

        A connection per click: one kept open would be dropped by the broker while the
        learner reads (missed heartbeats), and the next click would fail.
        """
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
                    _(
                        "the exchange {exchange!r} does not exist (any more: the chapter's "
                        "cleanup deletes it): run the cell that declares it again, then publish."
                    ).format(exchange=exchange)
                )
            return _("the broker refused it: {code} {text}").format(
                code=exc.reply_code, text=exc.reply_text
            )
        except pika.exceptions.AMQPError as exc:
            return _("could not publish: ") + explain(exc)
        except (TypeError, ValueError, struct.error) as exc:
            # What pika's encoder refuses that publish_problem did not foresee: still one
            # line in the result box, not a traceback in the widget log.
            return _clip(_(
                "could not publish: pika cannot encode it ({error_type}: {exc})"
            ).format(error_type=type(exc).__name__, exc=exc))
        return None

    def _where(self, message_id: str) -> str:
        m = self.diagram.find_publish(message_id)
        if m is None:
            return _("not seen in the firehose (outside the diagram's prefix?)")
        if m.queues:
            return _("routed to ") + ", ".join(m.queues)
        if m.hidden_routes:
            return _("routed to queues outside the diagram's prefix")
        return _("unroutable: dropped by {exchange}").format(
            exchange=m.exchange or _("(default exchange)")
        )


def parse_headers(text: str) -> dict[str, Any]:
    """Headers typed in the panel: a JSON object, or `key=value` lines (values stay text)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                _("headers: not valid JSON ({error})").format(error=exc.msg)
            ) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise ValueError(
                _("headers: {error}").format(error=_clip(str(exc), 120))
            ) from None
        except RecursionError:
            raise ValueError(_("headers: the JSON is nested too deeply")) from None
        if not isinstance(value, dict):
            raise ValueError(_("headers: a JSON object is needed"))
        return value
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            got = _clip(repr(line), 60)
            raise ValueError(_(
                "headers: write key=value, one per line (got {got})"
            ).format(got=got))
        out[key.strip()] = value.strip()
    return out


def publish_problem(
    exchange: str,
    routing_key: str,
    body: bytes,
    headers: dict[str, Any] | None,
    frame_max: int = 131072,
) -> str | None:
    """Why pika or the broker would refuse this publish, in one line; None if it can go.

    Checked before connecting, so nothing is half sent, and the answer names the limit or the
    types accepted, where pika would raise struct.error, UnsupportedAMQPFieldException or a
    long ShortStringTooLong, and the broker would close the connection on a too-large frame.
    """
    for what, value in ((_("exchange name"), exchange), (_("routing key"), routing_key)):
        problem = _shortstr_problem(what, value)
        if problem:
            return problem
    for key, value in (headers or {}).items():
        problem = _header_name_problem(key) or _header_value_problem(_clip(repr(key), 40), value)
        if problem:
            return problem
    props = pika.BasicProperties(message_id="panel-0", headers=headers or None)
    try:
        size = len(pika.frame.Header(1, len(body), props).marshal())
    except (TypeError, ValueError, struct.error, pika.exceptions.AMQPError) as exc:
        return _clip(_(
            "headers: pika cannot encode them ({error_type}: {exc})"
        ).format(error_type=type(exc).__name__, exc=exc))
    if size > frame_max:
        return (
            _(
                "headers: {size:,} bytes encoded, but a message's properties must fit in one AMQP "
                "frame ({frame_max:,} bytes): put large data in the body."
            ).format(size=size, frame_max=frame_max)
        )
    return None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise ValueError(
            _("{what}: not valid UTF-8 text (a lone surrogate?)").format(what=what)
        ) from None


def _shortstr_problem(what: str, value: Any) -> str | None:
    if isinstance(value, bytes):
        size = len(value)
    elif isinstance(value, str):
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            return _("{what}: not valid UTF-8 text (a lone surrogate?)").format(what=what)
    else:
        return _(
            "{what}: must be text (str), not {value_type}"
        ).format(what=what, value_type=type(value).__name__)
    if size > SHORTSTR_MAX:
        return (
            _(
                "the {what} is {size:,} bytes: in AMQP 0-9-1, exchange names, routing keys and "
                "header names are at most {limit} bytes (UTF-8)."
            ).format(what=what, size=size, limit=SHORTSTR_MAX)
        )
    return None


def _header_name_problem(key: Any) -> str | None:
    return _shortstr_problem(_("header name"), key)


def _header_value_problem(path: str, value: Any) -> str | None:
    """The first value under `path` pika 1.4 cannot send, said in one line; None if all can."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return _("header {path}: not valid UTF-8 text (a lone surrogate?)").format(path=path)
        return None
    if value is None or isinstance(value, (bytes, bool)):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return (
            _(
                "header {path}: {value} does not fit in a signed 64-bit integer (-2**63 .. "
                "2**63-1), the widest AMQP integer: send it as a string."
            ).format(path=path, value=_int_shown(value))
        )
    if isinstance(value, float):
        return (
            _(
                "header {path}: {value} is a float, which pika cannot send: use a string, an int "
                "or decimal.Decimal."
            ).format(path=path, value=_clip(repr(value), 30))
        )
    if isinstance(value, decimal.Decimal):
        return _decimal_problem(path, value)
    if isinstance(value, datetime.datetime):
        try:
            seconds = calendar.timegm(value.utctimetuple())
        except (OverflowError, ValueError):
            seconds = -1
        if 0 <= seconds < 2**64:
            return None
        return (
            _(
                "header {path}: {value} is before 1970; AMQP timestamps are seconds since 1970 "
                "(unsigned): send it as a string."
            ).format(path=path, value=_clip(str(value), 40))
        )
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _header_name_problem(key) or _header_value_problem(
                f"{path}[{_clip(repr(key), 20)}]", item
            )
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _header_value_problem(f"{path}[{i}]", item)
            if problem:
                return problem
        return None
    return (
        _(
            "header {path}: a {value} cannot be sent; pika sends {types}."
        ).format(path=path, value=_clip(type(value).__name__, 30), types=HEADER_TYPES)
    )


def _decimal_problem(path: str, value: decimal.Decimal) -> str | None:
    """pika encodes a Decimal as a scale octet (0..255) and a signed 32-bit integer."""
    try:
        if value.is_finite():
            normal = value.normalize()  # as pika does; decimal.Overflow past the context's Emax
            exponent = int(normal.as_tuple().exponent)  # an int, as the value is finite
            scale = max(0, -exponent)
            # exponent > 9 is at least 10**10, past 32 bits (and int() of 1E+999999 would
            # build a million-digit number first).
            if exponent <= 9 and scale <= 255 and -(2**31) <= int(normal.scaleb(scale)) < 2**31:
                return None
    except decimal.DecimalException:
        pass
    return (
        _(
            "header {path}: {value} does not fit an AMQP decimal (a signed 32-bit integer with at "
            "most 255 decimal places): send it as a string."
        ).format(path=path, value=_clip(str(value), 30))
    )


def _body_shown(body: bytes) -> str:
    """The body's repr for the code box: its start, and its size when that is not all."""
    if len(body) <= BODY_SHOWN:
        return repr(body)
    return _("{value!r}… ({n_body:,} bytes)").format(value=body[:BODY_SHOWN], n_body=len(body))


def _int_shown(value: int) -> str:
    """A huge int, shortly (str() of one over 4300 digits raises ValueError)."""
    if value.bit_length() > 1000:
        return f"a {value.bit_length():,}-bit integer"
    return _clip(str(value), 30)


def _clip(text: str, limit: int = ANSWER_MAX) -> str:
    """`text` cut to `limit` characters, with "…" where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
