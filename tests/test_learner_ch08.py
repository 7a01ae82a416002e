"""A learner works through chapter 08 (a reliable pipeline): pauses, re-runs, and the
exercise's typical mistakes. On the learner node the broker restart is skipped (it is not
the chapter's own private node); the consumer's connection is still killed mid-run."""

from learner import Chapter, WrongAnswer, run_learner_session

DEDUPE_ON_BODY = """
def handle(channel, method, properties, body, seen, work):
    if body in seen:
        channel.basic_ack(delivery_tag=method.delivery_tag)
        return
    work(body)
    seen.add(body)
    channel.basic_ack(delivery_tag=method.delivery_tag)
"""

ACK_FIRST = """
def handle(channel, method, properties, body, seen, work):
    channel.basic_ack(delivery_tag=method.delivery_tag)   # "got it" first
    if properties.message_id in seen:
        return
    work(body)
    seen.add(properties.message_id)
"""

SEEN_FIRST = """
def handle(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        channel.basic_ack(delivery_tag=method.delivery_tag)
        return
    seen.add(properties.message_id)
    work(body)
    channel.basic_ack(delivery_tag=method.delivery_tag)
"""

SKIP_WITHOUT_ACK = """
def handle(channel, method, properties, body, seen, work):
    if properties.message_id in seen:
        return
    work(body)
    seen.add(properties.message_id)
    channel.basic_ack(delivery_tag=method.delivery_tag)
"""

CHAPTER = Chapter(
    "08_reliability.ipynb",
    wrong_answers=(
        WrongAnswer(DEDUPE_ON_BODY, "not on the body", "deduplicates on the body"),
        WrongAnswer(ACK_FIRST, "before its work was done", "acks before the work"),
        WrongAnswer(SEEN_FIRST, "after work(body) has returned", "marks seen before the work"),
        WrongAnswer(SKIP_WITHOUT_ACK, "without acknowledging", "skips duplicates without ack"),
    ),
    finally_code=(
        "assert not leftovers(), leftovers()",
        # The learner node is not the chapter's private node: no restart, but the kill.
        "assert restarted is False and 'consumer killed' in faults, (restarted, faults)",
    ),
)


def test_a_learner_works_through_ch08(learner_broker):
    log = run_learner_session(CHAPTER, learner_broker)
    facts = [line for line in log if "lost (confirmed, never processed): 0" in line]
    assert len(facts) == 2, log  # the pipeline ran twice, and lost nothing either time
