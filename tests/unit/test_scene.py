"""What the picture says (helpers.view.scene), from recorded broker runs and from events as
the broker sends them: programs by the names their code gave, consumers as consumers,
programs that left kept while their counts are drawn, and every count accounted for."""

from __future__ import annotations

import re

import pytest
from recorded import names
from replay import replay

from helpers.flow.events import TraceEvent
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.scope import in_prefix, is_housekeeping
from helpers.flow.state import DEFAULT_EXCHANGE, FlowState
from helpers.flow.topology import topology_from_api
from helpers.view.picture import CONSUMERS, PROGRAMS, Picture
from helpers.view.programs import MAX_PROGRAMS
from helpers.view.scene import picture_of

A = "127.0.0.1:40001 -> 127.0.0.1:5672"
B = "127.0.0.1:40002 -> 127.0.0.1:5672"
C = "127.0.0.1:40003 -> 127.0.0.1:5672"


def _topology(queues: list[str], exchanges: tuple[str, ...] = ("",)):
    return topology_from_api(
        [{"name": x, "type": "direct"} for x in exchanges],
        [{"name": q} for q in queues],
        [
            {"source": "", "destination": q, "destination_type": "queue", "routing_key": q}
            for q in queues
        ],
        [],
        [],
    )


def _publish(conn: str, queue: str, exchange: str = "") -> TraceEvent:
    return TraceEvent("publish", exchange, (queue,), (queue,), connection=conn, channel=1)


def _deliver(conn: str, queue: str) -> TraceEvent:
    return TraceEvent("deliver", "", (queue,), queue=queue, connection=conn, channel=1)


def _opened(conn: str, name: str) -> ClientEvent:
    return ClientEvent("connection.created", connection=conn, name=name)


def _closed(conn: str) -> ClientEvent:
    return ClientEvent("connection.closed", connection=conn)


def _programs(picture: Picture) -> dict[str, object]:
    return {n.title: n for n in picture.nodes if n.kind == "program"}


def test_cells_of_one_chapter_are_one_program():
    state = FlowState(prefix="ch00.")
    state.set_topology(_topology(["ch00.inbox"]), now=0)
    for conn in (A, B):  # two cells, one after the other, under the chapter's name
        state.add_client_events([_opened(conn, "ch00.concepts")], now=1)
        state.add_events([_publish(conn, "ch00.inbox")], now=1)
        state.add_client_events([_closed(conn)], now=1)
    programs = _programs(picture_of(state, now=2))
    assert list(programs) == ["ch00.concepts"]
    assert "published 2" in programs["ch00.concepts"].lines


def test_two_connections_open_at_once_under_one_name_are_two_programs():
    state = FlowState(prefix="ch03.")
    state.set_topology(_topology(["ch03.work"]), now=0)
    state.add_client_events([_opened(A, "ch03.worker"), _opened(B, "ch03.worker")], now=1)
    state.add_events([_deliver(A, "ch03.work"), _deliver(B, "ch03.work")], now=1)
    assert sorted(_programs(picture_of(state, now=2))) == ["ch03.worker", "ch03.worker #2"]


def test_a_consumer_is_drawn_as_one_from_its_first_delivery():
    state = FlowState(prefix="ch03.")
    state.set_topology(_topology(["ch03.tasks"]), now=0)
    state.add_client_events(
        [
            _opened(A, "ch03.consumer"),
            ClientEvent(
                "consumer.created",
                connection=A,
                channel=1,
                queue="ch03.tasks",
                consumer_tag="ch03.fruit",
                prefetch=0,
                ack_required=True,
            ),
        ],
        now=1,
    )
    state.add_events([_deliver(A, "ch03.tasks")], now=1)
    state.add_client_events(
        [ClientEvent("consumer.deleted", connection=A, channel=1, queue="ch03.tasks",
                     consumer_tag="ch03.fruit"), _closed(A)],
        now=1.2,
    )  # fmt: skip
    picture = picture_of(state, now=2)
    edge = next(e for e in picture.edges if e.kind == "deliver")
    assert edge.label != "basic_get" and edge.count == 1
    assert state.deliveries_by_consumer() == {"ch03.fruit": 1}


def test_basic_get_is_drawn_as_basic_get():
    state = FlowState(prefix="ch00.")
    state.set_topology(_topology(["ch00.inbox"]), now=0)
    state.add_client_events([_opened(A, "ch00.concepts")], now=1)
    state.add_events([_deliver(A, "ch00.inbox")], now=1)
    edge = next(e for e in picture_of(state, now=2).edges if e.kind == "deliver")
    assert edge.label == "basic_get"


def test_a_program_that_publishes_and_consumes_is_one_box_on_the_left():
    state = FlowState(prefix="ch00.")
    state.set_topology(_topology(["ch00.inbox"]), now=0)
    state.add_client_events([_opened(A, "ch00.concepts")], now=1)
    state.add_events([_publish(A, "ch00.inbox"), _deliver(A, "ch00.inbox")], now=1)
    picture = picture_of(state, now=2)
    (box,) = _programs(picture).values()
    assert box.column == PROGRAMS
    assert {e.kind for e in picture.edges if box.id in (e.source, e.target)} == {
        "publish",
        "deliver",
    }


