"""The diagram's core against what real brokers said (RabbitMQ 3.10 and 4.3, recorded by
scripts/record_flow_cases.py): the state's counts, the layout, the SVG, the summary and the
caught-up decision, with no broker on the machine."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace

import pytest
from recorded import arrivals, load, names
from replay import events, replay, topology

from helpers.flow.caught_up import CatchUp
from helpers.flow.events import decode, encode
from helpers.flow.firehose import KEEP_EACH, compact
from helpers.flow.lifecycle import EventJoiner
from helpers.flow.state import DEFAULT_EXCHANGE, DIRECT_REPLY_TO, FlowState
from helpers.flow.topology import Consumer
from helpers.view.layout import place
from helpers.view.scene import picture_of
from helpers.view.svg import render_svg
from helpers.view.text import summary

CASES = names()
SVG = "{http://www.w3.org/2000/svg}"


def test_both_versions_are_recorded():
    versions = {name.rpartition("-")[2] for name in CASES}
    assert {"3.10", "4.3"} <= versions, f"recorded cases: {CASES}"
    scenarios = Counter(name.rpartition("-")[0] for name in CASES)
    assert all(n >= 2 for n in scenarios.values()), f"a scenario on one broker only: {scenarios}"


@pytest.mark.parametrize("name", CASES)
def test_counts_equal_what_the_broker_did(name):
    case = load(name)
    # everything: server-named reply queues, and Celery's pidbox and heartbeats too
    state = replay(case, prefix="", housekeeping=True)
    expected = case["expected"]

    def nonzero(counter: dict) -> dict:
        return {k: v for k, v in counter.items() if v}

    # Direct reply-to: the diagram counts a reply as sent straight to the caller, neither
    # routed nor dropped. The broker traces it as routed to the reply-to address and
    # delivered from it (4.3), or as routed nowhere (3.10).
    def direct(key: str) -> bool:
        return key.rpartition("|")[2].startswith(DIRECT_REPLY_TO)

    routed = {k: v for k, v in expected["routed"].items() if not direct(k)}
    delivered = {q: n for q, n in expected["delivered"].items() if not direct("|" + q)}
    unroutable = dict(expected["unroutable"])
    replies = sum(state.direct_replies.values())
    if name.startswith("rpc-"):
        assert replies == 3, "the scenario made three calls with direct reply-to"
        assert list(state.direct_replies.values()) == [3], "from one replier to one caller"
        traced_as = sum(n for k, n in expected["routed"].items() if direct(k)) or (
            unroutable.pop(DEFAULT_EXCHANGE, 0) - nonzero(state.unroutable).get("", 0)
        )
        assert traced_as == replies
    else:
        assert replies == 0
    assert nonzero(state.published) == expected["published"]
    assert nonzero(state.unroutable) == nonzero(unroutable)
    assert {f"{x}|{q}": n for (x, q), n in state.routed.items() if n} == routed
    assert nonzero(state.delivered) == delivered
    assert state.pending == 0


@pytest.mark.parametrize("name", CASES)
def test_every_recorded_trace_message_parses_and_crosses_the_pipe(name):
    case = load(name)
    for step in case["steps"]:
        for event in events(step["trace"]):
            back = decode(encode(event))
            assert (back.kind, back.exchange, back.routing_keys, back.routed_queues) == (
                event.kind,
                event.exchange,
                event.routing_keys,
                event.routed_queues,
            )
            assert (back.queue, back.connection, back.channel, back.redelivered) == (
                event.queue,
                event.connection,
                event.channel,
                event.redelivered,
            )
            assert back.body == event.body[:256] and back.body_size == len(event.body)
            assert (back.message_id, back.reply_to, back.user) == (
                event.message_id,
                event.reply_to,
                event.user,
            )
            assert event.connection and " -> " in event.connection


@pytest.mark.parametrize("name", CASES)
def test_client_events_were_recorded_in_order_and_join(name):
    case = load(name)
    joiner = EventJoiner()
    joined = []
    for step in case["steps"]:
        places = [e["after"] for e in step["events"]]
        assert places == sorted(places) and all(0 <= a <= len(step["trace"]) for a in places)
        kinds = [kind for kind, _item in arrivals(step)]
        assert kinds.count("trace") == len(step["trace"])
        for event in step["events"]:
            joined.append(joiner.feed(event["routing_key"], event["headers"], case["vhost"]))
    assert None not in joined, "the recorder keeps only the events of the case's vhost"
    kinds = Counter(e.kind for e in joined)
    assert kinds["connection.created"] >= 2, "the recorder's own tracer and probe at least"
    assert kinds["consumer.created"] >= 1, "the tracer's consumer at least"
    for event in joined:
        if event.kind.startswith(("consumer.", "channel.")):
            assert event.connection and event.channel, f"not joined to its channel: {event}"


def test_a_burst_is_compacted_and_still_counts_every_message():
    (name,) = [n for n in CASES if n.startswith("burst-4.")][:1]
    trace = [e for step in load(name)["steps"] for e in events(step["trace"])]
    assert len(trace) >= 500
    sent = [decode(item) for item in compact(trace)]
    assert len(sent) < len(trace) / 10, "alike events travel as one"
    assert sum(e.repeat for e in sent) == len(trace)
    assert [e.body for e in sent[-KEEP_EACH:]] == [e.body for e in trace[-KEEP_EACH:]]
    # The state counts the compacted batch as it counts the messages one by one.
    one_by_one, compacted = FlowState(prefix="rec."), FlowState(prefix="rec.")
    final = topology(load(name)["steps"][-1]["api"])
    for state, batch in ((one_by_one, trace), (compacted, sent)):
        state.set_topology(final, now=1.0)
        state.add_events(batch, now=1.0)
    assert compacted.totals() == one_by_one.totals()
    assert compacted.routed == one_by_one.routed
    assert compacted.deliveries_to == one_by_one.deliveries_to


@pytest.mark.parametrize("name", CASES)
def test_layout_keeps_boxes_apart_and_the_svg_is_well_formed(name):
    state = replay(name)
    placed = place(picture_of(state, state_time(state)))
    boxes = list(placed.boxes.items())
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            side = ba.x + ba.w <= bb.x or bb.x + bb.w <= ba.x
            apart = side or ba.y + ba.h <= bb.y or bb.y + bb.h <= ba.y
            assert apart, f"{a} and {b} overlap"
        assert 0 <= ba.x and ba.x + ba.w <= placed.width
        assert 0 <= ba.y and ba.y + ba.h <= placed.height
    html = render_svg(state, now=state_time(state))
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    drawn = {g.get("data-name") for g in root.iter(f"{SVG}g") if g.get("data-name")}
    for q in state.visible_queues():
        assert q.name in drawn
    for x in state.visible_exchanges():
        assert ("(default)" if x.name == DEFAULT_EXCHANGE else x.name) in drawn
    assert f"published {state.totals()['published']}" in "".join(root.itertext())


def state_time(state: FlowState) -> float:
    return state.replayed_until  # the replay's clock: programs that left are still drawn


@pytest.mark.parametrize("version", ["3.10", "4.3"])
def test_summary_of_the_exchanges_case(version):
    text = summary(replay(f"exchanges-{version}"))
    for line in (
        "  exchange rec.fanout (fanout): -> rec.f1; -> rec.f2; -> rec.f3",
        "  exchange rec.main (direct): order -> rec.orders; unroutable -> rec.ae",
        "  exchange rec.upstream (direct): app.error -> rec.topic",
        "  queue rec.pdf: ready=1 unacked=0 consumers=0",
    ):
        assert line in text.splitlines()
    assert "format=pdf, x-match=all -> rec.pdf" in text


def test_scope_draws_only_the_prefix_and_never_a_trace_queue():
    case = load("exchanges-4.3")
    # A regular expression: the f-queues and the fanout exchange, nothing else of rec.
    state = replay(case, prefix=re.compile(r"^rec\.f"))
    assert [q.name for q in state.visible_queues()] == ["rec.f1", "rec.f2", "rec.f3"]
    assert [x.name for x in state.visible_exchanges()] == ["rec.fanout"]
    everything = replay(case, prefix="")
    trace_queue = case["trace_queue"]
    assert trace_queue in {q.name for q in everything.topology.queues}
    assert trace_queue not in {q.name for q in everything.visible_queues()}
    assert "amq.rabbitmq.trace" not in {x.name for x in everything.visible_exchanges()}


# -- when the picture has caught up -----------------------------------------------------------


def readings(name: str) -> list[tuple[float, object, dict, list[str]]]:
    case = load(name)
    out = []
    for r in case["readings"]:
        topo = topology(r["api"])
        drawn = [q.name for q in topo.queues if q.name.startswith(case["prefix"])]
        exact = {q: (c[0], c[1]) for q, c in r["exact"].items() if q in drawn}
        out.append((r["at"], topo, exact, drawn))
    return out


def judge_all(name: str, hold_s: float = 2.0) -> list[bool]:
    judge = CatchUp(hold_s)
    return [bool(judge.observe(t, e, d, 0, at)) for at, t, e, d in readings(name)]


@pytest.mark.parametrize("name", [n for n in CASES if n.rpartition("-")[0] != "burst"])
def test_caught_up_only_when_the_api_agrees_with_the_queues(name):
    verdicts = judge_all(name)
    assert verdicts[-1], f"{name}: the recorded reads never settled"
    for ok, (_at, topo, exact, drawn) in zip(verdicts, readings(name), strict=True):
        if not ok:
            continue
        api = {q.name: q for q in topo.queues}
        for q, (ready, _consumers) in exact.items():
            if api[q].type != "stream":
                assert api[q].ready == ready, f"{name}: caught up while {q} disagreed"
        assert all(c.connection for c in topo.consumers if c.queue in drawn)


@pytest.mark.parametrize("version", ["3.10", "4.3"])
def test_counts_that_lag_must_hold_still_first(version):
    name = f"queue_types-{version}"
    rows = readings(name)
    assert any(q.counts_lag for q in rows[-1][1].queues if q.name.startswith("rec."))
    verdicts = judge_all(name)
    first = verdicts.index(True)
    assert rows[first][0] - rows[0][0] >= 2.0, "quorum and stream counts held still 2 s"
    assert judge_all(name, hold_s=0.0).index(True) <= first


def test_a_disagreeing_queue_is_named():
    at, topo, exact, drawn = readings("direct-4.3")[-1]
    judge = CatchUp()
    judge.observe(topo, exact, drawn, 0, at)
    assert judge.observe(topo, exact, drawn, 0, at + 0.1)
    wrong = {**exact, "rec.info": (exact["rec.info"][0] + 1, 0)}
    verdict = judge.observe(topo, wrong, drawn, 0, at + 0.2)
    assert not verdict and "rec.info" in verdict.why
    assert "did not answer" in judge.observe(topo, None, drawn, 0, at + 0.3).why
    assert "not placed" in judge.observe(topo, exact, drawn, 2, at + 0.4).why


def test_another_connections_exclusive_queue_is_waited_for_by_holding_still():
    name = [n for n in CASES if n.startswith("exclusive_other-4.")][0]
    rows = readings(name)
    at, topo, exact, drawn = rows[-1]
    assert "rec.excl" in drawn and "rec.excl" not in exact, "the queue refused (405)"
    judge = CatchUp()
    assert not judge.observe(topo, exact, drawn, 0, at)
    assert not judge.observe(topo, exact, drawn, 0, at + 1.0)
    assert judge.observe(topo, exact, drawn, 0, at + 2.5)


def test_a_consumer_outside_the_picture_without_its_connection_is_not_waited_for():
    """A worker of another program (examples/ in a terminal) on a queue the diagram does not
    draw, listed by the API without its connection, does not keep the picture from catching
    up; the same consumer on a drawn queue does."""
    at, topo, exact, drawn = readings("direct-4.3")[-1]
    elsewhere = Consumer("examples.tasks", "ctag1.x", 1, True, "", 0)
    mine = Consumer("rec.info", "ctag1.y", 1, True, "", 0)
    for extra, caught in ((elsewhere, True), (mine, False)):
        judge = CatchUp()
        changed = replace(topo, consumers=(*topo.consumers, extra))
        judge.observe(changed, exact, drawn, 0, at)
        verdict = judge.observe(changed, exact, drawn, 0, at + 0.1)
        assert bool(verdict) is caught, verdict.why
        assert caught or "without its connection" in verdict.why
