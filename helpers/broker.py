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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from helpers import node as nodes
from helpers.errors import BrokerUnavailable, explain
from helpers.probe import PortState, probe_amqp

if TYPE_CHECKING:
    from helpers.management import ManagementClient
    from helpers.node import Node

LOCAL_HOST = "127.0.0.1"
LOCAL_AMQP_PORT = 5672
LOCAL_MANAGEMENT_PORT = 15672


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

    def _url(self, password: str) -> str:
        user = quote(self.username, safe="")
        return f"amqp://{user}:{password}@{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    def connection_parameters(self, **options: Any) -> pika.ConnectionParameters:
        """pika parameters for this broker, for the helpers' own connections.

        Chapters write this call out themselves, because it is what they teach; the helpers
        (checks, the diagram's firehose consumer, the publish panel) use this shortcut.
        `options` are further ConnectionParameters arguments, e.g. client_properties.
        """
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
        from helpers.management import ManagementClient

        return ManagementClient(self.management_url, self.username, self.password)

    @property
    def is_private_node(self) -> bool:
        return self.source == "private node"

    @property
    def version(self) -> str:
        """The broker's RabbitMQ version, from the management API."""
        return self.management.rabbitmq_version()


def parse_amqp_url(url: str) -> tuple[str, int, str, str, str]:
    """Split an AMQP URL into (host, port, vhost, user, password), with friendly errors."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BrokerUnavailable(
            f"AMQP_URL is malformed ({exc}): use amqp://user:password@host:5672/vhost"
        ) from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise BrokerUnavailable(
            f"AMQP_URL {_masked(url)!r} is malformed: use amqp://user:password@host:5672/vhost"
        )
    default_port = 5671 if parts.scheme == "amqps" else 5672
    # In an AMQP URL an empty path means the default vhost "/", written %2F when explicit.
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) if path else "/"
    return (
        parts.hostname,
        port or default_port,
        vhost,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
    )


def _masked(url: str) -> str:
    """`url` with any password replaced by ***, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hostpart}"


def _from_url(url: str) -> Broker:
    host, port, vhost, user, password = parse_amqp_url(url)
    state = probe_amqp(host, port, timeout=2.0)
    if state is PortState.CLOSED:
        raise BrokerUnavailable(
            f"AMQP_URL points at {host}:{port}, but no broker answers there: start that broker, "
            "or unset AMQP_URL to use a local one."
        )
    if state is PortState.OTHER:
        raise BrokerUnavailable(
            f"AMQP_URL points at {host}:{port}, where something answers that is not an AMQP "
            "broker: check the port (5672 is AMQP, 15672 is the management web UI)."
        )
    # RabbitMQ's convention puts the management API 10000 above AMQP (5672 -> 15672).
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL") or f"http://{host}:{port + 10000}"
    return Broker(host, port, vhost, user, password, management.rstrip("/"), "AMQP_URL")


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
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"{broker.source} ({broker.display_url}): {explain(exc)}") from None


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
    """
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
                else "has no broker"
            )
        )

    running = nodes.running_node()
    if running is not None:
        return private_node_broker(running)
    if not start:
        raise BrokerUnavailable(
            "No RabbitMQ broker is running (" + "; ".join(tried) + "): start the private one "
            "with `python -m helpers broker start` (or `make lab`)."
        )
    node, _started = nodes.start(progress, provision=provision)
    return private_node_broker(node)
