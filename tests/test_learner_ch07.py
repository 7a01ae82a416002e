"""A learner works through chapter 07 (queue types): pauses, re-runs, and the exercise's
typical mistakes with a stream (no prefetch, non-durable, auto_ack, reading from the start,
a classic queue)."""

from learner import Chapter, WrongAnswer, run_learner_session

STREAM = "ch07.ex.log"


def _attempt(
    declare: str = 'durable=True, arguments={"x-queue-type": "stream"}',
    qos: str = "channel.basic_qos(prefetch_count=20)",
    consume: str = 'inactivity_timeout=0.5, arguments={"x-stream-offset": 6}',
    ack: str = "channel.basic_ack(delivery_tag=method.delivery_tag)",
) -> str:
    """The learner's cell, with one thing changed."""
    return f"""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_delete("{STREAM}")
    channel.queue_declare("{STREAM}", {declare})
    channel.confirm_delivery()
    for n in range(10):
        channel.basic_publish(exchange="", routing_key="{STREAM}", body=f"event-{{n}}".encode())
    read = []
    {qos}
    for method, _properties, body in channel.consume("{STREAM}", {consume}):
        if method is None:
            break
        read.append(body.decode())
        {ack}
    channel.cancel()
"""


CHAPTER = Chapter(
    "07_queue_types.ipynb",
    wrong_answers=(
        WrongAnswer(
            _attempt(qos="pass"), "prefetch", "no basic_qos: the broker closes the channel"
        ),
        WrongAnswer(
            _attempt(declare='durable=False, arguments={"x-queue-type": "stream"}'),
            "always durable",
            "a non-durable stream: refused (541 on this node, the connection closes)",
        ),
        WrongAnswer(
            _attempt(
                consume='auto_ack=True, inactivity_timeout=0.5, arguments={"x-stream-offset": 6}',
                ack="pass",
            ),
            "auto_ack",
            "auto_ack=True: 540, the connection closes",
        ),
        WrongAnswer(
            _attempt(consume='inactivity_timeout=0.5, arguments={"x-stream-offset": "first"}'),
            "from the start",
            "read from 'first' instead of offset 6",
        ),
        WrongAnswer(
            _attempt(declare="durable=True", consume="inactivity_timeout=0.5"),
            "classic queue",
            "no x-queue-type: a classic queue",
        ),
    ),
    finally_code=("assert not leftovers(), leftovers()",),
)


def test_a_learner_works_through_ch07(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
