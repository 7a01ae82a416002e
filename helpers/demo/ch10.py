"""Harness for chapter 10 (a cluster, and a node that dies): what the lesson needs but does
not teach.

The chapter writes its publisher (confirms, a list of hosts, a reconnect loop) in its own
cell. What lives here: the book it fills in (what was confirmed, when, through which node),
the demonstration consumer (a reconnecting consumer with manual acks that deduplicates by
message id: writing one is the chapter's exercise, so the lesson uses this one), the fault
(SIGKILL of the quorum queue leader's node at a chosen moment, while the API is polled for
the new leader), the count at the end, and the chart of the run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from helpers.fonts import use_cjk_fallback
from helpers.i18n import _

if TYPE_CHECKING:
    from helpers.node.cluster import ClusterBroker

PACE_S = 0.004  # the demonstration publisher's pause between messages (~200 a second)


def node_of(connection: pika.BlockingConnection, broker: ClusterBroker) -> str:
    """The cluster node (node1..3) a connection reached: pika tried the hosts in turn."""
    try:
        return broker.node_of_port(connection._impl.params.port)
    except AttributeError:
        return "?"


def hosts_from(hosts: Sequence[pika.ConnectionParameters], first: int) -> list:
    """The list of hosts starting at index `first` (mod its length): the next node first."""
    k = first % len(hosts)
    return list(hosts[k:]) + list(hosts[:k])


@dataclass
class Book:
    """What the publisher and the consumer of a run record (monotonic times)."""

    t0: float = field(default_factory=time.monotonic)
    confirmed: list[tuple[float, str]] = field(default_factory=list)
    received: list[tuple[float, str]] = field(default_factory=list)  # first delivery of an id
    duplicates: list[tuple[float, str]] = field(default_factory=list)  # later deliveries
    connections: list[tuple[float, str, str]] = field(default_factory=list)  # (t, who, node)
    drops: list[tuple[float, str, str]] = field(default_factory=list)  # (t, who, why)
    publishes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def connected(self, who: str, node: str) -> None:
        with self.lock:
            self.connections.append((self.now(), who, node))

    def dropped(self, who: str, exc: BaseException) -> None:
        why = type(exc).__name__
        with self.lock:
            self.drops.append((self.now(), who, why))

    def confirm(self, message_id: str) -> None:
        with self.lock:
            self.confirmed.append((self.now(), message_id))

    def receive(self, message_id: str) -> bool:
        """Record a delivery; False if the id was received before (a duplicate)."""
        with self.lock:
            seen = {m for _, m in self.received}
            if message_id in seen:
                self.duplicates.append((self.now(), message_id))
                return False
            self.received.append((self.now(), message_id))
            return True


def demo_consumer(hosts: Sequence[pika.ConnectionParameters], queue: str, book: Book,
                  broker: ClusterBroker, stop: threading.Event) -> None:
    """A reconnecting consumer with manual acks, deduplicating by message id (the lesson's;
    the exercise asks for one like it)."""
    seen: set[str] = set()
    attempt = 0
    while not stop.is_set():
        try:
            with pika.BlockingConnection(hosts_from(hosts, attempt)) as connection:
                book.connected("consumer", node_of(connection, broker))
                channel = connection.channel()
                channel.basic_qos(prefetch_count=20)
                for method, properties, _body in channel.consume(queue, inactivity_timeout=0.1):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    if properties.message_id not in seen:
                        seen.add(properties.message_id)
                    book.receive(properties.message_id)
                    channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError as exc:
            book.dropped("consumer", exc)
            attempt += 1
            time.sleep(0.1)


class Fault:
    """Kill the leader's node of `queue` after `after_s`, then watch the API for a new leader."""

    def __init__(self, broker: ClusterBroker, queue: str, after_s: float) -> None:
        self.broker, self.queue, self.after_s = broker, queue, after_s
        self.killed: str | None = None
        self.killed_at: float | None = None
        self.new_leader: str | None = None
        self.elected_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.book: Book | None = None

    def start(self, book: Book) -> Fault:
        self.book = book
        self.thread.start()
        return self

    def _run(self) -> None:
        assert self.book is not None
        time.sleep(self.after_s)
        leader = self.broker.queue_state(self.queue).leader
        if leader is None:
            return
        self.killed, self.killed_at = leader, self.book.now()
        self.broker.cluster.kill(leader)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                state = self.broker.queue_state(self.queue)
            except Exception:  # noqa: BLE001 - the API of a node that is going away
                state = None
            if state and state.leader and state.leader != leader:
                self.new_leader, self.elected_at = state.leader, self.book.now()
                return
            time.sleep(0.05)

    def join(self, timeout: float = 40) -> None:
        self.thread.join(timeout)


@dataclass
class Count:
    confirmed: int
    received: int
    duplicates: int
    lost: list[str]
    gap_s: float  # longest stretch without a confirm, around the fault
    publisher_nodes: list[str]
    consumer_nodes: list[str]


