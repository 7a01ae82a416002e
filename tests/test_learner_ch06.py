"""A learner works through chapter 06 (request/reply): pauses, re-runs, a client that waits
forever stopped with ■, and the exercise's typical mistakes."""

from learner import Chapter, Interruption, WrongAnswer, run_learner_session


def _client(check_id: bool = True, deadline: bool = True, on_timeout: str = "None") -> str:
    """The learner's call(n, timeout) with direct reply-to, with one thing changed."""
    match = "properties.correlation_id == correlation_id" if check_id else "True"
    if deadline:
        wait = """
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            connection.process_data_events(time_limit=max(0, deadline - time.monotonic()))
        return answers[0] if answers else """ + on_timeout
    else:  # the tutorial-style loop: no deadline
        wait = """
        while not answers:
            connection.process_data_events()
        return answers[0]"""
    return f"""
def call(n, timeout):
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        correlation_id = str(uuid.uuid4())
        answers = []

        def on_reply(ch, method, properties, body):
            if {match}:
                answers.append(int(body))

        channel.basic_consume(queue="amq.rabbitmq.reply-to", on_message_callback=on_reply,
                              auto_ack=True)
        channel.basic_publish(exchange="", routing_key="ch06.exercise.requests",
                              body=str(n).encode(),
                              properties=pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                              correlation_id=correlation_id))
{wait}
"""


# A client that waits for an answer with no server running, and no deadline: stopped with ■.
# Its request stays in ch06.requests; the next cells must not be disturbed by it.
WAITS_FOREVER = """
with pika.BlockingConnection(params) as connection:
    channel = connection.channel()
    answers = []
    channel.basic_consume(queue="amq.rabbitmq.reply-to", auto_ack=True,
                          on_message_callback=lambda ch, m, p, body: answers.append(body))
    channel.basic_publish(exchange="", routing_key=REQUESTS, body=b"10",
                          properties=pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    while not answers:
        connection.process_data_events(time_limit=0.1)
"""

CHAPTER = Chapter(
    "06_rpc.ipynb",
    wrong_answers=(
        WrongAnswer(
            _client(check_id=False),
            "correlation_id",
            "takes the first reply that comes, whoever it was meant for",
        ),
        WrongAnswer(
            _client(deadline=False),
            "waits forever",
            "the tutorial-style loop without a deadline",
        ),
        WrongAnswer(
            _client(on_timeout="-1"),
            "should return None",
            "a made-up value instead of None when no answer comes",
        ),
    ),
    interruptions=(Interruption(before="Timeouts", code=WAITS_FOREVER),),
    finally_code=("assert not ch06_leftovers(), ch06_leftovers()",),
)


def test_a_learner_works_through_ch06(learner_broker):
    log = run_learner_session(CHAPTER, learner_broker)
    # The timeout demonstration ran right after the stopped client, whose request was still
    # waiting in ch06.requests: rpc_servers() emptied the queue, so its output is unchanged.
    timeouts = [line for line in log if "with a timeout of 0.1 s" in line]
    assert len(timeouts) == 2, timeouts
    for text in timeouts:
        assert "no answer, gave up" in text and "dropped a reply nobody waits for: 55" in text
