"""The sequence view without a broker: steps in, arrows in order, escaped SVG, the static
picture nbval leaves out, labels that never overlap, and many lifelines folded.

Event lists are built here from what the real broker was seen to report (see
helpers/view/sequence.py), and taken from the recordings in tests/unit/data."""

from __future__ import annotations

import base64
import configparser
import re
from itertools import combinations
from pathlib import Path

import pytest
from recorded import load
from replay import replay

from helpers.flow.events import TraceEvent, decode, encode, parse
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.state import TIMELINE, FlowState
from helpers.view.seq_draw import SequenceView
from helpers.view.sequence import MAX_LIFELINES, Sequence, sequence_of, window

PRODUCER = "127.0.0.1:40001 -> 127.0.0.1:5672"
WORKER = "127.0.0.1:40002 -> 127.0.0.1:5672"
STRANGER = "127.0.0.1:40003 -> 127.0.0.1:5672"
SANITIZE = Path(__file__).resolve().parents[1] / "nbval_sanitize.cfg"


def publish(exchange, key, routed, body=b"hi", conn=PRODUCER, **more) -> TraceEvent:
    return TraceEvent(
        "publish", exchange, (key,), tuple(routed), connection=conn, channel=1, body=body, **more
    )


def deliver(queue, body=b"hi", conn=WORKER, exchange="", key="", **more) -> TraceEvent:
    return TraceEvent(
        "deliver",
        exchange,
        (key or queue,),
        queue=queue,
        connection=conn,
        channel=1,
        body=body,
        **more,
    )


def opened(conn, name) -> ClientEvent:
    return ClientEvent("connection.created", connection=conn, name=name)


def state_with(*items, prefix="t.") -> FlowState:
    """A state fed these items in order: trace events, client events, and records given as
    ("record", program, kind, detail[, on])."""
    state = FlowState(prefix=prefix)
    for item in items:
        if isinstance(item, TraceEvent):
            state.add_events([item], now=1.0)
        elif isinstance(item, ClientEvent):
            state.add_client_events([item], now=1.0)
        else:
            state.record(*item[1:])
    return state


def seq_of(state: FlowState, since: int = 0, last: int | None = None) -> Sequence:
    steps, earlier = window(state.timeline, since, last)
    return sequence_of(
        steps,
        state.clients.program,
        lambda c: state.connection_name(c) is not None,
        earlier=earlier,
        exists=state.queue_known,
    )


def view_of(state: FlowState, **kw) -> SequenceView:
    return SequenceView(seq_of(state, **kw))


def kinds(seq: Sequence) -> list[tuple[str, str, str]]:
    return [(a.kind, seq.title(a.source), seq.title(a.target)) for a in seq.arrows]


def named_pair() -> list[ClientEvent]:
    return [opened(PRODUCER, "t.producer"), opened(WORKER, "t.worker")]


# -- what is drawn, in order ----------------------------------------------------------------


def test_publish_route_deliver_and_client_events_in_order():
    state = state_with(
        *named_pair(),
        ClientEvent("queue.created", queue="t.jobs"),
        ClientEvent(
            "consumer.created",
            connection=WORKER,
            channel=1,
            queue="t.jobs",
            consumer_tag="ctag1.abc",
            prefetch=1,
        ),
        publish("t.x", "job", ["t.jobs"]),
        deliver("t.jobs", exchange="t.x", key="job"),
        ("record", "t.worker", "ack", "delivery tag 1"),
        ClientEvent("connection.closed", connection=WORKER),
    )
    seq = seq_of(state)
    assert kinds(seq) == [
        ("connect", "t.producer", "t.producer"),
        ("connect", "t.worker", "t.worker"),
        ("consume", "t.worker", "t.jobs"),
        ("publish", "t.producer", "t.x"),
        ("route", "t.x", "t.jobs"),
        ("deliver", "t.jobs", "t.worker"),
        ("ack", "t.worker", "t.jobs"),  # to the queue it last got a message from
        ("close", "t.worker", "t.worker"),
    ]
    origins = [a.origin for a in seq.arrows]
    assert origins == ["events"] * 3 + ["broker"] * 3 + ["program", "events"]
    assert [x.title for x in seq.lifelines] == ["t.producer", "t.worker", "t.jobs", "t.x"]