def count(book: Book) -> Count:
    """What arrived, computed from message ids: confirmed, received, duplicates, lost."""
    confirmed = [m for _, m in book.confirmed]
    received = {m for _, m in book.received}
    times = [t for t, _ in book.confirmed]
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    return Count(
        confirmed=len(set(confirmed)),
        received=len(received),
        duplicates=len(book.duplicates),
        lost=sorted(set(confirmed) - received),
        gap_s=gap,
        publisher_nodes=[n for _, who, n in book.connections if who == "publisher"],
        consumer_nodes=[n for _, who, n in book.connections if who == "consumer"],
    )


def wait_until_received(book: Book, timeout: float = 20.0) -> bool:
    """Wait until every confirmed id was received (True), or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with book.lock:
            confirmed = {m for _, m in book.confirmed}
            received = {m for _, m in book.received}
        if confirmed <= received:
            return True
        time.sleep(0.05)
    return False


def run_in_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def per_bin(times: Sequence[float], end: float, width: float = 0.1) -> tuple[list, list]:
    bins = Counter(int(t / width) for t in times)
    xs = [i * width for i in range(int(end / width) + 1)]
    return xs, [bins.get(i, 0) / width for i in range(len(xs))]


def plot_failover(book: Book, fault: Fault) -> None:
    """Messages confirmed and received per second across the failure; the kill and the new
    leader marked."""
    import matplotlib.pyplot as plt

    use_cjk_fallback()
    end = max([t for t, _n in book.confirmed + book.received] or [1.0]) + 0.2
    fig, ax = plt.subplots(figsize=(8, 3.5))
    lines = ((book.confirmed, _("confirmed")), (book.received, _("received (first time)")))
    for rows, label in lines:
        xs, ys = per_bin([t for t, _n in rows], end)
        ax.plot(xs, ys, label=label, drawstyle="steps-post")
    if fault.killed_at is not None:
        ax.axvline(fault.killed_at, color="red", linestyle="--",
                   label=_("{node} killed (the leader)").format(node=fault.killed))
    if fault.elected_at is not None:
        ax.axvline(fault.elected_at, color="green", linestyle=":",
                   label=_("{node} leads (seen by the API)").format(node=fault.new_leader))
    ax.set_xlabel(_("seconds since the start"))
    ax.set_ylabel(_("messages per second"))
    ax.set_title(_("Throughput across the death of the leader's node"))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plt.show()


def remove_prefixed(broker: ClusterBroker, prefix: str) -> list[str]:
    """Delete every queue and exchange of `prefix` on the cluster (the API's list)."""
    api = broker.management
    queues = [q["name"] for q in api.queues(broker.vhost) if q["name"].startswith(prefix)]
    exchanges = [x["name"] for x in api.exchanges(broker.vhost) if x["name"].startswith(prefix)]
    for name in queues:
        api.request("DELETE", f"/queues/{_q(broker.vhost)}/{_q(name)}", ok404=True)
    for name in exchanges:
        api.request("DELETE", f"/exchanges/{_q(broker.vhost)}/{_q(name)}", ok404=True)
    return queues + exchanges


def _q(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def shorten(text: str, broker: ClusterBroker) -> str:
    """`text` with each node's full Erlang name replaced by node1..3 (outputs stay the same
    from one checkout to another)."""
    for node in broker.cluster.nodes:
        text = text.replace(node.name, node.short)
    return text


def try_it(broker: ClusterBroker, hosts: Sequence[pika.ConnectionParameters], label: str,
           action: Callable[[Any], Any]) -> None:
    """Run `action(channel)` on a fresh connection to the first of `hosts` that answers;
    print whether the broker accepted it or how it refused."""
    try:
        with pika.BlockingConnection(list(hosts)) as connection:
            result = action(connection.channel())
        print(_("{label}: accepted").format(label=label)
              + (f" ({result})" if result is not None else ""))
    except pika.exceptions.ConnectionClosedByBroker as exc:
        reason = shorten(exc.reply_text, broker).splitlines()[0]
        print(_("{label}: refused, connection closed ({code}) {reason}")
              .format(label=label, code=exc.reply_code, reason=reason))
    except pika.exceptions.ChannelClosedByBroker as exc:
        reason = shorten(exc.reply_text, broker).splitlines()[0]
        print(_("{label}: refused, channel closed ({code}) {reason}")
              .format(label=label, code=exc.reply_code, reason=reason))
    except pika.exceptions.AMQPConnectionError as exc:
        print(_("{label}: no connection ({error})").format(label=label, error=type(exc).__name__))


def wait_online(broker: ClusterBroker, queue: str, members: int = 3, timeout: float = 60.0):
    """The quorum queue's state once `members` members are online (or at the timeout)."""
    deadline = time.monotonic() + timeout
    state = broker.queue_state(queue)
    while len(state.online) < members and time.monotonic() < deadline:
        time.sleep(0.2)
        state = broker.queue_state(queue)
    return state


def wait_leader(broker: ClusterBroker, queue: str, among: Sequence[str],
                timeout: float = 60.0) -> str | None:
    """The quorum queue's leader once it is one of `among` (or what it is at the timeout:
    an election takes about a second, much longer on a machine busy with other nodes)."""
    deadline = time.monotonic() + timeout
    leader = None
    while time.monotonic() < deadline:
        try:
            leader = broker.queue_state(queue).leader
        except Exception:  # noqa: BLE001 - a node's API that is going away
            leader = None
        if leader in among:
            return leader
        time.sleep(0.2)
    return leader
