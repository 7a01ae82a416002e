"""Where the broker is.

Resolution order (the first that works wins), as README.md explains to learners:

1. `AMQP_URL` in the environment, e.g. `amqp://student:secret@host:5672/vhost`.
2. A broker already answering on 127.0.0.1:5672 (a Docker container, a system service).
3. This checkout's private node (see `helpers/node/`), started if it does not run.
4. Otherwise a `BrokerUnavailable` error that says what was tried and how to fix it.

`TUTORIAL_BROKER=private` skips 1 and 2: `make test` always tests its own private node,
whatever runs on 5672 and whatever AMQP_URL says.

Whatever is found is logged into before it is returned, so a wrong password or an unknown
vhost is reported in one sentence right away, not as a traceback in a later cell.

Notebooks get a `Broker` back and build their pika parameters from its fields themselves,
so the `pika.ConnectionParameters(...)` call stays visible in every chapter.

`amqps://` means AMQP over TLS (port 5671 by default): `Broker.ssl_options` then verifies the
broker's certificate against `AMQP_CA_FILE` (a PEM file), else the system's CA store, and the
management API is reached over https. No error or status line shows a password, whatever
shape the URL has: URLs are shown through `masked_url()`.

Other protocols (chapter 09): `Broker.mqtt` and `Broker.stomp` are the (host, port) where the
broker's MQTT and STOMP listeners answer, or None. The private node's come from its saved
ports; for a broker named by AMQP_URL (or 127.0.0.1:5672) the usual ports 1883 and 61613 of
its host are tried, unless MQTT_PORT or STOMP_PORT name others. AMQP 1.0 shares the AMQP
port (RabbitMQ 4.0 and newer).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from helpers import node as nodes
from helpers.alarms import install_ipython_handler
from helpers.errors import BrokerUnavailable, explain
from helpers.management import (
    CA_FILE_ENV,
    ManagementClient,
    env_ca_file,
    tls_failure,
    without_userinfo,
)
from helpers.probe import PortState, probe_amqp

if TYPE_CHECKING:
    from helpers.node import Node

LOCAL_HOST = "127.0.0.1"
LOCAL_AMQP_PORT = 5672
LOCAL_MANAGEMENT_PORT = 15672
AMQPS_PORT = 5671
MQTT_PORT = 1883  # the usual ports, tried on a broker the helpers did not start
STOMP_PORT = 61613
PROTOCOL_PROBE_S = 0.5  # how long to wait for a protocol port to accept a connection
# How long a broker may take to send its first frame: a loaded machine's broker has taken over
# 2 s, so a port that accepts and stays silent is asked once more, with more patience.
AMQP_ANSWER_S = (2.0, 4.0)
URL_SHAPE = "amqp://user:password@host:5672/vhost"
# A broker under a resource alarm (memory, disk) blocks publishing connections. Without a
# timeout a helper's publish would wait for ever; with it pika gives up with
# ConnectionBlockedTimeout after this many seconds.
BLOCKED_CONNECTION_TIMEOUT_S = 10


@dataclass(frozen=True)
class Broker:
    """How to reach a broker: everything a chapter needs to build pika's parameters."""

    host: str
    port: int
    vhost: str
    username: str
    password: str
    management_url: str
    source: str
    started_by_helpers: bool = False
    # This checkout's node when the broker is one (the helpers may restart it), else None.
    node: Node | None = field(default=None, repr=False, compare=False)
    # AMQP over TLS (an amqps:// URL): pika verifies the broker's certificate.
    tls: bool = False
    # Where its MQTT and STOMP listeners should be (the private node's saved ports), else
    # None: then the usual ports of its host are tried (see `mqtt` and `stomp`).
    mqtt_port: int | None = field(default=None, repr=False)
    stomp_port: int | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never show the password (notebooks, projectors, logs)
        return f"Broker({self.display_url!r}, source={self.source!r})"

    @property
    def amqp_url(self) -> str:
        """The same settings as one URL, for `pika.URLParameters` (holds the password)."""
        return self._url(quote(self.password, safe=""))

    @property
    def display_url(self) -> str:
        """The URL to show people: the password replaced by ***."""
        return self._url("***")

    @property
    def scheme(self) -> str:
        """`amqps` for AMQP over TLS, else `amqp`."""
        return "amqps" if self.tls else "amqp"

    def _url(self, password: str) -> str:
        user = quote(self.username, safe="")
        vhost = quote(self.vhost, safe="")
        return f"{self.scheme}://{user}:{password}@{self.host}:{self.port}/{vhost}"

    @property
    def ssl_options(self) -> pika.SSLOptions | None:
        """pika's TLS settings for an amqps:// broker (None for amqp://).

        Without them pika speaks plain AMQP even to a TLS port, so an amqps:// URL must bring
        them. The certificate is checked against AMQP_CA_FILE when set (a workshop's own CA),
        else against the system's CA store; the host name must match it too. Built on each
        call, so a notebook that sets AMQP_CA_FILE later gets it.
        """
        if not self.tls:
            return None
        return pika.SSLOptions(tls_context(), server_hostname=self.host)

    def connection_parameters(self, **options: Any) -> pika.ConnectionParameters:
        """pika parameters for this broker, for the helpers' own connections.

        Chapters write this call out themselves, because it is what they teach; the helpers
        (checks, the diagram's firehose consumer, the publish panel) use this shortcut.
        `options` are further ConnectionParameters arguments, e.g. client_properties; they
        win over the defaults here: TLS for amqps://, and a `blocked_connection_timeout` so
        that no helper hangs for ever on a broker that blocks publishers (a resource alarm).
        """
        options.setdefault("blocked_connection_timeout", BLOCKED_CONNECTION_TIMEOUT_S)
        if "ssl_options" not in options:
            options["ssl_options"] = self.ssl_options
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.username, self.password),
            **options,
        )

    @cached_property
    def management(self) -> ManagementClient:
        """A client for this broker's management HTTP API, logged in as the same user."""
        return ManagementClient(self.management_url, self.username, self.password)

    @cached_property
    def mqtt(self) -> tuple[str, int] | None:
        """(host, port) of the broker's MQTT listener, or None when nothing answers there."""
        return _listening(self.host, self.mqtt_port or MQTT_PORT)

    @cached_property
    def stomp(self) -> tuple[str, int] | None:
        """(host, port) of the broker's STOMP listener, or None when nothing answers there."""
        return _listening(self.host, self.stomp_port or STOMP_PORT)

    @property
    def is_private_node(self) -> bool:
        return self.source == "private node"

    @property
    def version(self) -> str:
        """The broker's RabbitMQ version, from the management API."""
        return self.management.rabbitmq_version()


