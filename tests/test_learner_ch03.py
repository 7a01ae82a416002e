"""A learner works through chapter 03 (consumer): pauses, re-runs, a consumer stopped with ■,
and the exercise's typical mistakes."""

import nbformat
from learner import NOTEBOOKS, Chapter, Interruption, WrongAnswer, run_learner_session

QUEUE = "ch03.exercise.jobs"


def _worker(
    ack: bool = True, add: str = "total += int(body)", start: str = "total = 0", after: str = ""
) -> str:
    """The learner's worker in a with block, with one thing changed."""
    return f"""
start_over()
{start}
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    for method, _properties, body in channel.consume("{QUEUE}", inactivity_timeout=0.2):
        if method is None:
            break
        {add}
        {"channel.basic_ack(delivery_tag=method.delivery_tag)" if ack else "pass"}
        {after}
    channel.cancel()
"""


# No with block and no cancel: the connection stays open with its consumer on the queue.
NO_CANCEL = f"""
start_over()
total = 0
connection = pika.BlockingConnection(params)
channel = connection.channel()
for method, _properties, body in channel.consume("{QUEUE}", inactivity_timeout=0.2):
    if method is None:
        break
    total += int(body)
    channel.basic_ack(delivery_tag=method.delivery_tag)
"""

# What a learner types after reading about start_consuming(), then stops with ■.
BLOCKING_CONSUME = """
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    channel.basic_consume(queue="ch03.tasks", on_message_callback=on_message)
    channel.start_consuming()
"""

CHAPTER = Chapter(
    "03_consumer.ipynb",
    wrong_answers=(
        WrongAnswer(
            _worker(ack=False),
            "none was acknowledged",
            "no basic_ack: the with block closes the connection, the jobs go back",
        ),
        WrongAnswer(NO_CANCEL, "channel.cancel()", "no cancel, connection left open"),
        WrongAnswer(
            _worker(start='total = ""', add="total += body.decode()"),
            "should be an int",
            "the bodies concatenated as text",
        ),
        WrongAnswer(
            _worker(after="break"),
            "still waiting",
            "stopped after the first job",
        ),
    ),
    interruptions=(Interruption(before="The consumer generator", code=BLOCKING_CONSUME),),
    finally_code=("assert not ch03_leftovers(), ch03_leftovers()",),
)


def _cell_index(fragment: str) -> int:
    nb = nbformat.read(NOTEBOOKS / CHAPTER.notebook, as_version=4)
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and fragment in c.source]
    assert len(found) == 1, fragment
    return found[0]


def test_a_learner_works_through_ch03(learner_broker):
    log = run_learner_session(CHAPTER, learner_broker)
    # Right after the stopped start_consuming(), the generator's cell got all five jobs: a
    # consumer left behind would have taken some of them, silently (no error to catch).
    generator = _cell_index('[f"job {n}" for n in range(1, 6)]')
    runs = [line for line in log if line.startswith(f"[{generator}] ")]
    assert len(runs) == 2, runs
    for text in runs:
        assert (
            "processing job 1\nprocessing job 2\n"
            "cancelled the generator; the queue now: 3 ready, 0 unacknowledged"
        ) in text, text
