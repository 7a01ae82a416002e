"""Publish messages with publisher confirms and mandatory=True, and say what became of each.

Chapters 00_concepts and 02_producer teach this. With confirms, `basic_publish` returns once
the broker has taken the message (for a durable queue: stored it); with mandatory=True a
message no queue takes comes back to us instead of vanishing.

    python examples/send.py "hello" "world"               # to the queue examples.tasks
    python examples/send.py --count 10                    # "message 1" ... "message 10"
    python examples/send.py --exchange examples.logs --routing-key kern.error "disk full"

It declares nothing: start the consumer first (worker.py declares examples.tasks,
topic_logger.py the exchange examples.logs), or pass --declare to declare the queue here.
"""

from __future__ import annotations

import argparse

import pika
import pika.exceptions
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bodies", nargs="*", metavar="BODY", help="message bodies to send")
    parser.add_argument("--queue", default="examples.tasks",
                        help="publish to this queue through the default exchange "
                             "(default: %(default)s)")
    parser.add_argument("--exchange", help="publish to this exchange instead (it must exist)")
    parser.add_argument("--routing-key", default="", help="routing key for --exchange")
    parser.add_argument("--count", type=int, default=1,
                        help="without BODY: send 'message 1' ... 'message N' (default: 1)")
    parser.add_argument("--declare", action="store_true",
                        help="declare --queue first, as a durable quorum queue (as worker.py)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    bodies = args.bodies or [f"message {n}" for n in range(1, args.count + 1)]
    if args.exchange is not None:
        exchange, routing_key = args.exchange, args.routing_key
    else:
        exchange, routing_key = "", args.queue  # the default exchange routes by queue name

    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.send"}
    params.blocked_connection_timeout = 10  # a broker short of memory or disk: fail, not hang

    not_confirmed = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        if args.declare and args.exchange is None:
            channel.queue_declare(queue=args.queue, durable=True,
                                  arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()  # from now on basic_publish waits for the broker's answer
        for body in bodies:
            try:
                channel.basic_publish(
                    exchange=exchange,
                    routing_key=routing_key,
                    body=body.encode(),
                    properties=pika.BasicProperties(
                        content_type="text/plain",
                        delivery_mode=pika.DeliveryMode.Persistent,  # survives a restart
                    ),
                    mandatory=True,  # no queue for it: the broker returns it
                )
                print(f"confirmed: {body}")
            except pika.exceptions.UnroutableError as error:
                returned = error.messages[0].method
                where = (f"no queue named {routing_key!r}" if exchange == "" else
                         f"no queue bound to {exchange!r} for key {routing_key!r}")
                print(f"returned:  {body} ({returned.reply_code} {returned.reply_text}: {where})")
                not_confirmed += 1
            except pika.exceptions.NackError:
                print(f"nacked:    {body} (the broker could not take it)")
                not_confirmed += 1
    if not_confirmed:
        print(f"{not_confirmed} of {len(bodies)} message(s) not delivered to a queue")
        return 1
    return 0


if __name__ == "__main__":
    run(main)
