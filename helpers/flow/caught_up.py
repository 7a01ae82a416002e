"""When has the picture caught up with the broker? A pure decision over successive reads.

`FlowDiagram.wait_until_caught_up()` reads, over and over, the management API's topology
and each drawn queue's own counts (a passive declare, answered by the queue at once). The
API's numbers come from statistics that lag, so the picture is "caught up" only when:

- the queues themselves answered;
- every consumer the API lists already has its connection (listed before its channel's
  statistics arrive, it has none, and its deliveries could not be matched to it);
- for each queue, the API's ready count equals the queue's own (streams excepted: a stream
  keeps what it was sent, its "ready" has no such meaning), and so does its consumer count
  where the API's counts are exact (classic queues, with consumers listed);
- no publish through the default exchange is still waiting to be placed;
- the topology is the same as in the previous read, and, where some counts could not be
  confirmed by the queues (quorum and stream queues; another connection's exclusive queue,
  which refuses a passive declare with 405), it has held still for a statistics interval.

RabbitMQ 4.3 quirk (seen on 4.3.6): a quorum queue's passive declare counts a basic_get's
checked-out messages as consumers, so its consumers are judged by the API holding still.

Everything is passed in, time included, so recorded reads replay in tests without a broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from helpers.flow.topology import Topology

LAGGING_STATS_S = 2.0  # unconfirmed counts: unchanged this long (> a stats interval)

ExactCounts = Mapping[str, tuple[int, int]]  # queue -> (ready, consumers), from the queue


@dataclass(frozen=True)
class Verdict:
    caught: bool
    why: str = ""  # what is still missing, in a few words ("" when caught)

    def __bool__(self) -> bool:
        return self.caught


def disagreement(
    topology: Topology, exact: ExactCounts | None, pending: int, drawn: Collection[str] = ()
) -> str | None:
    """What in one read keeps the API's picture from matching the queues; None if nothing.

    Only the queues the diagram draws count: a consumer elsewhere in the vhost (a learner's
    worker from examples/ in a terminal) that the API lists without its connection is not
    what the picture waits for."""
    if exact is None:
        return "the queues did not answer"
    unnamed = [c.tag for c in topology.consumers if not c.connection and c.queue in drawn]
    if unnamed:
        return f"consumer {unnamed[0]} is listed without its connection yet"
    listed = Counter(c.queue for c in topology.consumers)
    api = {q.name: q for q in topology.queues}
    for name, (ready, consumers) in sorted(exact.items()):
        q = api.get(name)
        if q is None:
            continue
        if q.type != "stream" and q.ready != ready:
            return f"queue {name}: the API says {q.ready} ready, the queue holds {ready}"
        exact_consumers = not q.counts_lag and topology.consumers_listed
        if exact_consumers and listed[name] != consumers:
            return (
                f"queue {name}: the API lists {listed[name]} consumers, the queue has {consumers}"
            )
    if pending:
        return f"{pending} publish(es) to the default exchange not placed yet"
    return None


def alarm_reason(alarms: Collection[str]) -> str | None:
    """Why the picture cannot catch up while the broker has a resource alarm; None without.

    During a memory or disk alarm the broker stops reading from every connection that
    publishes (RabbitMQ 3.x and 4.x; seen on 3.10.8 and 4.3.6), the diagram's own firehose
    connection included, which publishes the markers the wait sends through its queue. So
    neither a marker nor a queue's count comes back until the alarm clears, and "messages
    still arriving from the firehose" would blame the wrong thing. `alarms` are
    `helpers.alarms.active_alarms()`: "disk", "memory", "resource".
    """
    if not alarms:
        return None
    kinds = " and a ".join(sorted(set(alarms)))
    return f"the broker has a {kinds} alarm: publishers are blocked"


def needs_holding(topology: Topology, exact: ExactCounts, drawn: Collection[str]) -> bool:
    """Whether some drawn queue's counts could not be confirmed by the queue itself."""
    api = {q.name: q for q in topology.queues}
    return any(api[q].counts_lag for q in exact if q in api) or any(
        q in api and q not in exact for q in drawn
    )


class CatchUp:
    """Follows the reads of one wait: feed each to `observe`, stop when it says caught."""

    def __init__(self, hold_s: float = LAGGING_STATS_S) -> None:
        self.hold_s = hold_s
        self.previous: Topology | None = None
        self.still_since = 0.0

    def observe(
        self,
        topology: Topology,
        exact: ExactCounts | None,
        drawn: Collection[str],
        pending: int,
        now: float,
    ) -> Verdict:
        """Judge one read: `drawn` are the queues the diagram draws, `pending` the diagram's
        unplaced default-exchange publishes, `now` a monotonic time in seconds."""
        if topology != self.previous:
            self.still_since = now
        first = self.previous is None
        changed = topology != self.previous
        self.previous = topology
        why = disagreement(topology, exact, pending, drawn)
        if why is not None:
            return Verdict(False, why)
        if first or changed:
            return Verdict(False, "the topology changed since the last read")
        held = now - self.still_since
        if needs_holding(topology, exact or {}, drawn) and held < self.hold_s:
            return Verdict(False, f"counts the queues cannot confirm held still {held:.1f} s")
        return Verdict(True)
