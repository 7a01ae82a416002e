"""A learner works through chapter 09 (protocols) at human pace, mistakes included.

The learner node's chapter vhost is reached through AMQP_URL, as a broker of the learner's
own, with MQTT_PORT and STOMP_PORT naming that node's listeners (tests/learner.py): every
section runs, MQTT and STOMP in a vhost other than "/" included (MQTT's "vhost:user" login,
STOMP's host header), and the AMQP 1.0 sections too (the learner node runs the reference
RabbitMQ). The exercise's typical mistakes: the binding key written the MQTT way, `#` where `*`
is meant, and a queue bound to another exchange than amq.topic.
"""

from __future__ import annotations

from learner import Chapter, WrongAnswer, run_learner_session


def attempt(key: str, exchange: str = "amq.topic") -> str:
    """The exercise's code with the given binding key and exchange."""
    declare = (
        f'    channel.exchange_declare(exchange="{exchange}", exchange_type="topic")\n'
        if exchange != "amq.topic"
        else ""
    )
    return f"""
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.queue_delete(queue="ch09.exercise.alarms")
{declare}    channel.queue_declare(queue="ch09.exercise.alarms", durable=True)
    channel.queue_bind(queue="ch09.exercise.alarms", exchange="{exchange}",
                       routing_key="{key}")
"""


CHAPTER = Chapter(
    "09_protocols.ipynb",
    wrong_answers=(
        WrongAnswer(
            attempt("ch09/exercise/+/alarm"),
            "written the MQTT way",
            "the MQTT filter used as a binding key",
        ),
        WrongAnswer(
            attempt("ch09.exercise.#"),
            "`#` matches any number of words",
            "# takes the temperatures too",
        ),
        WrongAnswer(
            attempt("ch09.exercise.*.alarm", exchange="ch09.alarms"),
            "bind the queue there",
            "bound to an exchange of its own, which MQTT never publishes to",
        ),
    ),
)


def test_a_learner_works_through_ch09(learner_broker):
    log = run_learner_session(CHAPTER, learner_broker)
    skipped = [line for line in log if "skipped" in line and "listener" in line]
    assert not skipped, skipped  # MQTT and STOMP ran, not their "no listener" notes
