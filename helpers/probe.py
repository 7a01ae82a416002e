"""Is an AMQP broker answering on a port? Found out in milliseconds, without pika.

Opening a pika connection to a dead port is quick, but to a port held by some other program
it can hang until a timeout. Sending the 8-byte AMQP protocol header and reading the first
frame tells the three cases apart at once: nothing there, a broker, or something else.
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


def probe_amqp(host: str, port: int, timeout: float = 1.5) -> PortState:
    """Say whether `host:port` has nothing, an AMQP 0-9-1 broker, or another program on it."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return PortState.CLOSED
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(AMQP_0_9_1_HEADER)
            head = _read(sock, 11)
        except OSError:
            return PortState.OTHER
    if len(head) < 11 or head[0] != FRAME_METHOD:
        return PortState.OTHER
    class_id = int.from_bytes(head[7:9], "big")
    method_id = int.from_bytes(head[9:11], "big")
    return PortState.AMQP if (class_id, method_id) == CONNECTION_START else PortState.OTHER


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
