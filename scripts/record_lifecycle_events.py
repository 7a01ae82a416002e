"""Record what RabbitMQ's event exchange says about clients, for the unit tests of
`helpers.flow.lifecycle`, which then run with no broker.

It starts a throwaway node of its own (the runtime TUTORIAL_RABBITMQ picks: `reference` for
4.3, `system` for the machine's 3.10), in a temporary directory on free loopback ports, so
that nothing another program does on a shared node shows up in the recording; the event
exchange lives in one vhost only ("/", see the module docstring of helpers.flow.lifecycle).
A queue there is bound to `amq.rabbitmq.event` for the keys the firehose binds; then:

- "other": a connection in another vhost opens a channel and a consumer, and closes;
- "main": a connection named `rec.lifecycle` in "/" opens a channel, declares an exclusive
  queue, starts two consumers (one with manual acks and prefetch 7, one auto_ack), publishes,
  cancels the first one and closes the connection with the second still consuming;
- "durable": a durable queue declared and deleted by a connection without a name.

Every event message is written unchanged (routing key and the headers table as pika gave it,
with the `$`-tags of scripts/record_flow_cases.py) in arrival order to
`tests/unit/data/lifecycle-<major.minor>.json`, with what the scenario knows ("expected":
the connections' broker names, the vhosts, the consumer tags).

    TUTORIAL_RABBITMQ=reference .venv/bin/python scripts/record_lifecycle_events.py
    TUTORIAL_RABBITMQ=system .venv/bin/python scripts/record_lifecycle_events.py

Only plain pika and the management client are used (not the code under test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_flow_cases import DATA, encode  # noqa: E402

from helpers.broker import private_node_broker  # noqa: E402
from helpers.flow.lifecycle import EVENT_EXCHANGE, EVENT_KEYS  # noqa: E402
from helpers.node import Node, Ports, choose_runtime  # noqa: E402

OTHER_VHOST = "record-lifecycle-other"


def free_ports(n: int) -> list[int]:
    """n free loopback ports outside the kernel's ephemeral range (see tests/conftest.py)."""
    found: list[int] = []
    while len(found) < n:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in found:
            found.append(port)
    return found


def broker_name(connection: pika.BlockingConnection) -> str:
    """The broker's name of a connection: "client ip:port -> server ip:port"."""
    sock = connection._impl._transport._sock  # noqa: SLF001 (a recording script)
    (lhost, lport), (rhost, rport) = sock.getsockname()[:2], sock.getpeername()[:2]
    return f"{lhost}:{lport} -> {rhost}:{rport}"


def scenario(broker: Any) -> dict[str, Any]:
    api = broker.management
    api.create_vhost(OTHER_VHOST)
    api.set_permissions(OTHER_VHOST, broker.username)
    recorder = pika.BlockingConnection(broker.connection_parameters())
    ch = recorder.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    for key in EVENT_KEYS:
        ch.queue_bind(queue, EVENT_EXCHANGE, key)
    expected: dict[str, Any] = {"vhost": "/", "other_vhost": OTHER_VHOST}

    elsewhere = dataclasses.replace(broker, vhost=OTHER_VHOST)
    other = pika.BlockingConnection(
        elsewhere.connection_parameters(client_properties={"connection_name": "rec.other"})
    )
    expected["other"] = broker_name(other)
    och = other.channel()
    oq = och.queue_declare("rec.other.q", exclusive=True).method.queue
    och.basic_consume(oq, lambda *_a: None, consumer_tag="rec.other.tag")
    other.close()

    main = pika.BlockingConnection(
        broker.connection_parameters(client_properties={"connection_name": "rec.lifecycle"})
    )
    expected["main"] = broker_name(main)
    mch = main.channel()
    expected["main_channel"] = mch.channel_number
    mq = mch.queue_declare("rec.lc", exclusive=True).method.queue
    mch.basic_qos(prefetch_count=7)
    mch.basic_consume(mq, lambda *_a: None, consumer_tag="rec.manual")
    mch.basic_consume(mq, lambda *_a: None, auto_ack=True, consumer_tag="rec.auto")
    mch.basic_publish("", mq, b"hello")
    main.process_data_events(time_limit=0.05)
    mch.basic_cancel("rec.manual")
    main.close()  # rec.auto still consumes: its consumer.deleted comes from the close

    plain = pika.BlockingConnection(broker.connection_parameters())
    expected["plain"] = broker_name(plain)
    pch = plain.channel()
    pch.queue_declare("rec.durable", durable=True)
    pch.queue_delete("rec.durable")
    plain.close()

    api.delete_vhost(OTHER_VHOST)
    events = []
    deadline = time.monotonic() + 10
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.5:
        method, props, _body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        quiet_since = time.monotonic()
        events.append({"routing_key": method.routing_key, "headers": encode(props.headers)})
    recorder.close()
    return {"expected": expected, "events": events}


def main() -> int:
    runtime = choose_runtime(progress=None)
    with tempfile.TemporaryDirectory(prefix="rec-lifecycle-") as tmp:
        node = Node(
            Path(tmp) / "node",
            runtime,
            name=f"rec-lifecycle-{os.getpid()}@localhost",
            ports=Ports(*free_ports(3)),
        )
        node.start(print)
        try:
            broker = private_node_broker(node)
            version = broker.management.rabbitmq_version()
            document = {"rabbitmq": version, **scenario(broker)}
        finally:
            node.stop(print)
    major_minor = ".".join(version.split(".")[:2])
    path = DATA / f"lifecycle-{major_minor}.json"
    path.write_text(json.dumps(document, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    print(f"{path}: {len(document['events'])} events, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