def test_dead_lettering_is_drawn_from_the_x_death_of_its_delivery_once():
    # What 4.3.6 and 3.10.8 traced for a nack(requeue=False) to a queue with a DLX: the
    # publish, the delivery, then nothing until the dead-lettered copy is delivered from
    # the dead-letter queue, with the DLX as its exchange and the x-death headers.
    x_death = {
        "x-death": "[{count: 1, reason: rejected, queue: t.work}]",
        "x-first-death-exchange": "",
        "x-first-death-queue": "t.work",
        "x-first-death-reason": "rejected",
    }
    dead = deliver("t.dead", body=b"job 0", exchange="t.dlx", key="t.work", headers=x_death)
    state = state_with(
        *named_pair(),
        ClientEvent("queue.created", queue="t.work"),
        publish("", "t.work", ["t.work"], body=b"job 0"),
        deliver("t.work", body=b"job 0"),
        ("record", "t.worker", "nack", "requeue=False"),
        dead,
        TraceEvent(**{**_fields(dead), "redelivered": True}),
    )
    seq = seq_of(state)
    assert kinds(seq)[-6:] == [
        ("deliver", "t.work", "t.worker"),
        ("nack", "t.worker", "t.work"),
        ("deadletter", "t.work", "t.dlx"),
        ("route", "t.dlx", "t.dead"),
        ("deliver", "t.dead", "t.worker"),
        ("deliver", "t.dead", "t.worker"),  # redelivered: not dead-lettered again
    ]
    assert seq.arrows[-4].origin == seq.arrows[-3].origin == "x-death"
    assert "rejected" in seq.arrows[-4].label
    assert "redelivered" in seq.arrows[-1].label


def _fields(event: TraceEvent) -> dict:
    return {f: getattr(event, f) for f in TraceEvent.__dataclass_fields__}


def test_an_unroutable_publish_then_its_recorded_return_and_confirm():
    state = state_with(
        *named_pair(),
        publish("t.orders", "nobody", []),
        ("record", "t.producer", "return", "NO_ROUTE"),
        ("record", "t.producer", "confirm", "ack"),
    )
    seq = seq_of(state)
    assert kinds(seq)[2:] == [
        ("publish", "t.producer", "t.orders"),
        ("unroutable", "t.orders", "t.orders"),
        ("return", "t.orders", "t.producer"),
        ("confirm", "t.orders", "t.producer"),
    ]
    svg = view_of(state).svg
    assert svg.count('stroke-dasharray="6 4"') == 2, "recorded arrows are dashed"
    assert "recorded by the program" in svg, "the legend says which is which"


def test_a_publish_to_a_queue_that_never_existed_is_routed_to_no_queue():
    # Dropped, or (mandatory) returned: the trace is the same, so the words are those of a
    # named exchange's unroutable publish, which a recorded return does not contradict.
    state = state_with(
        *named_pair(),
        publish("", "t.typo", ["t.typo"]),
        ("record", "t.producer", "return", "NO_ROUTE"),
    )
    seq = seq_of(state)
    assert kinds(seq)[-2] == ("unroutable", "(default exchange)", "(default exchange)")
    assert seq.arrows[-2].label == "routed to no queue (none named 't.typo')"
    assert "dropped" not in view_of(state).text
    state.add_client_events([ClientEvent("queue.created", queue="t.typo")], now=2.0)
    assert kinds(seq_of(state))[-2] == ("route", "(default exchange)", "t.typo")


