"""A work-queue consumer: manual acks, a prefetch limit, simulated work per message.

Chapter 03_consumer teaches this (05_acks goes deeper into acks). Run two or more workers on
the same queue and RabbitMQ hands each message to one of them; with a prefetch of 1 a slow
worker gets fewer messages than a fast one (fair dispatch). A message is acked only after
its work is done, so the message a worker was busy with when it stopped goes back to the
queue and another worker gets it.

    python examples/worker.py                     # terminal 1
    python examples/worker.py --work 2            # terminal 2: a slow worker
    python examples/send.py --count 10            # terminal 3
"""

from __future__ import annotations

import argparse

import pika
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="examples.tasks",
                        help="queue to consume, declared durable quorum (default: %(default)s)")
    parser.add_argument("--prefetch", type=int, default=1,
                        help="unacked messages the broker may hand us at once (default: 1)")
    parser.add_argument("--work", type=float, default=0.5, metavar="SECONDS",
                        help="simulated work per message (default: 0.5)")
    parser.add_argument("--count", type=int, help="stop after N messages (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no message came for this long (default: never)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.worker"}
    params.blocked_connection_timeout = 10

    done = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        # Durable and replicated; the same arguments as every other declaration of it.
        channel.queue_declare(queue=args.queue, durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.basic_qos(prefetch_count=args.prefetch)
        print(f"waiting for messages on {args.queue} (Ctrl-C to stop)")

        idle = 0.0
        # A consumer as a generator: (None, None, None) after each second without a message.
        for method, _properties, body in channel.consume(args.queue, inactivity_timeout=1.0):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    print(f"no message for {args.idle:g} s: stopping")
                    break
                continue
            idle = 0.0
            again = " (redelivered)" if method.redelivered else ""
            print(f"received: {body.decode()}{again}")
            connection.sleep(args.work)  # the "work"; unlike time.sleep it keeps heartbeats
            channel.basic_ack(delivery_tag=method.delivery_tag)  # done: the broker forgets it
            done += 1
            print(f"acked:    {body.decode()}")
            if args.count is not None and done >= args.count:
                break
        channel.cancel()  # end the subscription; prefetched messages go back to the queue
    print(f"processed {done} message(s)")
    return 0


if __name__ == "__main__":
    run(main)
