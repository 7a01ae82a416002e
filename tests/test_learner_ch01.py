"""A learner works through chapter 01 (connections and channels): pauses, re-runs, mistakes.

The exercise's typical mistakes: the connection opened in a `with` block (closed before the
check runs), one channel instead of two, and a connection without the name. They run one
after another in one kernel, as a learner's attempts would: the one-channel attempt leaves a
connection named `ch01.exercise` open, which the check closes when the solution runs (it
names it), so the solution passes after all of them.
"""

from learner import Chapter, WrongAnswer, run_learner_session

NAMED = """
exercise_params = pika.ConnectionParameters(
    host=broker.host, port=broker.port, virtual_host=broker.vhost, credentials=credentials,
    client_properties={"connection_name": "ch01.exercise"},
)
"""

CHAPTER = Chapter(
    "01_connection.ipynb",
    wrong_answers=(
        WrongAnswer(
            NAMED
            + """
with pika.BlockingConnection(exercise_params) as exercise_connection:
    exercise_connection.channel()
    exercise_connection.channel()
""",
            "already closed",
            "a `with` block closed the connection before the check ran",
        ),
        WrongAnswer(
            NAMED
            + """
exercise_connection = pika.BlockingConnection(exercise_params)
exercise_connection.channel()
""",
            "carries 1 channel,",
            "one channel instead of two",
        ),
        WrongAnswer(
            """
exercise_connection = pika.BlockingConnection(params)
exercise_channels = [exercise_connection.channel(), exercise_connection.channel()]
""",
            "connection_name",
            "the connection has no name, so the broker cannot list it as ch01.exercise",
        ),
    ),
)


def test_a_learner_works_through_ch01(learner_broker):
    run_learner_session(CHAPTER, learner_broker)