@pytest.mark.parametrize("name", ["rpc-4.3", "rpc-3.10"])
def test_recorded_rpc_replies_in_the_order_the_firehose_reported(name):
    state = replay(name, prefix=("rec.", re.compile(r"^amq\.gen-")))
    seq = seq_of(state)
    listed = [(k, s, t) for k, s, t in kinds(seq) if k != "consume"]
    client, server = "rec-rpc-client", "rec-rpc-server"
    reply_queue = load(name)["expected"]["reply_queue"]
    # Three calls, then each is delivered and answered through the reply queue in turn.
    assert (
        listed[:6]
        == [("publish", client, "(default exchange)"), ("route", "(default exchange)", "rec.rpc")]
        * 3
    )
    assert listed[6:12] == [
        ("deliver", "rec.rpc", server),
        ("publish", server, "(default exchange)"),
        ("route", "(default exchange)", reply_queue),
        ("deliver", reply_queue, client),
        ("deliver", "rec.rpc", server),
        ("publish", server, "(default exchange)"),
    ]
    # Direct reply-to: one reply arrow from the server to the client per call, on 4.3 (which
    # traces the reply as routed to the address, and its delivery) as on 3.10 (neither).
    replies = [a for a in seq.arrows if a.kind == "reply"]
    assert [(seq.title(a.source), seq.title(a.target)) for a in replies] == [(server, client)] * 3
    assert [a.label for a in replies][0].endswith("re: direct call 0  corr=d0")
    assert not any("reply-to" in x.title for x in seq.lifelines)
    # Each request and its reply carry the request's correlation id, in their labels.
    calls = [a.label for a in seq.arrows if a.kind == "publish" and a.source == f"p:{client}"]
    assert [c.rpartition("corr=")[2] for c in calls] == ["c0", "c1", "c2", "d0", "d1", "d2"]
    answers = [a.label for a in seq.arrows if a.source == f"p:{server}" and a.kind != "consume"]
    assert [c.rpartition("corr=")[2] for c in answers] == ["c0", "c1", "c2", "d0", "d1", "d2"]


def test_correlation_ids_in_labels_and_across_the_pipe():
    # The firehose's trace message carries the properties; the pipe keeps the id.
    props = {"correlation_id": b"call-1", "reply_to": b"amq.rabbitmq.reply-to.g1h2"}
    event = parse(
        "publish.",
        {
            "exchange_name": b"",
            "routing_keys": [b"t.rpc"],
            "routed_queues": [b"t.rpc"],
            "properties": props,
        },
        b"10",
    )
    assert event is not None and decode(encode(event)).correlation_id == "call-1"
    assert (event.correlation_id, event.reply_to) == ("call-1", "amq.rabbitmq.reply-to.g1h2")
    uuid_id = "3f2a9c1e-8d7b-4c6a-9e5f-0123456789ab"
    state = state_with(
        *named_pair(),
        publish("", "t.rpc", ["t.rpc"], body=b"10", correlation_id="call-1"),
        deliver("t.rpc", body=b"10", correlation_id=uuid_id),
        TraceEvent(
            **{**_fields(publish("", "t.rpc", ["t.rpc"])), "repeat": 3, "correlation_id": "call-9"}
        ),
    )
    labels = [a.label for a in seq_of(state).arrows if a.origin == "broker"]
    assert labels[0] == "publish 't.rpc' 10  corr=call-1"
    assert labels[2] == "deliver 10  corr=3f2a9c1e…"  # a uuid: its first 8 characters
    assert labels[3] == "publish 't.rpc' hi ×3"  # ×3 stand for three ids: none shown
    assert "corr=call-1" in view_of(state).text


