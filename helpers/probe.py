"""Is an AMQP broker answering on a port? Found out in milliseconds, without pika.

Opening a pika connection to a dead port is quick, but to a port held by some other program
it can hang until a timeout. Sending the 8-byte AMQP protocol header and reading the first
frame tells the cases apart at once: nothing there, a broker, something else, or something
that accepts the connection and says nothing in time: another program, or a broker too busy
to answer (seen on a loaded machine), which the caller may ask again with more patience.
"""

from __future__ import annotations

import socket
from enum import Enum

AMQP_0_9_1_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
CONNECTION_START = (10, 10)  # class id, method id


class PortState(str, Enum):
    CLOSED = "closed"
    AMQP = "amqp"
    OTHER = "other"
    SILENT = "silent"  # accepted the connection, said nothing within the timeout


def probe_amqp(host: str, port: int, timeout: float = 1.5) -> PortState:
    """Say whether `host:port` has nothing, an AMQP 0-9-1 broker, another program, or a
    program that said nothing within `timeout` seconds."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return PortState.CLOSED
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(AMQP_0_9_1_HEADER)
            head = _read(sock, 11)
        except TimeoutError:
            # A web server (the management UI's port, a common mistake) waits for the end of
            # a request line that the AMQP header never sends: ask it in its own language.
            web = speaks_http(host, port, min(timeout, 1.0))
            return PortState.OTHER if web else PortState.SILENT
        except OSError:
            return PortState.OTHER
    if len(head) < 11 or head[0] != FRAME_METHOD:
        return PortState.OTHER
    class_id = int.from_bytes(head[7:9], "big")
    method_id = int.from_bytes(head[9:11], "big")
    return PortState.AMQP if (class_id, method_id) == CONNECTION_START else PortState.OTHER


def speaks_http(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when `host:port` answers an HTTP request like a web server. (RabbitMQ answers
    anything that is not an AMQP header with its own header, and closes.)"""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
            return _read(sock, 5) == b"HTTP/"
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """True when nothing accepts connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except OSError:
        return True


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
