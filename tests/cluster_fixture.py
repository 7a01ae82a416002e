"""The test cluster (three nodes of the suite's RabbitMQ, `.rabbitmq/test-<kind>-cluster`),
for tests/cluster_under_test.py and tests/test_checks_ch10.py. They kill its nodes, so one module
at a time holds it (a lock file), and each stops it at its end."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

from helpers.node import choose_runtime, repo_dir
from helpers.node.cluster import Cluster, ClusterBroker


@pytest.fixture(scope="module")
def cluster_under_test() -> Iterator[ClusterBroker]:
    runtime = choose_runtime(progress=None)
    base = repo_dir() / ".rabbitmq" / f"test-{runtime.kind}-cluster"
    base.mkdir(parents=True, exist_ok=True)
    with open(base.parent / f"test-{runtime.kind}-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cluster = Cluster(base, runtime)
        cluster.start()
        try:
            yield cluster.broker()
        finally:
            cluster.stop()
