"""Broker resolution: AMQP_URL, then 127.0.0.1:5672, then the private node, else a clear error."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pika
import pytest

from helpers import BrokerUnavailable, find_broker, node
from helpers import broker as broker_module
from helpers.broker import parse_amqp_url
from helpers.probe import AMQP_0_9_1_HEADER


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@localhost:5672/%2F", ("localhost", 5672, "/", "guest", "guest")),
        ("amqp://u:p@h/", ("h", 5672, "/", "u", "p")),
        ("amqp://u:p@h", ("h", 5672, "/", "u", "p")),
        ("amqps://u:p%40ss@h/class-a", ("h", 5671, "class-a", "u", "p@ss")),
        ("amqp://h:5682/a%2Fb", ("h", 5682, "a/b", "guest", "guest")),
    ],
)
def test_parse_amqp_url(url, expected):
    assert parse_amqp_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://localhost:5672/", "amqp://u:p@h:notaport/", "localhost:5672", "amqp://"]
)
def test_malformed_amqp_url_is_explained(url):
    with pytest.raises(BrokerUnavailable, match="malformed"):
        parse_amqp_url(url)


def test_find_broker_gives_settings_pika_can_use(broker):
    params = pika.ConnectionParameters(
        host=broker.host,
        port=broker.port,
        virtual_host=broker.vhost,
        credentials=pika.PlainCredentials(broker.username, broker.password),
    )
    with pika.BlockingConnection(params) as connection:
        assert connection.is_open
    with pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as connection:
        assert connection.is_open
    named = broker.connection_parameters(client_properties={"connection_name": "unit.named"})
    assert (named.host, named.port, named.virtual_host) == (broker.host, broker.port, broker.vhost)
    with pika.BlockingConnection(named) as connection:
        assert connection.is_open


def test_amqp_url_wins(monkeypatch, broker):
    monkeypatch.setenv("AMQP_URL", broker.amqp_url)
    found = find_broker(start=False)
    assert found.source == "AMQP_URL"
    assert (found.host, found.port, found.vhost) == (broker.host, broker.port, broker.vhost)
    assert found.management.rabbitmq_version()


def test_amqp_url_to_a_dead_port_fails_fast(monkeypatch, free_port):
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port}/%2F")
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="no broker answers there"):
        find_broker()
    assert time.monotonic() - t0 < 3


def test_amqp_url_to_another_program_is_explained(monkeypatch, broker):
    port = urlsplit(broker.management_url).port
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/%2F")
    with pytest.raises(BrokerUnavailable, match="not an AMQP broker"):
        find_broker()


@contextmanager
def _silent_server(answer_after_s: float | None = None, answer: bytes = b""):
    """A port that accepts connections and says nothing; after `answer_after_s`, `answer`."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve():
        clients = []
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                break
            clients.append(client)
            if answer_after_s is not None:
                threading.Timer(answer_after_s, client.sendall, (answer,)).start()
        for client in clients:
            client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()


def test_amqp_url_to_a_silent_port_is_one_sentence_after_two_tries(monkeypatch):
    monkeypatch.setattr(broker_module, "AMQP_ANSWER_S", (0.2, 0.5))
    with _silent_server() as port:
        monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/%2F")
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"has not answered in \d+ s") as info:
            find_broker()
        elapsed = time.monotonic() - t0
    assert 0.7 <= elapsed < 3  # both tries waited, and no longer
    assert "busy" in str(info.value) and "\n" not in str(info.value)


def test_a_broker_slow_to_answer_is_asked_again_with_more_patience(monkeypatch, broker):
    """A loaded broker once took over 2 s to send connection.start: the first, short try
    must not call it "not an AMQP broker". Here a port answers like the real broker, late."""
    with socket.create_connection((broker.host, broker.port), timeout=5) as real:
        real.sendall(AMQP_0_9_1_HEADER)
        real.settimeout(5)
        connection_start = real.recv(4096)  # the real broker's first frame
    monkeypatch.setattr(broker_module, "AMQP_ANSWER_S", (0.2, 3.0))
    with _silent_server(answer_after_s=0.6, answer=connection_start) as port:
        monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/%2F")
        found = broker_module._from_url(os.environ["AMQP_URL"])
    assert (found.host, found.port) == ("127.0.0.1", port)


def test_malformed_amqp_url_env(monkeypatch):
    monkeypatch.setenv("AMQP_URL", "amqp://guest:s3cret@localhost:port/")
    with pytest.raises(BrokerUnavailable, match="malformed") as info:
        find_broker()
    assert "s3cret" not in str(info.value)


def _nothing_anywhere(monkeypatch, free_port, installed: bool):
    """Point every place the resolution looks at ports where nothing listens."""
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setenv("TUTORIAL_RABBITMQ", "auto")
    monkeypatch.setattr(broker_module, "LOCAL_AMQP_PORT", free_port)
    monkeypatch.setattr(node, "candidates", lambda: [])
    monkeypatch.setattr(node.rootfs, "runtime", lambda: None)
    if not installed:
        monkeypatch.setattr(node, "system_runtime", lambda: None)


def test_no_broker_and_not_installed_says_how_to_install(monkeypatch, free_port):
    _nothing_anywhere(monkeypatch, free_port, installed=False)
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        find_broker()
    assert time.monotonic() - t0 < 3
    message = str(info.value)
    for fix in (
        "apt-get install rabbitmq-server",
        "brew install rabbitmq",
        "rabbitmq:4-management",
    ):
        assert fix in message


def test_no_broker_without_start_says_how_to_start(monkeypatch, free_port):
    _nothing_anywhere(monkeypatch, free_port, installed=True)
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="python -m helpers broker start"):
        find_broker(start=False)
    assert time.monotonic() - t0 < 3


def test_the_private_node_is_this_checkouts(broker):
    assert broker.source == "private node" and broker.started_by_helpers
    assert broker.node is not None and broker.port == broker.node.ports.amqp
    assert broker.node.base.parent == node.repo_dir() / ".rabbitmq"


def test_no_password_in_repr_or_display_url(broker):
    assert broker.password not in repr(broker)
    assert broker.password not in broker.display_url and "***" in broker.display_url
    assert broker.password in broker.amqp_url  # what pika.URLParameters needs


def test_wrong_password_in_amqp_url_is_one_sentence(monkeypatch, broker):
    monkeypatch.setenv("AMQP_URL", f"amqp://{broker.username}:nope@{broker.host}:{broker.port}/%2F")
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="user name or password") as info:
        find_broker(start=False)
    assert time.monotonic() - t0 < 3
    assert info.value._render_traceback_() == [f"BrokerUnavailable: {info.value}"]
    assert "nope" not in str(info.value)