def test_the_death_headers_cross_the_pipe_and_the_latest_death_is_drawn():
    # A message dead-lettered twice (4.x): x-first-death-* name the first queue,
    # x-last-death-* the latest; they come after the first HEADERS_SENT headers.
    headers = {
        "attempt": 3,
        "a": 1,
        "b": 2,
        "x-death": "[{count: 1, reason: expired, queue: t.wait.2}, {...t.wait.1}]",
        "x-first-death-exchange": "t.retry",
        "x-first-death-queue": "t.wait.1",
        "x-first-death-reason": "expired",
        "x-last-death-exchange": "t.retry",
        "x-last-death-queue": "t.wait.2",
        "x-last-death-reason": "expired",
    }
    dead = deliver("t.work", body=b"order 3", exchange="t.in", key="work", headers=headers)
    wired = decode(encode(dead))
    assert wired.headers["x-last-death-queue"] == "t.wait.2"
    assert wired.headers["x-first-death-reason"] == "expired"
    seq = seq_of(state_with(*named_pair(), wired))
    assert [(k, s, t) for k, s, t in kinds(seq)][-3:] == [
        ("deadletter", "t.wait.2", "t.in"),
        ("route", "t.in", "t.work"),
        ("deliver", "t.work", "t.worker"),
    ]
    assert seq.arrows[-3].label == "dead-lettered (expired), earlier"


# -- text, escaping and the static picture ----------------------------------------------------


def test_text_from_messages_is_escaped_everywhere():
    evil = "<script>alert(1)</script>"
    state = state_with(
        opened(PRODUCER, "t.<script>"),
        publish("t.x", evil, ["t.q"], body=evil.encode()),
        ("record", "t.<script>", "note", evil),
    )
    view = view_of(state)
    svg = view.svg
    assert "<script" not in svg and "&lt;script&gt;" in svg
    html = view.html()
    assert "<script" not in html
    inner = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1)).decode()
    assert inner == svg
    assert evil in view.text  # the text/plain is plain text


def test_the_static_picture_is_an_image_that_nbval_leaves_out():
    state = state_with(*named_pair(), publish("t.x", "k", ["t.q"]))
    view = view_of(state)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "<svg" not in bundle["text/html"], "an <img>, which sanitizing keeps"
    assert 'src="data:image/svg+xml;base64,' in bundle["text/html"]
    config = configparser.ConfigParser()
    config.read(SANITIZE)
    for section in config.sections():
        pattern = config[section]["regex"]
        bundle = {k: re.sub(pattern, config[section]["replace"], v) for k, v in bundle.items()}
    assert bundle["text/html"] == "<!--flow-diagram-->"


def test_text_has_no_ports_and_names_unnamed_programs_in_order():
    state = state_with(
        publish("t.x", "k", ["t.q"], conn=STRANGER),
        deliver("t.q", conn=PRODUCER),
        ClientEvent("consumer.created", connection=WORKER, queue="t.q", consumer_tag="ctag1.f00"),
    )
    text = view_of(state).text
    assert "127.0.0.1" not in text and "40001" not in text
    assert "unnamed program #1 → t.x" in text and "t.q → unnamed program #2" in text
    assert view_of(state).text == text, "the same every time"
    assert "127.0.0.1:40003" in view_of(state).svg, "the address only on hover"


# -- spans ---------------------------------------------------------------------------------------


def test_since_a_mark_and_the_last_n_steps():
    state = state_with(*named_pair(), publish("t.x", "a", ["t.q"]))
    mark = state.ticks
    for key in "bcde":
        state.add_events([publish("t.x", key, ["t.q"])], now=1.0)
    seq = seq_of(state, since=mark)
    assert [a.label.split()[1] for a in seq.arrows if a.kind == "publish"] == [
        "'b'",
        "'c'",
        "'d'",
        "'e'",
    ]
    seq = seq_of(state, since=mark, last=2)
    assert [a.label.split()[1] for a in seq.arrows if a.kind == "publish"] == ["'d'", "'e'"]
    assert seq.earlier == 2
    assert "2 earlier steps not shown" in SequenceView(seq).text


