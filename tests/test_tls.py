"""amqps:// really is AMQP over TLS, checked against AMQP_CA_FILE (issue 19, finding 4).

A throwaway node gets TLS listeners for AMQP and the management API, with a CA and a server
certificate for localhost/127.0.0.1 made here by `openssl` (nothing secret is committed).
Its TLS AMQP port is chosen 10000 below its https management port, so the helpers' rule
"management = AMQP port + 10000, https for amqps" is tested too.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from conftest import free_ports
from helpers import Broker, BrokerUnavailable, find_broker
from helpers import broker as broker_module
from helpers.broker import private_node_broker
from helpers.errors import ManagementError
from helpers.management import ManagementClient
from helpers.node import Node, Ports, choose_runtime

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass(frozen=True)
class TlsNode:
    plain: Broker  # the node over plain AMQP and http, as private_node_broker gives it
    amqps_port: int
    https_port: int
    ca: Path

    def url(self, host: str = "localhost", port: int | None = None) -> str:
        user, password = quote(self.plain.username, safe=""), quote(self.plain.password, safe="")
        return f"amqps://{user}:{password}@{host}:{port or self.amqps_port}/%2F"


def make_certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1: (ca, cert, key)."""
    where.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=pika tutorial test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (where / "server.ext").write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2",
        "-extfile", "server.ext")  # fmt: skip
    return where / "ca.pem", where / "server.pem", where / "server.key"


