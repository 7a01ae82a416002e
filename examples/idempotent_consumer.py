"""Process each message once, even when it is delivered twice: deduplicate by message id.

Chapter 08_reliability teaches this. Delivery is at least once: a publisher's retry, or a
consumer that stops after its work but before its ack, brings a message again. This
consumer keeps the ids it has processed in SQLite, and records the id in the same
transaction as the work itself (here: a row in the table payments). Either both are stored
or neither is; a message whose id is already stored is acked and skipped. Only after the
commit does it ack, so a crash in between means a redelivery, which the table then catches.

    python examples/idempotent_consumer.py                   # terminal 1
    python examples/reliable_publisher.py --count 5 --duplicates 2
    python examples/idempotent_consumer.py --crash-after 3   # stop before an ack, rerun
"""

from __future__ import annotations

import argparse
import sqlite3

import pika
from _connection import broker_url, run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="examples.payments",
                        help="queue to consume, declared durable quorum (default: %(default)s)")
    parser.add_argument("--db", default="examples-payments.sqlite3",
                        help="SQLite file of processed ids and payments (default: %(default)s)")
    parser.add_argument("--prefetch", type=int, default=10, help="(default: 10)")
    parser.add_argument("--crash-after", type=int, metavar="N",
                        help="exit after committing the N-th payment, before acking it")
    parser.add_argument("--count", type=int, help="stop after N deliveries (default: never)")
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="stop when no message came for this long (default: never)")
    return parser.parse_args()


def open_database(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS processed (message_id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS payments (message_id TEXT, body TEXT)")
    return db


def main() -> int:
    args = parse_args()
    db = open_database(args.db)
    params = pika.URLParameters(broker_url())
    params.client_properties = {"connection_name": "examples.idempotent_consumer"}
    params.blocked_connection_timeout = 10

    deliveries = processed = duplicates = 0
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.basic_qos(prefetch_count=args.prefetch)
        print(f"waiting for messages on {args.queue}, ids kept in {args.db} (Ctrl-C to stop)")

        idle = 0.0
        for method, properties, body in channel.consume(args.queue, inactivity_timeout=1.0):
            if method is None:
                idle += 1.0
                if args.idle is not None and idle >= args.idle:
                    break
                continue
            idle = 0.0
            deliveries += 1
            message_id = properties.message_id
            if not message_id:
                print(f"rejected:  {body!r} has no message_id, so it cannot be deduplicated")
                channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
                continue
            try:
                with db:  # one transaction: commit if the block ends, roll back if it raises
                    # The id first: a duplicate fails here (PRIMARY KEY) and nothing is done.
                    db.execute("INSERT INTO processed (message_id) VALUES (?)", (message_id,))
                    db.execute("INSERT INTO payments (message_id, body) VALUES (?, ?)",
                               (message_id, body.decode()))  # the work itself
            except sqlite3.IntegrityError:
                again = ", redelivered" if method.redelivered else ""
                print(f"duplicate: {message_id} (processed before{again}): acked, skipped")
                duplicates += 1
            else:
                print(f"processed: {message_id}")
                processed += 1
                if processed == args.crash_after:
                    print(f"crash (simulated) after committing {message_id}, before its ack")
                    return 2  # the connection closes unacked: the broker delivers it again
            channel.basic_ack(delivery_tag=method.delivery_tag)  # after the commit
            if args.count is not None and deliveries >= args.count:
                break
        channel.cancel()
    (stored,) = db.execute("SELECT COUNT(*) FROM payments").fetchone()
    db.close()
    print(f"{processed} processed, {duplicates} duplicate(s) skipped; "
          f"{stored} payment(s) in {args.db}")
    return 0


if __name__ == "__main__":
    run(main)
