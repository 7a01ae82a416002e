"""A cluster node whose boot failed only because its peers were busy is started again.

Seen on a loaded machine: with the cluster's short metadata-store timeout (5 s, so that chapter
10's demonstration stays short), a node restarted while its peers still elect a leader stops
with "BOOT FAILED ... {error,timeout}" (a learner session, RabbitMQ 4.3.6); a node that syncs
feature flags with a peer still booting stops with "{incompatible_feature_flags,{badrpc,..."
(make test's 3.10.8 pass). The node's start tries again, up to BOOT_ATTEMPTS times; any other
failure is reported at once. The real
boots are covered by the cluster tests; here `Node.start` is replaced by a stand-in that
writes the startup.log RabbitMQ wrote, so that each branch is certain to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.errors import BrokerUnavailable
from helpers.node import cluster
from helpers.node.private import Node, Ports

# The end of node2's startup.log in that learner session (4.3.6).
BOOT_TIMEOUT_LOG = """  Starting broker...
BOOT FAILED
===========
Exception during startup:

exit:{error,timeout}

    rabbit_boot_steps:-run_step/2-lc$^0/1-0-/2, line 57
    rabbit_boot_steps:run_step/2, line 60
    rabbit:start/2, line 985

Kernel pid terminated (application_controller) ("{application_start_failure,rabbit,{{error,\
timeout},{rabbit,start,[normal,[]]}}}")
"""
# The start of node2's BOOT FAILED in make test's 3.10.8 pass.
FEATURE_FLAG_SYNC_LOG = """  Starting broker...
BOOT FAILED
===========
Error during startup: {error,
                       {incompatible_feature_flags,
                        {badrpc,
                         {'EXIT',
                          {{badmap,undefined},
"""
OTHER_FAILURE_LOG = """  Starting broker...
BOOT FAILED
===========
Error during startup: {error,{eaddrinuse,...}}
"""


@dataclass(frozen=True)
class _Runtime:
    version: str = "4.3.6"
    kind: str = "reference"


def _node(tmp_path: Path) -> cluster.ClusterNode:
    base = tmp_path / "node2"
    base.mkdir()
    return cluster.ClusterNode(base, _Runtime(), "node2@localhost", Ports(1, 2, 3), ["a", "b"])


def _starts(monkeypatch, logs: list[str | None]) -> list[int]:
    """Replace Node.start: each call writes the next log and fails, or (None) succeeds."""
    calls: list[int] = []

    def start(self, progress=None):
        calls.append(1)
        log = logs[len(calls) - 1]
        if log is None:
            return True
        (self.base / "startup.log").write_text(log)
        raise BrokerUnavailable("The private RabbitMQ node stopped while starting (exit 1).")

    monkeypatch.setattr(Node, "start", start)
    return calls


@pytest.mark.parametrize("log", [BOOT_TIMEOUT_LOG, FEATURE_FLAG_SYNC_LOG])
def test_a_boot_that_failed_while_the_peers_were_busy_is_started_again(
    monkeypatch, tmp_path, log
):
    calls = _starts(monkeypatch, [log, None])
    assert _node(tmp_path).start() is True
    assert len(calls) == 2


def test_it_gives_up_after_the_last_attempt(monkeypatch, tmp_path):
    calls = _starts(monkeypatch, [BOOT_TIMEOUT_LOG] * cluster.BOOT_ATTEMPTS)
    with pytest.raises(BrokerUnavailable, match="stopped while starting"):
        _node(tmp_path).start()
    assert len(calls) == cluster.BOOT_ATTEMPTS


def test_another_failure_is_reported_at_once(monkeypatch, tmp_path):
    calls = _starts(monkeypatch, [OTHER_FAILURE_LOG, None])
    with pytest.raises(BrokerUnavailable):
        _node(tmp_path).start()
    assert len(calls) == 1


def test_the_failure_is_read_from_the_startup_log(tmp_path):
    node = _node(tmp_path)
    assert not node.boot_failed_transiently()  # no log yet
    (node.base / "startup.log").write_text(OTHER_FAILURE_LOG)
    assert not node.boot_failed_transiently()
    for log in (BOOT_TIMEOUT_LOG, FEATURE_FLAG_SYNC_LOG):
        (node.base / "startup.log").write_text(log)
        assert node.boot_failed_transiently()