def _tls_ports() -> tuple[int, int]:
    """A free AMQP-over-TLS port P with P + 10000 free too, both below the ephemeral range."""
    while True:
        port = random.randrange(20_000, 22_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port, port + 10_000


def tls_config(pki: Path, amqps_port: int, https_port: int) -> tuple[str, ...]:
    """rabbitmq.conf lines for TLS listeners on 127.0.0.1: AMQP, and the management API.

    Clients are not asked for a certificate: the tutorial's clients log in with a password.
    """
    files = {"cacertfile": "ca.pem", "certfile": "server.pem", "keyfile": "server.key"}
    return (
        f"listeners.ssl.1 = 127.0.0.1:{amqps_port}",
        *(f"ssl_options.{key} = {pki / name}" for key, name in files.items()),
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        "management.ssl.ip = 127.0.0.1",
        f"management.ssl.port = {https_port}",
        *(f"management.ssl.{key} = {pki / name}" for key, name in files.items()),
    )


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    base = tmp_path_factory.mktemp("tls") / "node"
    # Inside the node's directory: the only one a node in the reference root filesystem sees.
    pki = base / "pki"
    ca, _cert, _key = make_certificates(pki)
    amqps_port, https_port = _tls_ports()
    ports = [p for p in free_ports(6) if p not in (amqps_port, https_port)][:3]
    node = Node(
        base,
        choose_runtime(progress=None),
        name=f"tls-test-{os.getpid()}@localhost",
        ports=Ports(*ports),
        extra_config=tls_config(pki, amqps_port, https_port),
    )
    node.start()
    try:
        yield TlsNode(private_node_broker(node), amqps_port, https_port, ca)
    finally:
        node.stop()


@pytest.fixture
def tls_env(monkeypatch: pytest.MonkeyPatch, tls_node: TlsNode) -> TlsNode:
    monkeypatch.setenv("AMQP_URL", tls_node.url())
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", f"https://localhost:{tls_node.https_port}")
    monkeypatch.setenv("AMQP_CA_FILE", str(tls_node.ca))
    monkeypatch.delenv("TUTORIAL_BROKER", raising=False)
    return tls_node


def _connection_ssl_flag(api: ManagementClient, name: str) -> bool | None:
    """What the broker itself says about a connection: is it TLS? (None: not listed yet)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for info in api.connections():
            if info.get("user_provided_name") == name:
                return info.get("ssl")
        time.sleep(0.2)
    return None


def test_amqps_url_connects_with_tls_checked_against_amqp_ca_file(tls_env: TlsNode):
    broker = find_broker(start=False, progress=None)
    assert broker.tls and broker.port == tls_env.amqps_port
    assert broker.amqp_url.startswith("amqps://") and broker.display_url.startswith("amqps://")
    assert isinstance(broker.ssl_options, pika.SSLOptions)
    assert broker.ssl_options.server_hostname == "localhost"

    params = broker.connection_parameters(client_properties={"connection_name": "tls.check"})
    assert params.ssl_options is not None
    with pika.BlockingConnection(params) as connection:
        sock = connection._impl._transport._sock  # pika's socket: wrapped by ssl, verified
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert dict(x[0] for x in sock.getpeercert()["subject"])["commonName"] == "localhost"
        # ...and the broker agrees: it lists this connection as a TLS one.
        assert _connection_ssl_flag(broker.management, "tls.check") is True
    with pika.BlockingConnection(tls_env.plain.connection_parameters()) as connection:
        assert not isinstance(connection._impl._transport._sock, ssl.SSLSocket)


def test_management_api_over_https_with_the_same_ca(tls_env: TlsNode, monkeypatch):
    broker = find_broker(start=False, progress=None)
    assert broker.management_url == f"https://localhost:{tls_env.https_port}"
    assert broker.management.rabbitmq_version() == tls_env.plain.version
    # Without RABBITMQ_MANAGEMENT_URL: AMQP port + 10000, over https for amqps://.
    monkeypatch.delenv("RABBITMQ_MANAGEMENT_URL")
    assumed = find_broker(start=False, progress=None)
    assert assumed.management_url == f"https://localhost:{tls_env.amqps_port + 10000}"
    assert assumed.management.whoami()["name"] == tls_env.plain.username


def test_without_the_ca_file_the_certificate_is_refused_in_one_line(tls_env, monkeypatch):
    monkeypatch.delenv("AMQP_CA_FILE")
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        find_broker(start=False, progress=None)
    assert time.monotonic() - t0 < 3
    message = str(info.value)
    assert "\n" not in message and "certificate" in message and "AMQP_CA_FILE" in message
    assert info.value._render_traceback_() == [f"BrokerUnavailable: {message}"]
    assert tls_env.plain.password not in message

    client = ManagementClient(
        f"https://localhost:{tls_env.https_port}", tls_env.plain.username, "x", timeout=3
    )
    with pytest.raises(ManagementError) as api_info:
        client.overview()
    api_message = str(api_info.value)
    assert "\n" not in api_message and "certificate" in api_message
    assert "AMQP_CA_FILE" in api_message


def test_tls_and_plain_ports_mixed_up_are_one_line_each(tls_env, monkeypatch):
    plain = tls_env.plain
    monkeypatch.setenv("AMQP_URL", tls_env.url("127.0.0.1", plain.port))  # amqps -> plain port
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="TLS handshake failed") as info:
        find_broker(start=False, progress=None)
    assert time.monotonic() - t0 < 3 and "\n" not in str(info.value)

    monkeypatch.setenv("AMQP_URL", tls_env.url().replace("amqps://", "amqp://"))  # amqp -> TLS
    with pytest.raises(BrokerUnavailable, match="amqps://") as info:
        find_broker(start=False, progress=None)
    assert time.monotonic() - t0 < 6 and "\n" not in str(info.value)


def test_connection_parameters_defaults_and_overrides():
    """TLS for amqps:// only, and a blocked-connection timeout unless the caller sets one."""
    plain = Broker("h", 5672, "/", "u", "p", "http://h:15672", "test")
    assert plain.ssl_options is None and plain.connection_parameters().ssl_options is None
    blocked = broker_module.BLOCKED_CONNECTION_TIMEOUT_S
    assert blocked == 10 and plain.connection_parameters().blocked_connection_timeout == blocked
    assert plain.connection_parameters(blocked_connection_timeout=2).blocked_connection_timeout == 2
    tls = Broker("h", 5671, "/", "u", "p", "https://h:15671", "test", tls=True)
    assert tls.amqp_url == "amqps://u:p@h:5671/%2F" and "p@" not in repr(tls)
    assert tls.connection_parameters().ssl_options is not None
    assert tls.connection_parameters(ssl_options=None).ssl_options is None
