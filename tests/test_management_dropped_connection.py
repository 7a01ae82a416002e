"""A GET whose kept-alive connection was closed under it is asked again, once.

Seen in a fresh-clone CI run: the management API (Cowboy) closes a connection after 5 s
without a request, and the diagram's next read, sent in that instant, failed with "does not
answer" although the API was up. The race cannot be timed against a real broker, so a small
HTTP server on a loopback port plays the API's part: it answers the first request on a
connection and closes the connection on the second without answering, which is what the
client saw. The broker's own API is covered by every test that draws a diagram. (Not in
tests/unit: scripts/test.sh runs those in a network namespace without even a loopback.)
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from helpers.errors import ManagementError
from helpers.management import ManagementClient

BODY = json.dumps({"rabbitmq_version": "4.3.6"}).encode()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        rest += conn.recv(4096)
    return head


def _answer(conn: socket.socket) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )


class ClosingServer:
    """Answers one request per connection, then closes the connection on the next one."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one_connection, args=(conn,), daemon=True).start()

    def _one_connection(self, conn: socket.socket) -> None:
        with conn:
            head = _read_request(conn)
            if not head:
                return
            self.requests.append(head.split(b"\r\n", 1)[0])
            _answer(conn)
            head = _read_request(conn)  # the kept-alive connection's next request...
            if head:
                self.requests.append(head.split(b"\r\n", 1)[0])
            # ...meets a closed socket, unanswered

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ClosingServer]:
    s = ClosingServer()
    yield s
    s.close()


def test_a_get_on_a_connection_the_api_closed_is_asked_again(server):
    api = ManagementClient(f"http://127.0.0.1:{server.port}", "guest", "guest", timeout=3)
    assert api.overview()["rabbitmq_version"] == "4.3.6"
    # The second GET goes out on the kept-alive connection, which closes unanswered.
    assert api.overview()["rabbitmq_version"] == "4.3.6"
    assert server.requests == [b"GET /api/overview HTTP/1.1"] * 3
    assert server.connections == 2


def test_a_post_is_not_sent_twice(server):
    api = ManagementClient(f"http://127.0.0.1:{server.port}", "guest", "guest", timeout=3)
    api.overview()
    with pytest.raises(ManagementError, match="does not answer"):
        api.request("POST", "exchanges/%2F/amq.default/publish", json={"payload": "x"})
    assert server.requests == [
        b"GET /api/overview HTTP/1.1",
        b"POST /api/exchanges/%2F/amq.default/publish HTTP/1.1",
    ]
