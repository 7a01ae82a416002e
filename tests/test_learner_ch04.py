"""A learner works through chapter 04 (exchanges) at human pace, mistakes included.

The exercise's typical mistakes: `*` where `#` is needed (a word count), an exchange of the
wrong type (wildcards mean nothing on a direct exchange), binding keys without wildcards,
and a second attempt run on top of the first, which leaves an old binding behind. Each wrong
answer is what a learner would type into the exercise cell, with its own connection. In the
end, after the cleanup and the panels, no connection and no tracing may be left behind.
"""

from __future__ import annotations

from learner import Chapter, WrongAnswer, run_learner_session

CONNECT = """
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
"""


def attempt(exchange_type: str, critical_key: str, kern_key: str, start_over: bool = True) -> str:
    """The exercise's code with the given exchange type and binding keys."""
    reset = """
    channel.exchange_delete(exchange="ch04.exercise.logs")
    channel.queue_delete(queue="ch04.exercise.critical")
    channel.queue_delete(queue="ch04.exercise.kern")
"""
    build = f"""
    channel.exchange_declare(exchange="ch04.exercise.logs", exchange_type={exchange_type!r})
    channel.queue_declare(queue="ch04.exercise.critical", durable=True)
    channel.queue_declare(queue="ch04.exercise.kern", durable=True)
    channel.queue_bind(queue="ch04.exercise.critical", exchange="ch04.exercise.logs",
                       routing_key={critical_key!r})
    channel.queue_bind(queue="ch04.exercise.kern", exchange="ch04.exercise.logs",
                       routing_key={kern_key!r})
"""
    return CONNECT + (reset if start_over else "") + build


CHAPTER = Chapter(
    "04_exchanges.ipynb",
    wrong_answers=(
        WrongAnswer(
            attempt("direct", "#.critical", "kern.#"),
            "only work on a topic exchange",
            "a direct exchange: the wildcards are taken literally",
        ),
        WrongAnswer(
            attempt("topic", "*.critical", "kern.#"),
            "`*` matches exactly one word",
            "*.critical misses mail.queue.critical",
        ),
        WrongAnswer(
            attempt("topic", "#.critical", "kern.*"),
            "`*` matches exactly one word",
            "kern.* misses kern.disk.warning",
        ),
        WrongAnswer(
            attempt("topic", "critical", "#"),
            "without `*` or `#`",
            "a binding key without wildcards matches only itself",
        ),
        WrongAnswer(
            attempt("topic", "#.critical", "kern.#", start_over=False),
            "left from an earlier attempt",
            "the corrected cell run again without deleting: the old '#' binding stays",
        ),
    ),
)


def test_a_learner_works_through_ch04(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
