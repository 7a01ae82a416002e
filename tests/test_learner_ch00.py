"""A learner works through chapter 00 (concepts): pauses, re-runs, typical exercise mistakes.

The mistakes the exercise is about: a queue declared without durable=True (RabbitMQ 4 refuses
it and closes the connection; 3.x makes one), the lesson's binding key `hello` copied instead
of `practice`, and a message published straight to the queue through the default exchange
instead of through `ch00.greetings`. They run one after another in one kernel, as a learner's
attempts would, and the solution must pass after all of them.
"""

from learner import Chapter, WrongAnswer, run_learner_session


def _attempt(declare: str, key: str, exchange: str, routing_key: str) -> str:
    """The learner's cell, with one thing changed."""
    return f"""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_declare({declare})
    channel.queue_bind(queue="ch00.exercise", exchange="ch00.greetings", routing_key="{key}")
    channel.basic_publish(exchange="{exchange}", routing_key="{routing_key}", body=b"hi")
"""


DURABLE = 'queue="ch00.exercise", durable=True'

CHAPTER = Chapter(
    "00_concepts.ipynb",
    wrong_answers=(
        WrongAnswer(
            _attempt('queue="ch00.exercise"', "practice", "ch00.greetings", "practice"),
            "durable=True",
            "a queue neither durable nor exclusive: RabbitMQ 4 refuses it (541)",
        ),
        WrongAnswer(
            _attempt(DURABLE, "hello", "ch00.greetings", "practice"),
            "with the key 'hello'",
            "the lesson's binding key copied: the message is dropped",
        ),
        WrongAnswer(
            _attempt(DURABLE, "practice", "", "ch00.exercise"),
            "default exchange",
            "published straight to the queue, not through the exchange",
        ),
    ),
)


def test_a_learner_works_through_ch00(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
