"""A gallery of pictures shaped like the chapters' real runs, to place and draw and measure
(tests/test_diagram_gallery.py in Chromium, tests/unit/test_layout.py without).

Each entry is a function returning a `Picture`; add one with one line, e.g. a recorded run:

    GALLERY["rpc-4.3"] = lambda: recorded("rpc-4.3")

The hand-built ones below keep the shapes learners found hard to read: a program that
publishes and consumes (its deliveries come back to it), two bindings into one queue, direct
reply-to, long queue names and consumer tags, a retry ladder of dead-letter links, two
producer edges crossing with counts 23 and 1 (Celery), a folded box, and many programs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from helpers.view.picture import CONSUMERS, EXCHANGES, PROGRAMS, QUEUES, Dot, Edge, Node, Picture

LEGEND = (
    "published: messages sent to an exchange · routed: copies placed in queues (one message "
    "in 3 queues counts 3) · unroutable: dropped by an exchange · delivered: handed to a "
    "consumer or basic_get",
)
TAG = "ctag1.4f3a8e9b2c0d1e2f3a4b5c6d7e8f9b2c"  # pika's default consumer tag: ctag1. + 32 hex
TAG2 = "ctag1.9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"


def program(name: str, *lines: str, column: str = PROGRAMS, order: int = 0, **kw) -> Node:
    return Node(f"p:{name}", "program", column, name, tuple(lines), order=order, **kw)


def exchange(name: str, kind: str = "direct", order: int = 0, **kw) -> Node:
    title = name or "(default)"
    return Node(f"x:{name}", "exchange", EXCHANGES, title, (f"{kind} exchange",), order=order, **kw)


def queue(name: str, ready: int = 0, unacked: int = 0, *more: str, order: int = 0) -> Node:
    lines = (f"ready {ready} · unacked {unacked}", *more)
    return Node(f"q:{name}", "queue", QUEUES, name, lines, meter=(ready, unacked), order=order)


def edge(kind: str, source: str, target: str, label: str = "", count: int = 0, **kw) -> Edge:
    return Edge(f"{kind}|{source}|{target}", kind, source, target, label, count, **kw)


def totals(published: int, routed: int, delivered: int, unroutable: int = 0) -> str:
    return (
        f"published {published} · routed {routed} · unroutable {unroutable} · "
        f"delivered {delivered} · redelivered 0"
    )


def ch00() -> Picture:
    """One program publishing and consuming through the default exchange."""
    me = program(
        "ch00.notebook", "published 3", f"consumer {TAG}", "no prefetch limit · auto ack",
        "received 3", program=0,
    )  # fmt: skip
    return Picture(
        nodes=(me, exchange(""), queue("ch00.hello", 0, 0)),
        edges=(
            edge("publish", me.id, "x:", count=3),
            edge("binding", "x:", "q:ch00.hello", "ch00.hello", 3),
            edge("deliver", "q:ch00.hello", me.id, count=3),
        ),
        dots=(
            Dot(("publish|p:ch00.notebook|x:", "binding|x:|q:ch00.hello"), 0.4, "publish", "hi"),
            Dot(("deliver|q:ch00.hello|p:ch00.notebook",), 0.2, "deliver", "hi"),
        ),
        caption=totals(3, 3, 3),
        legend=LEGEND,
        log=("ch00.notebook → (default) [ch00.hello]: hello (5 B) → ch00.hello",) * 3,
    )


def ch04() -> Picture:
    """A topic and a headers exchange: bindings with keys, two of them into one queue."""
    producer = program("ch04.producer", "published 9", program=0)
    nodes = [
        producer,
        exchange("ch04.logs", "topic", 0),
        exchange("ch04.headers", "headers", 1, note="✕ 1 unroutable"),
    ]
    keys = {
        "ch04.all": ("ch04.logs", "#", 6),
        "ch04.errors": ("ch04.logs", "*.error | *.critical", 3),
        "ch04.kern": ("ch04.logs", "kern.*", 2),
        "ch04.auth": ("ch04.logs", "auth.*", 1),
        "ch04.pdf": ("ch04.headers", "all: format=pdf, type=report", 1),
    }
    edges = [
        edge("publish", producer.id, "x:ch04.logs", count=6),
        edge("publish", producer.id, "x:ch04.headers", count=3),
    ]
    for i, (q, (x, key, n)) in enumerate(keys.items()):
        nodes.append(queue(q, n, 0, order=i))
        edges.append(edge("binding", f"x:{x}", f"q:{q}", key, n))
    edges.append(edge("binding", "x:ch04.headers", "q:ch04.auth", "any: type=auth, level=high", 1))
    reader = program(
        "ch04.error reader", f"consumer {TAG}", "prefetch 1 · manual ack", "received 3",
        column=CONSUMERS, program=1,
    )  # fmt: skip
    archive = program(
        "ch04.archive", "consumer archive-1", "no prefetch limit · auto ack", "received 6",
        column=CONSUMERS, order=1, program=2,
    )  # fmt: skip
    nodes += [reader, archive]
    edges += [
        edge("deliver", "q:ch04.errors", reader.id, count=3),
        edge("deliver", "q:ch04.all", archive.id, count=6),
    ]
    return Picture(tuple(nodes), tuple(edges), caption=totals(9, 14, 9, 1), legend=LEGEND)


def e2e() -> Picture:
    """Exchange-to-exchange bindings and an alternate exchange: a second column of
    exchanges, and a binding that passes it on its way to a queue."""
    producer = program("ch05.producer", "published 5", program=0)
    nodes = (
        producer,
        exchange("ch05.front", "topic", 0),
        Node("x:ch05.audit", "exchange", EXCHANGES, "ch05.audit", ("fanout exchange",), depth=1),
        Node("x:ch05.unrouted", "exchange", EXCHANGES, "ch05.unrouted", ("fanout exchange",),
             depth=1, order=1),
        queue("ch05.orders", 4, 0, order=0),
        queue("ch05.audit.log", 5, 0, order=1),
        queue("ch05.lost", 1, 0, order=2),
        program("ch05.shop", "consumer shop-1", "prefetch 5 · manual ack", "received 4",
                column=CONSUMERS, program=1),
    )  # fmt: skip
    edges = (
        edge("publish", producer.id, "x:ch05.front", count=5),
        edge("binding", "x:ch05.front", "x:ch05.audit", "#", 5),
        edge("alternate", "x:ch05.front", "x:ch05.unrouted", "alternate", 1, dashed=True),
        edge("binding", "x:ch05.front", "q:ch05.orders", "order.*", 4),
        edge("binding", "x:ch05.audit", "q:ch05.audit.log", "", 5),
        edge("binding", "x:ch05.unrouted", "q:ch05.lost", "", 1),
        edge("deliver", "q:ch05.orders", "p:ch05.shop", count=4),
    )
    return Picture(nodes, edges, caption=totals(5, 10, 4), legend=LEGEND)


def ch06() -> Picture:
    """RPC: two programs that both publish and consume, a reply queue, direct reply-to."""
    client = program(
        "ch06.rpc client", "published 6", f"consumer {TAG}", "no prefetch limit · auto ack",
        "consumer amq.ctag-Xk2_7QmPz1", "no prefetch limit · auto ack", "received 6",
        program=0,
    )  # fmt: skip
    server = program(
        "ch06.rpc server", "published 3", f"consumer {TAG2}", "prefetch 1 · manual ack",
        "received 6", order=1, program=1,
    )  # fmt: skip
    nodes = (
        client,
        server,
        exchange(""),
        queue("ch06.requests", 0, 1),
        queue("ch06.replies", 0, 0, order=1),
        queue("ch06.exercise.requests", 0, 0, order=2),
    )
    edges = (
        edge("publish", client.id, "x:", count=6),
        edge("publish", server.id, "x:", count=3),
        edge("binding", "x:", "q:ch06.requests", "ch06.requests", 6),
        edge("binding", "x:", "q:ch06.replies", "ch06.replies", 3),
        edge("binding", "x:", "q:ch06.exercise.requests", "ch06.exercise.requests", 0),
        edge("deliver", "q:ch06.requests", server.id, count=6),
        edge("deliver", "q:ch06.replies", client.id, count=3),
        edge("reply", server.id, client.id, "reply · 3", 3, dashed=True),
    )
    return Picture(nodes, edges, caption=totals(9, 9, 9) + " · direct replies 3", legend=LEGEND)


def ch07() -> Picture:
    """Queue types: long names, a stream, long consumer tags."""
    producer = program("ch07.producer", "published 12", program=0)
    names = ("ch07.two.classic", "ch07.two.quorum", "ch07.two.stream", "ch07.priority.quorum")
    kinds = ("classic", "quorum queue", "stream queue", "quorum queue")
    nodes = [producer, exchange("")]
    edges = []
    for i, (q, kind) in enumerate(zip(names, kinds, strict=True)):
        nodes.append(queue(q, 3 if i != 2 else 0, 0, *(() if i == 0 else (kind,)), order=i))
        edges.append(edge("binding", "x:", f"q:{q}", q, 3))
    edges.append(edge("publish", producer.id, "x:", count=12))
    reader = program(
        "ch07.stream reader", f"consumer {TAG}", "prefetch 100 · manual ack · offset first",
        "received 3", column=CONSUMERS, program=1,
    )  # fmt: skip
    worker = program(
        "ch07.worker", f"consumer {TAG2}", "no prefetch limit, auto ack", "received 3",
        column=CONSUMERS, order=1, program=2,
    )  # fmt: skip
    nodes += [reader, worker]
    edges += [
        edge("deliver", "q:ch07.two.stream", reader.id, count=3),
        edge("deliver", "q:ch07.two.classic", worker.id, count=3),
    ]
    return Picture(tuple(nodes), tuple(edges), caption=totals(12, 12, 6), legend=LEGEND)


def ch08() -> Picture:
    """The retry ladder: four queues dead-lettering to exchanges that route back."""
    producer = program("ch08.producer", "published 6", program=0)
    consumer = program(
        "ch08.consumer", "published 4", f"consumer {TAG}", "prefetch 10 · manual ack",
        "received 10", order=1, program=1,
    )  # fmt: skip
    check = program(
        "ch08.check_exercise", "the tutorial's own", "basic_get 1", "left",
        column=CONSUMERS, helper=True, faded=True, program=2,
    )  # fmt: skip
    nodes = [producer, consumer, check]
    nodes += [
        exchange("ch08.in", "direct", 0),
        exchange("ch08.retry", "direct", 1),
        exchange("ch08.dlx", "fanout", 2),
        queue("ch08.work", 0, 0, "quorum queue", order=0),
    ]
    nodes += [queue(f"ch08.wait.{i}", 0, 0, "quorum queue", order=i) for i in (1, 2, 3)]
    nodes.append(queue("ch08.parked", 0, 0, "quorum queue", order=4))
    edges = [
        edge("publish", producer.id, "x:ch08.in", count=6),
        edge("publish", consumer.id, "x:ch08.retry", count=4),
        edge("binding", "x:ch08.in", "q:ch08.work", "work", 10),
        edge("binding", "x:ch08.dlx", "q:ch08.parked", "", 1),
        edge("deliver", "q:ch08.work", consumer.id, count=10),
        edge("deliver", "q:ch08.parked", check.id, "basic_get", 1),
        edge("deadletter", "q:ch08.work", "x:ch08.dlx", "dead letters", dashed=True),
    ]
    for i, n in ((1, 2), (2, 1), (3, 1)):
        edges.append(edge("binding", "x:ch08.retry", f"q:ch08.wait.{i}", str(i), n))
        edges.append(edge("deadletter", f"q:ch08.wait.{i}", "x:ch08.in", "dead letters"))
    return Picture(tuple(nodes), tuple(edges), caption=totals(10, 14, 11), legend=LEGEND)


def celery() -> Picture:
    """A Celery worker: pidbox and event queues, tags None and ctag1…, crossing producers."""
    worker = program(
        "celery@worker1", "published 1", "consumer None", "prefetch 4 · manual ack",
        f"consumer {TAG}", "no prefetch limit · auto ack", "+1 more consumers", "received 24",
        program=0,
    )  # fmt: skip
    app = program("celery app", "published 23", order=1, program=1, badge="blocked",
                  badge_hover="the broker stopped reading this connection")  # fmt: skip
    flower = program(
        "flower", "consumer None", "no prefetch limit · auto ack", "received 1",
        column=CONSUMERS, program=2,
    )  # fmt: skip
    events = "celeryev.6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"
    pidbox = "celery@worker1.celery.pidbox"
    nodes = (
        worker,
        app,
        flower,
        exchange("celery", "direct", 0),
        exchange("celery.pidbox", "fanout", 1),
        exchange("celeryev", "topic", 2),
        exchange("reply.celery.pidbox", "direct", 3),
        queue("celery", 0, 2, order=0),
        queue(pidbox, 0, 0, order=1),
        queue(events, 0, 0, order=2),
        Node("f:reply.celery.pidbox", "folded", QUEUES, "2 short-lived queues",
             ("1 routed · gone now",), order=3),
    )  # fmt: skip
    edges = (
        edge("publish", app.id, "x:celery", count=23),
        edge("publish", worker.id, "x:celeryev", count=1),
        edge("binding", "x:celery", "q:celery", "celery", 23),
        edge("binding", "x:celery.pidbox", f"q:{pidbox}", "", 0),
        edge("binding", "x:celeryev", f"q:{events}", "worker.#", 1),
        edge("binding", "x:reply.celery.pidbox", "f:reply.celery.pidbox", "", 1),
        edge("deliver", "q:celery", worker.id, count=23),
        edge("deliver", f"q:{pidbox}", worker.id, count=0),
        edge("deliver", f"q:{events}", flower.id, count=1),
    )
    return Picture(
        nodes, edges, caption=totals(24, 25, 24), legend=LEGEND,
        notes=("blocked by the broker (a resource alarm), publishes waiting: celery beat",),
    )  # fmt: skip


def folded() -> Picture:
    """Reply queues that have gone, folded into one box."""
    caller = program("ch06.caller", "published 3", "received 3", program=0)
    fold = Node(
        "f:", "folded", QUEUES, "3 short-lived queues", ("3 routed · gone now",),
        hover="3 short-lived queues, no longer on the broker: amq.gen-a, amq.gen-b, amq.gen-c",
    )  # fmt: skip
    return Picture(
        (caller, exchange(""), fold),
        (
            edge("publish", caller.id, "x:", count=3),
            edge("binding", "x:", "f:", count=3),
            edge("deliver", "f:", caller.id, count=3),
        ),
        caption=totals(3, 3, 3),
        legend=LEGEND,
    )


def many() -> Picture:
    """24 programs, 30 queues, one topic and one fanout exchange."""
    nodes = [exchange("load.topic", "topic", 0), exchange("load.fanout", "fanout", 1)]
    edges = []
    for i in range(24):
        p = program(f"load.sender {i:02d}", f"published {i + 1}", order=i, program=i)
        nodes.append(p)
        edges.append(edge("publish", p.id, "x:load.topic", count=i + 1))
        if i % 6 == 0:
            edges.append(edge("publish", p.id, "x:load.fanout", count=1))
    for j in range(30):
        q = f"load.q{j:02d}"
        nodes.append(queue(q, j % 7, j % 3, order=j))
        edges.append(edge("binding", "x:load.topic", f"q:{q}", f"load.{j:02d}.*", j))
        if j % 6 == 0:
            edges.append(edge("binding", "x:load.fanout", f"q:{q}", "", 4))
    for k in range(10):
        c = program(f"load.reader {k}", f"consumer {TAG[:-2]}{k:02d}", "prefetch 10 · manual ack",
                    column=CONSUMERS, order=k, program=k)  # fmt: skip
        nodes.append(c)
        for j in (3 * k, 3 * k + 1, 3 * k + 2):
            edges.append(edge("deliver", f"q:load.q{j:02d}", c.id, count=j))
    return Picture(tuple(nodes), tuple(edges), caption=totals(300, 435, 435), legend=LEGEND)


def hostile() -> Picture:
    """Names from elsewhere that are markup: everything must come out as text."""
    evil = "<script>alert('x')</script>"
    p = program(evil, "\"&' published 1", program=0, hover=evil)
    x = exchange('x"&<b>', note="✕ 1 <i>unroutable</i>")
    q = queue("q</text><text>", 1, 0)
    return Picture(
        (p, x, q),
        (
            edge("publish", p.id, x.id, count=1),
            edge("binding", x.id, q.id, "<key & \"quote\" 'apos'>", 1, hover=evil),
        ),
        dots=(Dot((f"publish|{p.id}|{x.id}",), 0.1, "publish", evil),),
        caption="published 1 <b>bold</b>",
        legend=("legend & <legend>",),
        notes=("blocked: <img src=x onerror=alert(1)>",),
        log=("log <script>1</script> & 'x'",),
    )


def empty() -> Picture:
    return Picture(
        empty="nothing named ch04.… yet: declare an exchange or a queue",
        caption=totals(0, 0, 0),
        legend=LEGEND,
    )


def recorded(name: str) -> Picture:
    """The picture of a recorded broker run (tests/unit/data), as the live diagram has it at
    the end of the run."""
    unit = str(Path(__file__).resolve().parent / "unit")
    if unit not in sys.path:
        sys.path.insert(0, unit)
    from replay import replay

    from helpers.view.scene import picture_of

    state = replay(name)
    return picture_of(state, state.replayed_until)


GALLERY: dict[str, Callable[[], Picture]] = {
    "ch00": ch00,
    "ch04": ch04,
    "e2e": e2e,
    "ch06": ch06,
    "ch07": ch07,
    "ch08": ch08,
    "celery": celery,
    "folded": folded,
    "many": many,
    "hostile": hostile,
    "empty": empty,
}
# Recorded broker runs (tests/unit/data): the chapters' shapes, and programs nobody here wrote
# (a Celery worker, kombu, RabbitMQ's official tutorials 1-6), on both versions.
for _name in (
    "burst", "dead_letter", "direct", "exchanges", "exclusive_other", "queue_types", "rpc",
    "work_queue", "celery", "kombu", "tutorials",
):  # fmt: skip
    for _version in ("4.3", "3.10"):
        if _name != "tutorials" or _version == "4.3":  # the tutorials need RabbitMQ 4
            GALLERY[f"{_name}-{_version}"] = partial(recorded, f"{_name}-{_version}")