def test_the_timeline_is_a_bounded_ring_with_growing_order():
    state = FlowState(prefix="t.")
    state.add_events([publish("t.x", "k", ["t.q"]) for _ in range(TIMELINE + 50)], now=1.0)
    assert len(state.timeline) == TIMELINE
    orders = [s.order for s in state.timeline]
    assert orders == sorted(orders) and orders[-1] == TIMELINE + 50


def test_only_in_scope_steps_and_known_record_kinds():
    state = state_with(
        opened(STRANGER, "other.app"),
        publish("other.x", "k", ["other.q"], conn=STRANGER),
        ClientEvent("connection.closed", connection=STRANGER),
    )
    assert seq_of(state).arrows == ()
    with pytest.raises(ValueError, match="kind must be one of"):
        state.record("t.producer", "thanks")


def test_a_connection_closed_by_a_missed_heartbeat_is_drawn():
    # Chapter 01: the broker closes an idle connection; connection.closed has no reason, so
    # the program records the error it got.
    state = state_with(
        opened(PRODUCER, "t.sleepy"),
        ClientEvent("connection.closed", connection=PRODUCER),
        ("record", "t.sleepy", "note", "StreamLostError: connection lost"),
    )
    assert kinds(seq_of(state)) == [
        ("connect", "t.sleepy", "t.sleepy"),
        ("close", "t.sleepy", "t.sleepy"),
        ("note", "t.sleepy", "t.sleepy"),
    ]
    assert "t.sleepy: connection closed  [client event]" in view_of(state).text


# -- layout ------------------------------------------------------------------------------------


def _assert_no_overlap(view: SequenceView) -> None:
    boxes = view.placed.labels
    assert boxes
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), f"{a.text!r} overlaps {b.text!r}"
    assert all(0 <= b.x and b.x + b.w <= view.placed.width for b in boxes)
    _assert_no_label_crosses_a_lifeline(view)


def _assert_no_label_crosses_a_lifeline(view: SequenceView) -> None:
    """No arrow's label box has a lifeline through it: neither one between its arrow's ends
    nor one of the ends (an arrow's label lies between its ends, a note's right of its
    lifeline)."""
    placed, seq = view.placed, view.sequence
    assert len(placed.arrow_labels) == len(seq.arrows)
    for arrow, box in placed.arrow_labels:
        assert box.text  # the label drawn, maybe shortened
        for line in seq.lifelines:
            x = placed.centres[line.id]
            assert not box.x < x < box.x + box.w, (
                f"the label {box.text!r} of {seq.title(arrow.source)} → "
                f"{seq.title(arrow.target)} crosses the lifeline of {line.title}"
            )
        if arrow.source != arrow.target:
            ends = sorted(placed.centres[i] for i in (arrow.source, arrow.target))
            assert ends[0] < box.x and box.x + box.w < ends[1], f"{box.text!r} off its arrow"


def test_long_publish_labels_fit_between_their_lifelines():
    # Chapter 02: "publish 'ch02.greetings' confirmed hello" ran across the default
    # exchange's lifeline, and an unroutable note on that exchange across the queue's.
    state = state_with(
        opened(PRODUCER, "ch02.producer"),
        ClientEvent("queue.created", queue="ch02.greetings"),
        publish("", "ch02.greetings", ["ch02.greetings"], body=b"confirmed hello"),
        ("record", "ch02.producer", "confirm", "ack"),
        publish("", "ch02.nowhere", ["ch02.nowhere"], body=b"nobody wants me"),
        ("record", "ch02.producer", "return", "NO_ROUTE"),
        opened(WORKER, "ch02.other"),
        publish("ch02.x", "k", ["ch02.greetings"], body=b"x" * 300, conn=WORKER),
        ("record", "ch02.producer", "note", "a note on the first lifeline, long " * 3),
        prefix="ch02.",
    )
    view = view_of(state)
    assert [x.title for x in view.sequence.lifelines][:3] == [
        "ch02.producer",
        "(default exchange)",
        "ch02.greetings",
    ]
    shown = {a.label: box.text for a, box in view.placed.arrow_labels}
    note = "a note on the first lifeline, long " * 3
    assert all(shown[x] == x for x in shown if x != note), "widened gaps: shown whole"
    assert shown[note] != note and "…" in shown[note], "longer than LABEL_MAX: shortened"
    _assert_no_overlap(view)


