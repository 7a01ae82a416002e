"""Read a stream queue from an offset: first, last, next, an offset number or a point in time.

Chapter 07_queue_types teaches this. A stream keeps its messages after they are read; every
reader says where to start with the consumer argument x-stream-offset, and reads on from
there (over AMQP 0-9-1, with manual acks and a prefetch limit, which a stream requires).

    python examples/stream_reader.py --publish 5          # add 5 messages, then read
    python examples/stream_reader.py first                # everything the stream holds
    python examples/stream_reader.py 3                    # from offset 3 on
    python examples/stream_reader.py 2026-04-01T12:00:00  # from that time on (UTC if no zone)
    python examples/stream_reader.py 10m                  # the last 10 minutes (s m h D M Y)
    python examples/stream_reader.py next                 # only what comes from now on
    python examples/send.py --queue examples.events "one more"   # from another terminal

Time offsets are coarse: the stream starts from the chunk (a batch of messages stored
together) holding that time, so a few earlier messages may come too.
"""

from __future__ import annotations

import argparse
import datetime
import re

import pika
from _connection import broker_url, run


def stream_offset(text: str) -> str | int | datetime.datetime:
    """The x-stream-offset value for a command-line word (ValueError if none fits)."""
    if text in ("first", "last", "next"):
        return text
    if text.isdigit():
        return int(text)  # an offset: the n-th message the stream ever held, from 0
    if re.fullmatch(r"\d+[smhDMY]", text):
        return text  # an interval back from now, e.g. 10m or 1D: RabbitMQ reads it itself
    # A time: pika sends a datetime as an AMQP timestamp (whole seconds).
    moment = datetime.datetime.fromisoformat(text.removesuffix("Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("offset", nargs="?", default="first",
                        help="first, last, next, an offset number, an ISO time "
                             "(2026-04-01T12:00:00) or an interval (30s, 10m, 2h, 1D); "
                             "default: first")
    parser.add_argument("--stream", default="examples.events",
                        help="stream queue, declared if missing (default: %(default)s)")
    parser.add_argument("--prefetch", type=int, default=100,
                        help="unacked messages in flight (a stream requires a limit; "
                             "default: 100)")
    parser.add_argument("--publish", type=int, default=0, metavar="N",
                        help="first publish N messages 'event <time> #k' to the stream")
    parser.add_argument("--count", type=int, help="stop after N messages (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no message came for this long (default: never)")
    args = parser.parse_args()
    try:
        args.offset_value = stream_offset(args.offset)
    except ValueError:
        parser.error(f"not an offset: {args.offset!r}")
    return args


def main() -> int:
    args = parse_args()
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.stream_reader"}
    params.blocked_connection_timeout = 10

    read = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=args.stream, durable=True,
                              arguments={"x-queue-type": "stream",
                                         "x-max-age": "7D"})  # keep a week of messages
        if args.publish:
            channel.confirm_delivery()
            now = datetime.datetime.now().strftime("%H:%M:%S")
            for k in range(1, args.publish + 1):
                channel.basic_publish(exchange="", routing_key=args.stream,
                                      body=f"event {now} #{k}".encode())
            print(f"published {args.publish} message(s) to {args.stream}")

        channel.basic_qos(prefetch_count=args.prefetch)  # without it the stream refuses us
        print(f"reading {args.stream} from {args.offset} (Ctrl-C to stop)")
        idle = 0.0
        for method, properties, body in channel.consume(
                args.stream, inactivity_timeout=1.0,
                arguments={"x-stream-offset": args.offset_value}):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    break
                continue
            idle = 0.0
            print(f"offset {properties.headers['x-stream-offset']}: {body.decode()}")
            # The ack removes nothing from a stream: it makes room for more deliveries.
            channel.basic_ack(delivery_tag=method.delivery_tag)
            read += 1
            if args.count is not None and read >= args.count:
                break
        channel.cancel()
    print(f"read {read} message(s)")
    return 0


if __name__ == "__main__":
    run(main)
