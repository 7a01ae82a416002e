"""Restarting the broker for a lesson, but only when it is the tutorial's own private node.

Chapter 02 shows that durable queues and persistent messages survive a restart while
transient ones do not. Only a real restart proves it, yet a restart drops every client of
that broker: fine for the node the helpers started for this tutorial, never acceptable for
a broker someone else runs (a system service, a Docker container, a classroom server).
"""

from __future__ import annotations

from collections.abc import Callable

from helpers.broker import Broker


def may_restart(broker: Broker) -> bool:
    """True only for this checkout's private node; every other broker is not ours."""
    return broker.is_private_node and broker.started_by_helpers and broker.node is not None


def restart_private_node(
    broker: Broker, progress: Callable[[str], None] | None = print
) -> bool:
    """Restart the RabbitMQ application of our private node and wait until it answers again.

    Returns False, without touching anything, when the broker is not ours to restart, so a
    notebook can print a note instead. Returns True once AMQP and the management API answer
    again (about 8 s); every connection open before the call has been dropped by then.

    The stop button does not cut it in half (see `Node.restart_app`): interrupted, it
    finishes the restart, says so through `progress` (the only thing it ever prints), and
    raises KeyboardInterrupt once the broker answers again.
    """
    if not may_restart(broker):
        return False
    broker.node.restart_app(progress)
    return True
