"""The management client reads what the broker really holds."""

from __future__ import annotations

import time

import pytest

from helpers.errors import ManagementError
from helpers.management import ManagementClient

PREFIX = "unit.mgmt."


def _wait_for(predicate, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_overview_and_version(broker):
    overview = broker.management.overview()
    import os

    from helpers.node.runtime import REFERENCE_SERIES

    if os.environ.get("TUTORIAL_RABBITMQ") == "reference":
        assert overview["rabbitmq_version"].startswith(REFERENCE_SERIES + ".")
    else:
        assert overview["rabbitmq_version"][:2] in ("3.", "4.")
    assert broker.management.whoami()["name"] == broker.username


def test_queues_exchanges_bindings_consumers(broker, connection):
    channel = connection.channel()
    q, x = PREFIX + "q", PREFIX + "x"
    channel.exchange_declare(x, "direct", auto_delete=True)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x, routing_key="k")
    channel.basic_publish(x, "k", b"hello")
    channel.basic_consume(q, lambda *a: None, consumer_tag=PREFIX + "ctag")
    api = broker.management
    try:
        assert x in {e["name"] for e in api.exchanges(broker.vhost)}
        assert any(
            b["source"] == x and b["destination"] == q and b["routing_key"] == "k"
            for b in api.bindings(broker.vhost)
        )
        assert _wait_for(
            lambda: PREFIX + "ctag" in {c["consumer_tag"] for c in api.consumers(broker.vhost)}
        )
        assert api.queue(q, broker.vhost)["name"] == q
        assert api.queue(PREFIX + "missing", broker.vhost) is None
    finally:
        channel.exchange_delete(x)


def test_connections_and_channels(broker, params):
    import pika

    params.client_properties = {"connection_name": PREFIX + "conn"}
    with pika.BlockingConnection(params) as connection:
        connection.channel()
        connection.channel()
        api = broker.management

        def mine():
            return [
                c
                for c in api.connections()
                if c.get("client_properties", {}).get("connection_name") == PREFIX + "conn"
            ]

        found = _wait_for(mine)
        assert found, "our named connection should be listed"
        channels = _wait_for(lambda: len(api.connection_channels(found[0]["name"])) == 2)
        assert channels


def test_vhost_and_tracing_round_trip(broker):
    api = broker.management
    vhost = PREFIX + "vhost"
    api.create_vhost(vhost)
    try:
        assert api.tracing(vhost) is False
        api.set_tracing(vhost, True)
        assert api.tracing(vhost) is True
        api.set_tracing(vhost, False)
        assert api.tracing(vhost) is False
    finally:
        api.delete_vhost(vhost)
    assert api.vhost(vhost) is None


def test_wrong_credentials_are_explained(broker):
    client = ManagementClient(broker.management_url, broker.username, "wrong-password")
    with pytest.raises(ManagementError, match="refused these credentials"):
        client.overview()


def test_user_without_management_tag_is_not_told_to_fix_its_password(broker):
    """Logged in, but not allowed: 3.x and 4.x both say so differently from a bad login."""
    api = broker.management
    user = PREFIX + "plain"
    api.request("PUT", f"users/{user}", json={"password": "pw", "tags": ""})
    try:
        with pytest.raises(ManagementError, match="not allowed for this user"):
            ManagementClient(broker.management_url, user, "pw").overview()
    finally:
        api.request("DELETE", f"users/{user}")


def test_unreachable_api_is_explained(free_port):
    client = ManagementClient(f"http://127.0.0.1:{free_port}", "guest", "guest", timeout=2)
    with pytest.raises(ManagementError, match="does not answer"):
        client.overview()