def _listening(host: str, port: int) -> tuple[str, int] | None:
    """(host, port) when something accepts a TCP connection there within PROTOCOL_PROBE_S."""
    if _tcp_state(host, port, PROTOCOL_PROBE_S) is PortState.CLOSED:
        return None
    return (host, port)


def tls_context() -> ssl.SSLContext:
    """A client TLS context: the CA in AMQP_CA_FILE if set, else the system's CA store.

    A CA file that cannot be read is one sentence naming the variable, not an OSError.
    """
    cafile = env_ca_file()
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerUnavailable(
            f"{CA_FILE_ENV}={cafile} cannot be used as a CA certificate "
            f"({getattr(exc, 'strerror', None) or exc}): point it at the PEM file of the CA "
            "that signed the broker's certificate, or unset it to use the system's CA store."
        ) from None


class AmqpUrl(NamedTuple):
    """An AMQP URL taken apart (the password decoded; never shown, see `masked_url`)."""

    scheme: str
    host: str
    port: int
    vhost: str
    username: str
    password: str


def split_amqp_url(url: str, what: str = "AMQP_URL") -> AmqpUrl:
    """Take an amqp:// or amqps:// URL apart, or raise one line that says what to fix.

    `what` names where the URL came from (AMQP_URL, --url) in that line. The line shows the
    URL through `masked_url`, and never the parser's own message: for a URL such as
    amqp://user:pass/word@host that message would quote part of the password.
    """
    text = url.strip()

    def malformed(reason: str) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"{what} is malformed: it must look like {URL_SHAPE} (got {masked_url(text)}: "
            f"{reason})."
        )

    if not re.match(r"amqps?://", text, re.IGNORECASE):
        raise malformed("it must start with amqp://, or amqps:// for TLS")
    if re.search(r"[\t\r\n]", text):  # the parser would drop them silently
        raise malformed("it holds a tab or line break: write it on one line")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise malformed("the host is not a valid name or [IPv6] address") from None
    # An "@" only after the host part: the user name or password holds a "/", "?" or "#"
    # that ended the host part early (amqp://user:pa/ss@host), so the parser took the user
    # for the host and part of the password for the port.
    unescaped = "@" not in parts.netloc and "@" in parts.path + parts.query + parts.fragment
    try:
        port = parts.port
    except ValueError:
        port = -1
    if unescaped:
        raise malformed(
            "percent-encode / ? # @ in the user name or password, e.g. / as %2F, # as %23"
        )
    if port == -1:
        raise malformed("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise malformed("it names no host")
    # In an AMQP URL an empty path means the default vhost "/", written %2F when explicit.
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return AmqpUrl(
        parts.scheme,
        parts.hostname,
        port or (AMQPS_PORT if parts.scheme == "amqps" else LOCAL_AMQP_PORT),
        unquote(path) if path else "/",
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
    )


def parse_amqp_url(url: str, what: str = "AMQP_URL") -> tuple[str, int, str, str, str]:
    """Split an AMQP URL into (host, port, vhost, user, password), with friendly errors."""
    parsed = split_amqp_url(url, what)
    return parsed.host, parsed.port, parsed.vhost, parsed.username, parsed.password


def masked_url(url: str) -> str:
    """`url` with anything that may be a password replaced by ***, whatever its shape.

    Malformed URLs are exactly the ones shown in errors, so this does not trust a parser:
    everything before the last "@" is user information (a password may hold "/", ":" or
    "@"), of which only the part before the first ":" is kept, and a user information
    without ":" is masked whole (in user:/secret@host or amqp:secret@host it is the
    password). With no "@", a "port" that is not a number is masked too, since in
    amqp://user:secret/vhost it is a password whose "@host" was forgotten.
    """
    # Control characters (a pasted line break) are shown escaped: an error stays one line.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in url.strip())
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/+", text)
    head = scheme.group(0) if scheme else ""
    rest = text[len(head) :]
    userinfo, at, after = rest.rpartition("@")
    if at:
        user = userinfo.split(":", 1)[0] + ":***" if ":" in userinfo else "***"
        return f"{head}{user}@{after}"
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    name, colon, port = authority.rpartition(":")
    if colon and not port.isdigit() and not authority.endswith("]"):
        authority = f"{name}:***"
    return f"{head}{authority}{tail}"


def default_management_url(scheme: str, host: str, port: int) -> str:
    """Where the management API of an AMQP URL's broker is assumed to be.

    RabbitMQ's convention puts it 10000 above AMQP (5672 -> 15672, 5671 -> 15671), and a
    broker reached over TLS serves it over https.
    """
    web = "https" if scheme == "amqps" else "http"
    return f"{web}://{host}:{port + 10000}"


def broker_from_url(
    url: str,
    what: str = "AMQP_URL",
    management_url: str | None = None,
    source: str = "AMQP_URL",
) -> Broker:
    """The Broker an AMQP URL describes, without contacting it.

    The management API is `management_url`, else RABBITMQ_MANAGEMENT_URL, else
    `default_management_url`; any user:password@ in it is dropped, so it can be shown.
    """
    parsed = split_amqp_url(url, what)
    management = (
        management_url
        or os.environ.get("RABBITMQ_MANAGEMENT_URL", "").strip()
        or default_management_url(parsed.scheme, parsed.host, parsed.port)
    )
    return Broker(
        parsed.host,
        parsed.port,
        parsed.vhost,
        parsed.username,
        parsed.password,
        without_userinfo(management).rstrip("/"),
        source,
        tls=parsed.scheme == "amqps",
    )


def _from_url(url: str) -> Broker:
    broker = _with_protocol_ports(broker_from_url(url))
    host, port = broker.host, broker.port
    if broker.tls:
        # A TLS port answers nothing to the plain AMQP header the probe sends; whether it is
        # RabbitMQ is found out by the TLS login that follows.
        state = _tcp_state(host, port, timeout=2.0)
    else:
        t0 = time.monotonic()
        for timeout in AMQP_ANSWER_S:
            state = probe_amqp(host, port, timeout=timeout)
            if state is not PortState.SILENT:
                break
    if state is PortState.CLOSED:
        raise BrokerUnavailable(
            f"AMQP_URL points at {host}:{port}, but no broker answers there: start that broker, "
            "or unset AMQP_URL to use a local one."
        )
    if state is PortState.OTHER:
        raise BrokerUnavailable(
            f"AMQP_URL points at {host}:{port}, where something answers that is not an AMQP "
            "broker: check the port (5672 is AMQP, 15672 is the management web UI; 5671 is "
            "usually AMQP over TLS, which needs amqps://)."
        )
    if state is PortState.SILENT:
        raise BrokerUnavailable(
            f"AMQP_URL points at {host}:{port}, where a program accepts connections but has not "
            f"answered in {time.monotonic() - t0:.0f} s: a broker too busy to answer, or a program "
            "that is not a broker. Try again in a moment, and check the port (5672 is AMQP)."
        )
    return broker


def _with_protocol_ports(broker: Broker) -> Broker:
    """The broker with the MQTT and STOMP ports that MQTT_PORT and STOMP_PORT name, if set:
    a broker whose listeners are not on the usual 1883 and 61613 (a workshop's, or the
    learner-session tests' node, whose ports are its own)."""
    ports = {
        field_name: int(value)
        for field_name, name in (("mqtt_port", "MQTT_PORT"), ("stomp_port", "STOMP_PORT"))
        if (value := os.environ.get(name, "").strip()).isdigit()
    }
    return replace(broker, **ports) if ports else broker


def _tcp_state(host: str, port: int, timeout: float) -> PortState:
    """CLOSED when nothing accepts a TCP connection on host:port, else AMQP (unverified)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return PortState.CLOSED
    return PortState.AMQP


def _local_default() -> Broker:
    return Broker(
        LOCAL_HOST,
        LOCAL_AMQP_PORT,
        "/",
        "guest",
        "guest",
        f"http://{LOCAL_HOST}:{LOCAL_MANAGEMENT_PORT}",
        "localhost:5672",
    )


def private_node_broker(node: Node, started_by_helpers: bool = True) -> Broker:
    """The Broker for one of this checkout's private nodes, with its own credentials."""
    creds = node.credentials()
    if creds is None:
        raise BrokerUnavailable(f"The private node in {node.base} has no credentials file yet.")
    ports = node.ports
    return Broker(
        nodes.HOST,
        ports.amqp,
        "/",
        creds.username,
        creds.password,
        f"http://{nodes.HOST}:{ports.management}",
        "private node",
        started_by_helpers,
        node,
        mqtt_port=ports.mqtt,
        stomp_port=ports.stomp,
    )


def check_login(broker: Broker, timeout: float = 3.0) -> None:
    """Open and close one AMQP connection; a refusal becomes one sentence, within `timeout`."""
    params = broker.connection_parameters(
        connection_attempts=1,
        socket_timeout=timeout,
        stack_timeout=timeout,
        blocked_connection_timeout=timeout,
        client_properties={"connection_name": "helpers.find_broker"},
    )
    try:
        pika.BlockingConnection(params).close()
    except (pika.exceptions.AMQPError, ssl.SSLError) as exc:  # pika raises TLS errors bare
        tls_error = _ssl_error(exc) if broker.tls else None
        reason = _explain_tls(broker, tls_error) if tls_error else explain(exc)
        raise BrokerUnavailable(f"{broker.source} ({broker.display_url}): {reason}") from None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError somewhere inside pika's wrapped connection error, if there is one."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, ssl.SSLError):
            return current
        inner = [getattr(current, "exception", None), current.__cause__, current.__context__]
        inner += list(current.args)
        todo += [e for e in inner if isinstance(e, BaseException)]
    return None


def _explain_tls(broker: Broker, error: ssl.SSLError) -> str:
    """One sentence for a failed TLS connection: an untrusted certificate, or not TLS at all."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = str(error.verify_message or error.reason or error)
        return tls_failure(reason, broker.host, env_ca_file())
    return (
        f"the TLS handshake failed ({error.reason or error}): is {broker.port} the broker's "
        "TLS port? amqps:// needs a TLS listener (usually 5671); a plain AMQP port (5672) "
        "takes amqp://."
    )


def find_broker(
    start: bool = True,
    progress: Callable[[str], None] | None = print,
    provision: bool = False,
    private_only: bool | None = None,
) -> Broker:
    """Find a broker (AMQP_URL, then 127.0.0.1:5672, then the private node) or explain why not.

    With `start=False` the private node is used only if it already runs; with
    `provision=True` the reference RabbitMQ is built first when the machine allows (`make lab`
    does that; a notebook cell never waits a minute for it). Answers in well under 3 seconds
    whenever nothing has to be started. `private_only` (default: TUTORIAL_BROKER=private)
    skips AMQP_URL and 127.0.0.1:5672.

    In IPython it also makes a publish blocked by a resource alarm (pika's
    `ConnectionBlockedTimeout`) show as one sentence that names the alarm.
    """
    install_ipython_handler()
    if private_only is None:
        private_only = os.environ.get("TUTORIAL_BROKER", "").strip().lower() == "private"
    url = "" if private_only else os.environ.get("AMQP_URL", "").strip()
    if url:
        broker = _from_url(url)
        check_login(broker)
        return broker

    tried = ["AMQP_URL is not set"] if not private_only else ["TUTORIAL_BROKER=private"]
    if not private_only:
        local = probe_amqp(LOCAL_HOST, LOCAL_AMQP_PORT, timeout=1.0)
        if local is PortState.AMQP:
            broker = _local_default()
            check_login(broker)
            return broker
        tried.append(
            f"{LOCAL_HOST}:{LOCAL_AMQP_PORT} "
            + (
                "has a program that is not RabbitMQ"
                if local is PortState.OTHER
                else "has a program that did not answer"
                if local is PortState.SILENT
                else "has no broker"
            )
        )

    running = nodes.running_node()
    if running is not None:
        running.ensure_plugins(progress)  # a node an older checkout started
        return private_node_broker(running)
    if not start:
        raise BrokerUnavailable(
            "No RabbitMQ broker is running (" + "; ".join(tried) + "): start the private one "
            "with `python -m helpers broker start` (or `make lab`)."
        )
    node, _started = nodes.start(progress, provision=provision)
    return private_node_broker(node)
