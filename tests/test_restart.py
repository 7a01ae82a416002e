"""restart_private_node restarts only this checkout's private node, never anyone else's broker.

These tests never restart the real broker (other tests and notebooks use it at the same
time): the node's `restart_app` is replaced by a recorder.
"""

from __future__ import annotations

import dataclasses

import pytest

from helpers import restart
from helpers.broker import Broker


class RecordingNode:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def restart_app(self, progress=None) -> None:
        self.calls.append("restart_app")


def _private(node: RecordingNode | None, started_by_helpers: bool = True) -> Broker:
    return Broker(
        "127.0.0.1",
        5682,
        "/",
        "tutorial",
        "pw",
        "http://127.0.0.1:15682",
        "private node",
        started_by_helpers,
        node,
    )


def test_this_checkouts_private_node_is_restarted():
    node = RecordingNode()
    assert restart.restart_private_node(_private(node)) is True
    assert node.calls == ["restart_app"]


@pytest.mark.parametrize(
    "make",
    [
        lambda n: _private(n, started_by_helpers=False),
        lambda n: Broker(
            "127.0.0.1", 5672, "/", "guest", "guest", "http://127.0.0.1:15672", "localhost:5672"
        ),
        lambda n: Broker(
            "rabbit.example",
            5672,
            "class",
            "u",
            "p",
            "http://rabbit.example:15672",
            "AMQP_URL",
            started_by_helpers=True,
            node=n,
        ),
    ],
    ids=["private-node-not-ours", "localhost-5672", "amqp-url"],
)
def test_other_brokers_are_left_alone(make):
    node = RecordingNode()
    assert restart.restart_private_node(make(node)) is False
    assert node.calls == []


def test_may_restart_needs_every_condition():
    ours = _private(RecordingNode())
    assert restart.may_restart(ours)
    assert not restart.may_restart(dataclasses.replace(ours, source="AMQP_URL"))
    assert not restart.may_restart(dataclasses.replace(ours, started_by_helpers=False))
    assert not restart.may_restart(dataclasses.replace(ours, node=None))
