"""A learner works through chapter 10 (a cluster, and a node that dies): pauses, re-runs
(every cell twice: each kill and stop cell starts the stopped nodes first), and the
exercise's typical mistakes. The chapter's own node is the learner node (heartbeat 1 s);
its cluster runs in a directory of its own (`.rabbitmq/learner-<kind>-cluster`), so the
session never touches the cluster of the notebook pass running beside it."""

from __future__ import annotations

from learner import Chapter, WrongAnswer, run_learner_session

from helpers.node import choose_runtime, repo_dir

NO_RECONNECT = """
def consume(hosts, queue, work, stop):
    seen = set()
    with pika.BlockingConnection(hosts) as connection:
        channel = connection.channel()
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
            if stop.is_set():
                break
            if method is None:
                continue
            if properties.message_id not in seen:
                work(properties.message_id, body)
                seen.add(properties.message_id)
            channel.basic_ack(method.delivery_tag)
"""

DEDUPE_ON_BODY = """
def consume(hosts, queue, work, stop):
    seen = set()
    while not stop.is_set():
        try:
            with pika.BlockingConnection(hosts) as connection:
                channel = connection.channel()
                for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    if body not in seen:
                        work(properties.message_id, body)
                        seen.add(body)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            time.sleep(0.2)
"""

AUTO_ACK = """
def consume(hosts, queue, work, stop):
    with pika.BlockingConnection(hosts) as connection:
        channel = connection.channel()
        for method, properties, body in channel.consume(queue, auto_ack=True,
                                                        inactivity_timeout=0.1):
            if stop.is_set():
                break
            if method is not None:
                work(properties.message_id, body)
"""

CHAPTER = Chapter(
    "10_cluster.ipynb",
    wrong_answers=(
        WrongAnswer(AUTO_ACK, "auto_ack=True", "auto-acks: messages in flight die with a node"),
        WrongAnswer(DEDUPE_ON_BODY, "not on the body", "deduplicates on the body"),
        WrongAnswer(NO_RECONNECT, "connect again", "no reconnect loop"),
    ),
    finally_code=("assert not cluster.cluster.running(), 'the cleanup stops the cluster'",),
    # The failover cell, run a second time, first starts the node its first run killed, then
    # waits for its publisher (up to 60 s), the last deliveries (20 s) and its consumer (10 s):
    # beside another cluster's chapter on two cores it once took more than 60 s, unhung.
    cell_timeout_s=180,
)


def test_learner_session(learner_broker, monkeypatch):
    kind = choose_runtime(progress=None).kind
    monkeypatch.setenv("TUTORIAL_CLUSTER_DIR",
                       str(repo_dir() / ".rabbitmq" / f"learner-{kind}-cluster"))
    run_learner_session(CHAPTER, learner_broker)