def test_a_label_across_several_lifelines_sits_in_one_gap():
    # A reply from the last lifeline to the first crosses the ones between: its label is in
    # one gap, widened if none is wide enough.
    state = state_with(
        *named_pair(),
        publish("t.x", "k", ["t.q1", "t.q2", "t.q3"]),
        deliver("t.q3", body=b"a rather long body that needs a wide gap " * 2),
    )
    _assert_no_overlap(view_of(state))


@pytest.mark.parametrize("name", ["rpc-4.3", "dead_letter-3.10", "work_queue-4.3", "burst-4.3"])
def test_labels_never_overlap_on_recorded_cases(name):
    state = replay(name, prefix=("rec.", re.compile(r"^amq\.gen-")))
    _assert_no_overlap(view_of(state, last=60))


def test_long_labels_and_many_lifelines_stay_readable():
    items: list = [*named_pair()]
    for i in range(30):
        items.append(
            publish("t.x", "k" * 80, [f"t.queue-with-a-rather-long-name-{i}"], body=b"B" * 200)
        )
        items.append(deliver(f"t.queue-with-a-rather-long-name-{i}"))
    view = view_of(state_with(*items))
    assert len(view.sequence.lifelines) == MAX_LIFELINES
    assert view.sequence.lifelines[-1].title.endswith("others")
    assert "folded into one lifeline" in view.text
    _assert_no_overlap(view)


def test_a_consumer_ended_after_its_connection_closed_is_drawn_before_the_close():
    consumer = dict(connection=WORKER, channel=1, queue="t.jobs", consumer_tag="ctag1.a")
    first, then = [
        state_with(
            opened(WORKER, "t.worker"),
            ClientEvent("consumer.created", **consumer),
            *ends,
        )
        for ends in (
            [
                ClientEvent("consumer.deleted", **consumer),
                ClientEvent("connection.closed", connection=WORKER),
            ],
            [
                ClientEvent("connection.closed", connection=WORKER),
                ClientEvent("consumer.deleted", **consumer),
            ],
        )
    ]
    assert kinds(seq_of(first))[-2:] == [
        ("cancel", "t.worker", "t.jobs"),
        ("close", "t.worker", "t.worker"),
    ]
    assert view_of(first).text.splitlines()[2:] != [] and kinds(seq_of(then)) == kinds(
        seq_of(first)
    )


def test_a_connection_opened_after_its_first_delivery_arrived_is_drawn_before_it():
    # Seen in chapter 05 on a loaded machine (4.3.6): the delivery of a dead-lettered message
    # to a new connection reached the diagram before that connection's connection.created.
    x_death = {"x-first-death-queue": "t.inbox", "x-first-death-reason": "rejected",
               "x-death": "[...]"}
    dead = deliver("t.dead", conn=WORKER, exchange="t.dlx", key="t.inbox", headers=x_death)
    in_order, late = [
        state_with(opened(PRODUCER, "t.producer"), *events,
                   ClientEvent("connection.closed", connection=WORKER))
        for events in ([opened(WORKER, "t.worker"), dead], [dead, opened(WORKER, "t.worker")])
    ]
    expected = [
        ("connect", "t.producer", "t.producer"),
        ("connect", "t.worker", "t.worker"),
        ("deadletter", "t.inbox", "t.dlx"),
        ("route", "t.dlx", "t.dead"),
        ("deliver", "t.dead", "t.worker"),
        ("close", "t.worker", "t.worker"),
    ]
    assert kinds(seq_of(in_order)) == expected
    assert kinds(seq_of(late)) == expected
    assert view_of(late).text == view_of(in_order).text  # numbered alike: 4 steps