def test_programs_that_left_stay_until_reset():
    state = FlowState(prefix="ch00.")
    state.set_topology(_topology(["ch00.inbox"]), now=0)
    state.add_client_events([_opened(A, "sender"), _opened(B, "reader")], now=1)
    state.add_events([_publish(A, "ch00.inbox"), _deliver(B, "ch00.inbox")], now=1)
    state.add_client_events([_closed(A), _closed(B)], now=1)
    programs = _programs(picture_of(state, now=3600))
    assert programs["sender"].faded and "left" in programs["sender"].lines
    assert programs["reader"].column == CONSUMERS and programs["reader"].faded
    state.reset()
    assert _programs(picture_of(state, now=3600)) == {}


def test_many_programs_are_bounded_and_still_add_up():
    state = FlowState(prefix="q")
    state.set_topology(_topology(["q"]), now=0)
    for n in range(40):
        conn = f"127.0.0.1:{41000 + n} -> 127.0.0.1:5672"
        state.add_client_events([_opened(conn, f"sender {n}")], now=1)
        state.add_events([_publish(conn, "q")], now=1)
    picture = picture_of(state, now=2)
    assert len(_programs(picture)) == MAX_PROGRAMS
    assert sum(e.count for e in picture.edges if e.kind == "publish") == 40


def test_the_tutorials_own_connections_are_marked_and_can_be_hidden():
    state = FlowState(prefix="ch00.")
    state.set_topology(_topology(["ch00.inbox"]), now=0)
    state.add_client_events([_opened(A, "ch00.check"), _opened(B, "tutorial publish panel")], 1)
    state.add_events([_deliver(A, "ch00.inbox"), _publish(B, "ch00.inbox")], now=1)
    assert all(n.helper for n in _programs(picture_of(state, now=2)).values())
    assert _programs(picture_of(state, now=2, show_helpers=False)) == {}


def test_short_lived_reply_queues_fold_and_the_default_exchange_adds_up():
    reply = "amq.gen-abc"
    state = FlowState(prefix=("ch06.", "amq.gen-"))
    state.set_topology(_topology(["ch06.requests"]), now=0)
    state.add_client_events(
        [_opened(A, "client"), _opened(B, "server"), ClientEvent("queue.created", queue=reply)],
        now=1,
    )
    for _ in range(3):
        state.add_events(
            [_publish(A, "ch06.requests"), _deliver(B, "ch06.requests"), _publish(B, reply)],
            now=1,
        )
        state.add_events([_deliver(A, reply)], now=1)
    state.add_client_events([_closed(A), ClientEvent("queue.deleted", queue=reply)], now=1.5)
    picture = picture_of(state, now=2)
    folded = [n for n in picture.nodes if n.kind == "folded"]
    assert [n.title for n in folded] == ["1 short-lived queue"]
    _assert_adds_up(state, picture)


def _assert_adds_up(state: FlowState, picture: Picture) -> None:
    """Every count on the picture is accounted for: what programs published equals what
    came into the exchanges; what the default exchange received left it along a drawn edge
    (or was dropped); every delivery reached a drawn program."""
    edges = picture.edges
    totals = state.totals()
    assert sum(e.count for e in edges if e.kind == "publish") == totals["published"]
    default = "x:" + DEFAULT_EXCHANGE
    into = sum(e.count for e in edges if e.kind == "publish" and e.target == default)
    out = sum(e.count for e in edges if e.kind == "binding" and e.source == default)
    out += state.unroutable[DEFAULT_EXCHANGE] + totals.get("direct_replies", 0)
    if into:
        assert out == into, (into, out)
    assert sum(e.count for e in edges if e.kind == "deliver") == totals["delivered"]


@pytest.mark.parametrize("name", names())
def test_every_recorded_picture_adds_up(name):
    state = replay(name, prefix="")
    _assert_adds_up(state, picture_of(state, state.replayed_until))


@pytest.mark.parametrize("name", names())
def test_a_program_that_named_its_connection_is_drawn_under_that_name(name):
    state = replay(name)
    picture = picture_of(state, state.replayed_until)
    titles = {n.title for n in picture.nodes if n.kind == "program"}
    given = {
        state.clients.given_name(c[0])
        for c in list(state.producers) + [c for _q, c in state.deliveries_to]
    } - {None}
    for name_given in given:
        assert any(t == name_given or t.startswith(name_given + " #") for t in titles), (
            f"{name_given!r} is not a box: {titles}"
        )
    address = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+")
    if given:  # the recorded program named all its connections
        assert not [t for t in titles if address.search(t)], titles


def test_scope_entries():
    assert in_prefix("ch04.logs", "ch04.") and not in_prefix("ch04logs", "ch04.")
    assert in_prefix("celery", ("celery", "second")) and in_prefix("second", ("celery", "second"))
    assert not in_prefix("celeryev", ("celery",)) and not in_prefix("celeryev.1", ("celery",))
    assert in_prefix("ch05.jobs.dlx", "ch05.jobs") and not in_prefix("ch05.jobsx", "ch05.jobs")
    assert in_prefix("orders.eu", re.compile(r"^orders\.")) and not in_prefix("x", re.compile("^o"))
    assert in_prefix("anything", "")


def test_housekeeping_names():
    assert is_housekeeping("celery.pidbox") and is_housekeeping("a1b2.reply.celery.pidbox")
    assert is_housekeeping("celeryev", "worker.heartbeat")
    assert not is_housekeeping("celeryev", "task.sent") and not is_housekeeping("celery")
