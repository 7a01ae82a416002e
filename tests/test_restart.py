"""restart_private_node restarts only the node the helpers started, never anyone else's broker.

These tests never restart the real broker (other tests and notebooks use it at the same
time): `node.restart_app` is replaced by a recorder.
"""

from __future__ import annotations

import dataclasses

import pytest

from helpers import node, restart
from helpers.broker import Broker, private_node_broker


@pytest.fixture
def restarts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(node, "restart_app", lambda progress=None: calls.append("restart_app"))
    return calls


def test_private_node_started_by_helpers_is_restarted(restarts):
    assert restart.restart_private_node(private_node_broker(started_by_helpers=True)) is True
    assert restarts == ["restart_app"]


@pytest.mark.parametrize(
    "broker",
    [
        private_node_broker(started_by_helpers=False),
        Broker("127.0.0.1", 5672, "/", "guest", "guest", "http://127.0.0.1:15672",
               "localhost:5672"),
        Broker("rabbit.example", 5672, "class", "u", "p", "http://rabbit.example:15672",
               "AMQP_URL", started_by_helpers=True),
    ],
    ids=["private-node-not-ours", "localhost-5672", "amqp-url"],
)
def test_other_brokers_are_left_alone(restarts, broker):
    assert restart.restart_private_node(broker) is False
    assert restarts == []


def test_may_restart_needs_both_conditions():
    ours = private_node_broker(started_by_helpers=True)
    assert restart.may_restart(ours)
    assert not restart.may_restart(dataclasses.replace(ours, source="AMQP_URL"))
    assert not restart.may_restart(dataclasses.replace(ours, started_by_helpers=False))
