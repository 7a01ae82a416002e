"""An RPC client: ask the server for each number's prime factors, wait at most --timeout.

Chapter 06_rpc teaches this. Replies come through direct reply-to: the client consumes the
pseudo-queue amq.rabbitmq.reply-to (auto_ack, before publishing) and names it in reply_to;
RabbitMQ sends the server's answer straight back over this channel, with no queue declared.
(It works on RabbitMQ 3.10 as on 4.x.) Each request carries a new correlation_id, and a
reply is matched to its request by it; a reply to a request we gave up on is ignored.

    python examples/rpc_client.py 360 97 1001
    python examples/rpc_client.py --timeout 1 360     # with no server running: gives up
"""

from __future__ import annotations

import argparse
import time
import uuid

import pika
import pika.exceptions
from _connection import broker_url, run

REPLY_TO = "amq.rabbitmq.reply-to"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("numbers", nargs="+", metavar="N", help="whole numbers to factorize")
    parser.add_argument("--queue", default="examples.rpc",
                        help="the server's request queue (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for each answer (default: 5)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.rpc_client"}
    params.blocked_connection_timeout = 10

    unanswered = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        replies = {}  # correlation_id -> answer

        def on_reply(ch, method, properties, body):
            replies[properties.correlation_id] = body.decode()

        # Consume the direct reply-to pseudo-queue first (it must be auto_ack=True).
        channel.basic_consume(queue=REPLY_TO, on_message_callback=on_reply, auto_ack=True)
        channel.confirm_delivery()  # so that mandatory=True tells us when no server queue exists

        for number in args.numbers:
            correlation_id = str(uuid.uuid4())
            try:
                channel.basic_publish(
                    exchange="",
                    routing_key=args.queue,
                    properties=pika.BasicProperties(
                        reply_to=REPLY_TO,
                        correlation_id=correlation_id,
                        # A request nobody took within the timeout is dropped by the broker.
                        expiration=str(int(args.timeout * 1000)),
                    ),
                    body=number.encode(),
                    mandatory=True,
                )
            except pika.exceptions.UnroutableError:
                print(f"{number}: no queue {args.queue} (start rpc_server.py first)")
                unanswered += 1
                continue
            deadline = time.monotonic() + args.timeout
            while correlation_id not in replies and time.monotonic() < deadline:
                connection.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))
            if correlation_id in replies:
                print(f"{number} = {replies.pop(correlation_id)}")
            else:
                print(f"{number}: no answer within {args.timeout:g} s")
                unanswered += 1
    return 1 if unanswered else 0


if __name__ == "__main__":
    run(main)
