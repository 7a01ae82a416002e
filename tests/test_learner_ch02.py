"""A learner works through chapter 02 (producer): pauses, re-runs, typical exercise mistakes."""

from learner import Chapter, WrongAnswer, run_learner_session

QUEUE = "ch02.exercise.orders"
LIMIT = '{"x-max-length": 3, "x-overflow": "reject-publish"}'


def _publisher(
    confirm: bool = True,
    durable: str = "durable=True",
    arguments: str = LIMIT,
    delete: bool = True,
    delivery_mode: str = "pika.DeliveryMode.Persistent",
) -> str:
    """The learner's cell, with one thing changed."""
    return f"""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    {'channel.queue_delete(queue="' + QUEUE + '")' if delete else "pass"}
    channel.queue_declare(queue="{QUEUE}", {durable}, arguments={arguments})
    {"channel.confirm_delivery()" if confirm else "pass"}
    refused = []
    for order in ORDERS:
        try:
            channel.basic_publish(
                "", "{QUEUE}", json.dumps(order),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode={delivery_mode},
                    message_id=f"order-{{order['order_id']}}",
                ),
            )
        except pika.exceptions.NackError:
            refused.append(order)
"""


CHAPTER = Chapter(
    "02_producer.ipynb",
    wrong_answers=(
        WrongAnswer(
            _publisher(confirm=False),
            "confirm mode",
            "no confirm_delivery(): basic_publish never raises, refused stays empty",
        ),
        WrongAnswer(
            _publisher(delivery_mode="pika.DeliveryMode.Transient"),
            "transient",
            "transient messages in a durable queue",
        ),
        WrongAnswer(
            _publisher(arguments="{}"),
            "x-max-length",
            "the queue declared without the limit takes every order",
        ),
        WrongAnswer(
            _publisher(durable="durable=False"),
            "durable=True",
            "a non-durable queue: RabbitMQ 4 refuses it (541), 3.x makes one a restart loses",
        ),
        WrongAnswer(
            # The cell without its queue_delete, run twice: the second run finds the queue full.
            _publisher(delete=False) + _publisher(delete=False),
            "earlier run",
            "running the cell again without deleting the queue first",
        ),
    ),
    finally_code=("assert not ch02_leftovers(), ch02_leftovers()",),
)


def test_a_learner_works_through_ch02(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
