"""An RPC server: take requests from a queue, send each answer to the request's reply_to.

Chapter 06_rpc teaches this. A request's body is a whole number; the answer is its prime
factors ("360" -> "2 * 2 * 2 * 3 * 3 * 5"). The answer goes through the default exchange to
the address in reply_to (a client's own queue, or a direct reply-to address), carrying the
request's correlation_id so the client can tell which question it answers. Start several
servers on one queue and they share the requests (prefetch 1: one at a time each).

    python examples/rpc_server.py                  # terminal 1
    python examples/rpc_client.py 360 97 1001      # terminal 2
"""

from __future__ import annotations

import argparse

import pika
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="examples.rpc",
                        help="request queue, declared durable quorum (default: %(default)s)")
    parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                        help="pretend each answer takes this long (try it with the client's "
                             "--timeout)")
    parser.add_argument("--count", type=int, help="stop after N requests (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no request came for this long (default: never)")
    return parser.parse_args()


def prime_factors(n: int) -> list[int]:
    factors, d = [], 2
    while d * d <= n:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 1
    return factors + [n] if n > 1 else factors


def answer(body: bytes) -> str:
    try:
        n = int(body)
    except ValueError:
        return f"error: {body.decode(errors='replace')!r} is not a whole number"
    if not 2 <= n <= 10**12:
        return "error: give a number from 2 to 10**12"
    return " * ".join(map(str, prime_factors(n)))


def main() -> int:
    args = parse_args()
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.rpc_server"}
    params.blocked_connection_timeout = 10

    served = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.basic_qos(prefetch_count=1)
        print(f"waiting for requests on {args.queue} (Ctrl-C to stop)")

        idle = 0.0
        for method, properties, body in channel.consume(args.queue, inactivity_timeout=1.0):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    break
                continue
            idle = 0.0
            result = answer(body)
            if args.delay:
                connection.sleep(args.delay)
            if properties.reply_to:
                channel.basic_publish(
                    exchange="",  # the default exchange: reply_to is a queue name
                    routing_key=properties.reply_to,
                    properties=pika.BasicProperties(correlation_id=properties.correlation_id),
                    body=result.encode(),
                )
                print(f"{body.decode(errors='replace')} -> {result}")
            else:
                print(f"{body.decode(errors='replace')}: no reply_to, nobody to answer")
            channel.basic_ack(delivery_tag=method.delivery_tag)  # after the answer is out
            served += 1
            if args.count is not None and served >= args.count:
                break
        channel.cancel()
    print(f"answered {served} request(s)")
    return 0


if __name__ == "__main__":
    run(main)
