"""Self-check for chapter 10 (a cluster, and a node that dies): a reconnecting consumer.

The learner writes `consume(hosts, queue, work, stop)`: consume `queue` with manual acks
from the cluster whose nodes `hosts` lists (pika ConnectionParameters, node1 first), call
`work(message_id, body)` once per message id, acknowledge every delivery, reconnect to
another node from the list when the connection drops, and return once `stop` (a
threading.Event) is set.

The check declares a quorum queue led by node1, publishes ORDERS orders with confirms (a few
of them twice, as a producer does after a lost confirm; every body is the same), runs the
learner's `consume` in a thread, kills node1 (SIGKILL) once some orders were processed, waits
until every order was processed or a timeout, sets `stop`, starts node1 again and counts:
every order processed exactly once, none left in the queue.

Typical mistakes, each with its own hint: no reconnect loop (the connection error ends the
consumer), reconnecting to the first host only (it is the dead one), no deduplication
(orders processed twice), deduplicating on the body (different orders look the same),
`auto_ack=True` (orders in flight die with the node), no ack for the duplicates it skips,
not returning when `stop` is set. Each run declares the queue afresh and deletes it, and
judges only that run, so checking twice gives the same answer.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from helpers.checks import CheckResult, hint, passed
from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.node.cluster import ClusterBroker

QUEUE = "ch10.ex.orders"
ORDERS = 120
TWICE = ("order-003", "order-040", "order-080", "order-110")  # published twice
BODY = b"1 coffee"  # every order has the same body: only the message id tells them apart
WORK_S = 0.01  # each work call takes this long, so the kill lands in the middle
KILL_AFTER = 25  # orders processed before node1 is killed
FIRST_WAIT_S = 8.0
FINISH_S = 20.0
STOP_S = 5.0


@dataclass
class _Run:
    calls: Counter = field(default_factory=Counter)  # message_id -> work calls
    after_kill: int = 0  # work calls after the kill
    killed: str | None = None
    error: BaseException | None = None  # what escaped consume
    returned: bool = False
    last_call: float = 0.0
    left_in_queue: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def order_ids() -> list[str]:
    return [f"order-{i:03}" for i in range(1, ORDERS + 1)]


def check_exercise(cluster: ClusterBroker, consume: object, queue: str = QUEUE) -> CheckResult:
    """Run `consume` while node1 dies under it; judge what it processed and acked."""
    if consume is None:
        return hint(
            _(
                "There is no function named consume yet: write def consume(hosts, queue, work, "
                "stop): in the cell above, run it, then run this check again."
            )
        )
    if not callable(consume):
        return hint(_(
            "consume is {consume_type}, not a function: define it with def."
        ).format(consume_type=type(consume).__name__))
    try:
        inspect.signature(consume).bind(None, None, None, None)
    except (TypeError, ValueError):
        return hint(_(
            "consume must take four arguments, in this order: (hosts, queue, work, stop)."
        ))
    try:
        source = inspect.getsource(consume)
    except (OSError, TypeError):
        source = ""
    if "auto_ack=True" in source.replace(" ", ""):
        return hint(
            _(
                "Your consume uses auto_ack=True: the broker forgets a message as soon as it "
                "sends it, so the orders on their way to a node that dies are lost. Acknowledge "
                "by hand, after work(...) has returned."
            )
        )
    run = _run(cluster, consume, queue)
    return _judge(run)


def _hosts(cluster: ClusterBroker) -> list[pika.ConnectionParameters]:
    return cluster.connection_parameters(connection_attempts=2, retry_delay=0.2,
                                         socket_timeout=2)


def _run(cluster: ClusterBroker, consume: Any, queue: str) -> _Run:
    nodes = cluster.cluster
    nodes.start_nodes(cluster.nodes)  # every node up, whatever an earlier run left
    hosts = _hosts(cluster)
    _fresh_quorum_queue(hosts[0], queue)  # through node1: the queue's leader
    with pika.BlockingConnection(hosts[1]) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        ids = order_ids()
        for message_id in ids + list(TWICE):
            channel.basic_publish("", queue, BODY, pika.BasicProperties(
                message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent))
    run = _Run()
    killed = threading.Event()

    def work(message_id: Any, body: Any) -> None:
        with run.lock:
            run.calls[message_id] += 1
            run.last_call = time.monotonic()
            if killed.is_set():
                run.after_kill += 1
        time.sleep(WORK_S)

    stop = threading.Event()

    def target() -> None:
        try:
            consume(list(hosts), queue, work, stop)
        except BaseException as exc:  # noqa: BLE001 - judged below
            run.error = exc
        run.returned = True

    thread = threading.Thread(target=target, name="ch10-check-consumer", daemon=True)
    thread.start()
    try:
        # Enough processed to kill node1 under it; or a consumer that stalled (it skips
        # everything as a duplicate, say): nothing new for a second.
        _wait(lambda: sum(run.calls.values()) >= KILL_AFTER or run.returned
              or (run.calls and time.monotonic() - run.last_call > 1.0), FIRST_WAIT_S)
        if sum(run.calls.values()) >= KILL_AFTER and not run.returned:
            leader = cluster.queue_state(queue).leader or "node1"
            nodes.kill(leader)
            run.killed = leader
            killed.set()
            _wait(lambda: set(ids) <= set(run.calls) or run.returned, FINISH_S)
            time.sleep(0.5)  # a duplicate delivered late still counts
    finally:
        stop.set()
        thread.join(STOP_S)
        if run.killed:
            nodes.start_nodes([run.killed])
    try:
        with pika.BlockingConnection(_hosts(cluster)) as connection:
            channel = connection.channel()
            run.left_in_queue = channel.queue_declare(queue, passive=True).method.message_count
            channel.queue_delete(queue)
    except pika.exceptions.AMQPError:
        pass
    return run


def _fresh_quorum_queue(host: pika.ConnectionParameters, queue: str) -> None:
    """Delete `queue` and declare it again, as a quorum queue, with every member running.

    The deleted queue's members shut down on their nodes a moment after the delete. A queue
    of the same name declared before then can miss a member, which fails to start
    (`already_started`, seen on 4.3.6 on a busy machine); the queue then runs on two members,
    and the node the check kills takes the majority with it. A second between the two
    leaves them time (they take milliseconds). The chapter's fresh_quorum_queue() does the
    same.
    """
    with pika.BlockingConnection(host) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        connection.sleep(1.0)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _judge(run: _Run) -> CheckResult:
    ids = set(order_ids())
    processed = set(run.calls)
    twice = sorted(m for m, n in run.calls.items() if n > 1)
    missing = sorted(ids - processed)
    if not run.calls:
        if run.error is not None:
            return hint(_(
                "Your consume raised {error_type}: {run_error}. Fix that first: "
                "connect with pika.BlockingConnection(hosts), consume queue with manual acks, "
                "call work(properties.message_id, body)."
            ).format(error_type=type(run.error).__name__, run_error=run.error))
        return hint(
            _(
                "work was never called within {FIRST_WAIT_S:.0f} s: consume the queue it is given "
                "(channel.consume(queue, inactivity_timeout=...)) and call "
                "work(properties.message_id, body) for each message."
            ).format(FIRST_WAIT_S=FIRST_WAIT_S)
        )
    if len(processed) <= 2 and len(run.calls) < len(ids):
        return hint(
            _(
                "Only {n_processed} of {n_ids} orders were processed: every order has the same "
                "body, so deduplicate by properties.message_id, not on the body."
            ).format(n_processed=len(processed), n_ids=len(ids))
        )
    if run.killed is None:
        return hint(
            _(
                "consume returned after {value} messages, before any node died: keep consuming "
                "until stop is set (stop.is_set())."
            ).format(value=sum(run.calls.values()))
        )
    if run.error is not None and isinstance(run.error, pika.exceptions.AMQPError):
        return hint(
            _(
                "When {run_killed} died, your consume ended with {error_type}: wrap "
                "the connection in a loop that catches pika.exceptions.AMQPError (the connection "
                "errors are among them) and connect again, until stop is set."
            ).format(run_killed=run.killed, error_type=type(run.error).__name__)
        )
    if run.error is not None:
        return hint(_(
            "Your consume raised {error_type}: {run_error}."
        ).format(error_type=type(run.error).__name__, run_error=run.error))
    if run.after_kill == 0 and missing:
        return hint(
            _(
                "After {run_killed} died your consumer processed nothing more: it kept trying the "
                "dead node. Pass the whole list of hosts to pika.BlockingConnection(hosts): it "
                "tries each in turn."
            ).format(run_killed=run.killed)
        )
    if not run.returned:
        return hint(
            _(
                "consume did not return within {STOP_S:.0f} s after stop was set: check "
                "stop.is_set() between messages, with channel.consume(queue, "
                "inactivity_timeout=0.1) so that the loop wakes up when nothing arrives."
            ).format(STOP_S=STOP_S)
        )
    if twice:
        return hint(
            _(
                "{n_twice} orders were processed twice (e.g. {v_0}): a message comes again when "
                "it was published twice or its ack died with a node. Deduplicate by message_id: "
                "remember each properties.message_id you processed, and skip (but acknowledge) "
                "one you saw before."
            ).format(n_twice=len(twice), v_0=twice[0])
        )
    if missing:
        return hint(
            _(
                "{n_missing} orders never reached work (e.g. {v_0}): acknowledge a message only "
                "after work(...) has returned, and keep consuming after you reconnect."
            ).format(n_missing=len(missing), v_0=missing[0])
        )
    if run.left_in_queue:
        return hint(
            _(
                "{run_left_in_queue} messages were still in the queue at the end: acknowledge "
                "every delivery, also the duplicates you skip "
                "(channel.basic_ack(method.delivery_tag))."
            ).format(run_left_in_queue=run.left_in_queue)
        )
    return passed(
        _(
            "Your consumer survived the death of {run_killed}: it reconnected, processed all "
            "{n_ids} orders exactly once (the {n_twice} published twice were skipped) and "
            "acknowledged every delivery."
        ).format(run_killed=run.killed, n_ids=len(ids), n_twice=len(TWICE))
    )
