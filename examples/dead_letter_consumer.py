"""Reject bad messages without requeue so that RabbitMQ dead-letters them; read them back.

Chapter 05_acks teaches this (07_queue_types adds delivery limits). The program declares:

    examples.orders (quorum, x-dead-letter-exchange=examples.orders.dlx)
    examples.orders.dlx (fanout exchange) --> examples.orders.dead-letters (quorum)

An order is a quantity, a whole number above 0. The consumer acks good orders and rejects
anything else with requeue=False: the broker then moves it to the dead-letter exchange,
with an x-death header telling where it came from and why. With --dead-letters it reads
the dead-letter queue instead and prints each message's x-death.

    python examples/dead_letter_consumer.py                  # terminal 1
    python examples/send.py --queue examples.orders 3 12 banana -1
    python examples/dead_letter_consumer.py --dead-letters   # banana and -1, with x-death
"""

from __future__ import annotations

import argparse

import pika
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="examples.orders",
                        help="the orders queue; the exchange QUEUE.dlx and the queue "
                             "QUEUE.dead-letters go with it (default: %(default)s)")
    parser.add_argument("--dead-letters", action="store_true",
                        help="read the dead-letter queue and print each message's x-death")
    parser.add_argument("--count", type=int, help="stop after N messages (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no message came for this long (default: never)")
    return parser.parse_args()


def is_good_order(body: bytes) -> bool:
    text = body.decode(errors="replace").strip()
    return text.isdigit() and int(text) > 0


def show_x_death(properties: pika.BasicProperties) -> None:
    # One entry per (queue, reason), newest first; count says how often that happened.
    for death in (properties.headers or {}).get("x-death", []):
        print(f"  x-death: queue={death['queue']} reason={death['reason']} "
              f"count={death['count']} exchange={death['exchange']!r} "
              f"routing-keys={death['routing-keys']}")


def main() -> int:
    args = parse_args()
    dlx, dead_letters = f"{args.queue}.dlx", f"{args.queue}.dead-letters"
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.dead_letter_consumer"}
    params.blocked_connection_timeout = 10

    handled = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange=dlx, exchange_type="fanout", durable=True)
        channel.queue_declare(queue=dead_letters, durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.queue_bind(queue=dead_letters, exchange=dlx)
        channel.queue_declare(queue=args.queue, durable=True,
                              arguments={"x-queue-type": "quorum",
                                         "x-dead-letter-exchange": dlx})
        channel.basic_qos(prefetch_count=10)
        source = dead_letters if args.dead_letters else args.queue
        print(f"waiting for messages on {source} (Ctrl-C to stop)")

        idle = 0.0
        for method, properties, body in channel.consume(source, inactivity_timeout=1.0):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    break
                continue
            idle = 0.0
            handled += 1
            if args.dead_letters:
                print(f"dead letter: {body.decode(errors='replace')}")
                show_x_death(properties)
                channel.basic_ack(delivery_tag=method.delivery_tag)
            elif is_good_order(body):
                print(f"acked:    {body.decode()}")
                channel.basic_ack(delivery_tag=method.delivery_tag)
            else:
                print(f"rejected: {body.decode(errors='replace')} (not a quantity; "
                      f"dead-lettered to {dlx})")
                # requeue=False: not back into the queue but to its dead-letter exchange.
                # basic_nack(delivery_tag, requeue=False) does the same (and can do several).
                channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
            if args.count is not None and handled >= args.count:
                break
        channel.cancel()
    print(f"handled {handled} message(s)")
    return 0


if __name__ == "__main__":
    run(main)
