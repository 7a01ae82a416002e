"""A learner works through chapter 05 (acknowledgements) at human pace, mistakes included.

The exercise's typical mistakes: `basic_nack(tag)` for the poison message, whose `requeue`
defaults to True (it comes straight back; `deliveries()` ends the loop after 20 deliveries and
the check names `requeue`), a queue declared without its dead-letter exchange, and orders that
are never acked. The learner also starts a consume without a timeout and stops it with ■, and
in the end no connection, no worker process and no tracing may be left behind.
"""

from __future__ import annotations

from learner import Chapter, Interruption, WrongAnswer, run_learner_session


def attempt(poison: str, order: str, dead_letters: bool = True) -> str:
    """The exercise's code, answering the poison message and each order as given."""
    arguments = '{"x-dead-letter-exchange": "ch05.ex.dlx"}' if dead_letters else "None"
    return f"""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_delete("ch05.ex.orders")
    channel.queue_delete("ch05.ex.parked")
    channel.exchange_delete("ch05.ex.dlx")
    channel.exchange_declare("ch05.ex.dlx", exchange_type="fanout")
    channel.queue_declare("ch05.ex.parked", durable=True)
    channel.queue_bind(queue="ch05.ex.parked", exchange="ch05.ex.dlx")
    channel.queue_declare("ch05.ex.orders", durable=True, arguments={arguments})
    for body in ("order-1", "order-2", "poison", "order-3"):
        channel.basic_publish(exchange="", routing_key="ch05.ex.orders", body=body.encode())
    for method, properties, body in deliveries(channel, "ch05.ex.orders"):
        if body == b"poison":
            {poison}
        else:
            {order}
"""


REJECT = "channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)"
ACK = "channel.basic_ack(delivery_tag=method.delivery_tag)"


CHAPTER = Chapter(
    "05_acks.ipynb",
    wrong_answers=(
        WrongAnswer(
            attempt("channel.basic_nack(method.delivery_tag)", ACK),
            "requeue=True",
            "basic_nack without requeue=False: the poison message comes back for ever",
        ),
        WrongAnswer(
            attempt(REJECT, ACK, dead_letters=False),
            "no dead-letter exchange",
            "the orders queue has no x-dead-letter-exchange",
        ),
        WrongAnswer(
            attempt(REJECT, "print('done', body)"),
            "never acked",
            "the orders are never acked and come back when the connection closes",
        ),
    ),
    interruptions=(
        Interruption(
            before="2. Saying no",
            code="""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    for method, properties, body in channel.consume("ch05.tasks"):   # no timeout: waits
        print("got", body.decode())                                    # ... and never acks
""",
        ),
    ),
)


def test_a_learner_works_through_ch05(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
