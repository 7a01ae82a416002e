"""Where the broker is.

Resolution order (the first that works wins), as README.md explains to learners:

1. `AMQP_URL` in the environment, e.g. `amqp://student:secret@host:5672/vhost`.
2. A broker already answering on 127.0.0.1:5672 (a Docker container, a system service).
3. The private node the helpers start from the installed `rabbitmq-server` (see node.py).
4. Otherwise a `BrokerUnavailable` error that says what was tried and how to fix it.

Notebooks get a `Broker` back and build their pika parameters from its fields themselves,
so the `pika.ConnectionParameters(...)` call stays visible in every chapter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import pika

from helpers import node
from helpers.errors import INSTALL_HINT, BrokerUnavailable
from helpers.probe import PortState, probe_amqp

if TYPE_CHECKING:
    from helpers.management import ManagementClient

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

    @property
    def amqp_url(self) -> str:
        """The same settings as one URL, for `pika.URLParameters`."""
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
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
            f"AMQP_URL {url!r} is malformed: use amqp://user:password@host:5672/vhost"
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


def private_node_broker(started_by_helpers: bool) -> Broker:
    return Broker(
        node.HOST,
        node.AMQP_PORT,
        "/",
        node.USERNAME,
        node.PASSWORD,
        f"http://{node.HOST}:{node.MANAGEMENT_PORT}",
        "private node",
        started_by_helpers,
    )


def find_broker(start: bool = True, progress: Callable[[str], None] | None = print) -> Broker:
    """Find a broker (AMQP_URL, then 127.0.0.1:5672, then the private node) or explain why not.

    With `start=False` the private node is used only if it already runs. Answers in well
    under 3 seconds whenever nothing has to be started.
    """
    url = os.environ.get("AMQP_URL", "").strip()
    if url:
        return _from_url(url)

    local = probe_amqp(LOCAL_HOST, LOCAL_AMQP_PORT, timeout=1.0)
    if local is PortState.AMQP:
        return _local_default()

    if node.is_ready():
        return private_node_broker(started_by_helpers=node.status().running)

    tried = [
        "AMQP_URL is not set",
        f"{LOCAL_HOST}:{LOCAL_AMQP_PORT} "
        + ("has a program that is not RabbitMQ" if local is PortState.OTHER else "has no broker"),
    ]
    if not node.is_installed():
        tried.append("RabbitMQ is not installed, so no private node can be started")
        raise BrokerUnavailable(
            "No RabbitMQ broker found (" + "; ".join(tried) + "). " + INSTALL_HINT
        )
    if not start:
        raise BrokerUnavailable(
            "No RabbitMQ broker is running (" + "; ".join(tried) + "): start the private one "
            "with `python -m helpers broker start` (or `make lab`)."
        )
    node.start(progress)
    return private_node_broker(started_by_helpers=True)
