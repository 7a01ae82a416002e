"""Receive the log messages whose routing key matches binding keys given on the command line.

Chapter 04_exchanges teaches this. The program declares the topic exchange examples.logs,
a queue of its own (server-named, exclusive: it goes away with this connection) and one
binding per key. In a binding key `*` stands for exactly one word, `#` for zero or more.

    python examples/topic_logger.py "kern.*" "*.critical"
    python examples/send.py --exchange examples.logs --routing-key kern.critical "disk full"
"""

from __future__ import annotations

import argparse

import pika
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binding_keys", nargs="*", default=["#"], metavar="BINDING_KEY",
                        help='e.g. "kern.*" or "*.critical" (default: "#", everything)')
    parser.add_argument("--exchange", default="examples.logs",
                        help="topic exchange to bind to (default: %(default)s)")
    parser.add_argument("--count", type=int, help="stop after N messages (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no message came for this long (default: never)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.topic_logger"}
    params.blocked_connection_timeout = 10

    received = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange=args.exchange, exchange_type="topic", durable=True)
        # queue="" lets the broker pick a name (amq.gen-...); exclusive: ours alone, deleted
        # when this connection closes. A temporary queue must be exclusive (RabbitMQ 4.3
        # refuses one that is neither durable nor exclusive).
        queue = channel.queue_declare(queue="", exclusive=True).method.queue
        for key in args.binding_keys:
            channel.queue_bind(queue=queue, exchange=args.exchange, routing_key=key)
        print(f"waiting for logs on {args.exchange} matching {', '.join(args.binding_keys)} "
              f"(queue {queue}; Ctrl-C to stop)")

        idle = 0.0
        for method, _properties, body in channel.consume(queue, auto_ack=True,
                                                         inactivity_timeout=1.0):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    break
                continue
            idle = 0.0
            print(f"{method.routing_key}: {body.decode()}")
            received += 1
            if args.count is not None and received >= args.count:
                break
        channel.cancel()
    print(f"received {received} message(s)")
    return 0


if __name__ == "__main__":
    run(main)
