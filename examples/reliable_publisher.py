"""Publish messages so that none is lost: confirms, message ids, and retries until confirmed.

Chapter 08_reliability teaches this (02_producer introduces confirms). Every message gets a
message_id. A message counts as sent only once the broker confirms it. One that comes back
(mandatory=True, no queue yet) or that the broker nacks is published again after a pause;
when the connection drops, the program reconnects and publishes again the message that was
in flight, since it cannot know whether the broker got it. That can make a duplicate, and
the consumer is expected to skip it by its message_id (see idempotent_consumer.py).

    python examples/reliable_publisher.py --count 5                # before the consumer runs:
    python examples/idempotent_consumer.py                         # retries until it declares
    python examples/reliable_publisher.py --count 5 --duplicates 2 # 2 sent twice on purpose
"""

from __future__ import annotations

import argparse
import time
from collections import deque

import pika
import pika.exceptions
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="examples.payments",
                        help="publish to this queue through the default exchange "
                             "(default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages (default: 10)")
    parser.add_argument("--id-prefix", default="payment",
                        help="message ids are PREFIX-1 ... PREFIX-N (default: %(default)s)")
    parser.add_argument("--duplicates", type=int, default=0, metavar="K",
                        help="publish the first K messages a second time, as a retry would")
    parser.add_argument("--retries", type=int, default=10,
                        help="attempts per message and reconnects before giving up "
                             "(default: 10)")
    parser.add_argument("--retry-delay", type=float, default=1.0, metavar="SECONDS",
                        help="pause before publishing again or reconnecting (default: 1)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    messages = [(f"{args.id_prefix}-{n}", f"payment {n}") for n in range(1, args.count + 1)]
    to_send = deque(messages + messages[: args.duplicates])
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.reliable_publisher"}
    params.blocked_connection_timeout = 10

    confirmed, given_up, publishes, reconnects = 0, [], 0, 0
    attempts: dict[str, int] = {}
    while to_send:
        try:
            with pika.BlockingConnection(params) as connection:
                channel = connection.channel()
                channel.confirm_delivery()
                while to_send:
                    message_id, body = to_send[0]  # leaves the deque only once settled
                    attempts[message_id] = attempts.get(message_id, 0) + 1
                    publishes += 1
                    try:
                        channel.basic_publish(
                            exchange="",
                            routing_key=args.queue,
                            body=body.encode(),
                            properties=pika.BasicProperties(
                                message_id=message_id,  # the same id on every retry
                                delivery_mode=pika.DeliveryMode.Persistent,
                                content_type="text/plain",
                            ),
                            mandatory=True,
                        )
                    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as error:
                        why = ("returned: no queue took it"
                               if isinstance(error, pika.exceptions.UnroutableError)
                               else "nacked by the broker")
                        if attempts[message_id] >= args.retries:
                            print(f"gave up:   {message_id} ({why}, {args.retries} attempts)")
                            given_up.append(to_send.popleft()[0])
                        else:
                            print(f"retry:     {message_id} ({why}); again in "
                                  f"{args.retry_delay:g} s")
                            connection.sleep(args.retry_delay)  # keeps the connection alive
                        continue
                    print(f"confirmed: {message_id}")
                    confirmed += 1
                    to_send.popleft()
        except pika.exceptions.AMQPConnectionError as error:
            # Lost the connection (or could not open it): the message in flight may or may
            # not have reached the queue. Publish it again; the consumer skips duplicates.
            reconnects += 1
            if reconnects > args.retries:
                raise
            print(f"connection lost ({type(error).__name__}); reconnecting in "
                  f"{args.retry_delay:g} s")
            time.sleep(args.retry_delay)

    print(f"{confirmed} confirmed in {publishes} publishes, {reconnects} reconnect(s)"
          + (f"; gave up on {', '.join(given_up)}" if given_up else ""))
    return 1 if given_up else 0


if __name__ == "__main__":
    run(main)
