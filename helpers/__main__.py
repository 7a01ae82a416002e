"""Command line: `python -m helpers broker start | status | stop`, `rabbitmq provision | remove`,
`alarm status | clear`, `classroom provision | teardown`, `cluster start | status | stop`.

`make lab` and `make test` call `broker start`; learners call `status` to see where their
broker is. Errors print one paragraph and exit 1, without a traceback. No command prints a
password: URLs are shown with `***`, and `status` says which file holds the private node's.
"""

from __future__ import annotations

import argparse
import sys

from helpers import alarms, classroom_cli, node
from helpers.broker import find_broker
from helpers.errors import TutorialError
from helpers.node import rootfs


def _broker_start(_args: argparse.Namespace) -> int:
    broker = find_broker(start=True, progress=print, provision=True)
    print(f"Broker ready ({broker.source}): {broker.display_url}, RabbitMQ {broker.version}")
    return 0


def _broker_status(_args: argparse.Namespace) -> int:
    broker = find_broker(start=False, progress=None)
    print(f"source:             {broker.source}")
    print(f"AMQP URL:           {broker.display_url}")
    print(f"management URL:     {broker.management_url}")
    try:
        version = broker.version
    except TutorialError as exc:
        version = f"unknown ({exc})"
    print(f"RabbitMQ version:   {version}")
    print("listeners:          " + " · ".join(f"{n} {w}" for n, w in _listeners(broker)))
    if broker.node is not None:
        print(f"from:               {broker.node.runtime.describe()}")
        print(f"node:               {broker.node.name} in {broker.node.base}")
        print(f"password:           in {broker.node.credentials_file} (readable by you only)")
    print(f"started by helpers: {'yes' if broker.started_by_helpers else 'no'}")
    return 0


def _listeners(broker) -> list[tuple[str, str]]:
    """Every listener: AMQP, management, MQTT, STOMP (host:port, or why there is none)."""
    found = [
        ("AMQP", f"{broker.host}:{broker.port}" + (" (TLS)" if broker.tls else "")),
        ("management", broker.management_url.split("://", 1)[-1]),
    ]
    for name, address, plugin in (
        ("MQTT", broker.mqtt, "rabbitmq_mqtt"),
        ("STOMP", broker.stomp, "rabbitmq_stomp"),
    ):
        found.append((name, f"{address[0]}:{address[1]}" if address else f"none ({plugin} off?)"))
    return found


def _broker_stop(_args: argparse.Namespace) -> int:
    if not node.stop(progress=print):
        print(
            "The private node is not running; nothing to stop (brokers the helpers did not "
            "start are left alone)."
        )
    return 0


def _rabbitmq_provision(_args: argparse.Namespace) -> int:
    runtime = rootfs.provision(print)
    print(f"Ready: {runtime.describe()}")
    return 0


def _rabbitmq_remove(_args: argparse.Namespace) -> int:
    running = node.running_node()
    if running is not None and running.started_from(rootfs.root_dir()):
        print("Stopping this checkout's node that runs from it first.")
        running.stop(progress=print)
    if rootfs.remove(print):
        print("Removed.")
    else:
        print(f"Nothing to remove at {rootfs.cache_dir()}.")
    return 0


def _alarm_status(_args: argparse.Namespace) -> int:
    broker = find_broker(start=False, progress=None)
    kinds = alarms.active_alarms(broker)
    if not kinds:
        print(f"No resource alarm on {broker.source} ({broker.display_url}): publishers go on.")
        return 0
    what = " and a ".join(kinds)
    print(
        f"{broker.source} ({broker.display_url}) has a {what} alarm and blocks every publisher"
        + (
            ": `python -m helpers alarm clear` puts its limits back."
            if alarms.may_raise_alarm(broker)
            else "."
        )
    )
    return 0


def _alarm_clear(_args: argparse.Namespace) -> int:
    running = [n for n in node.candidates() if n.is_running()]
    if not running:
        print(
            "No private node of this checkout is running; alarms of brokers the helpers did "
            "not start are left alone (free disk space or memory on that broker's machine)."
        )
        return 0
    for each in running:
        print(f"{each.name}: {alarms.clear_alarms(each)}.")
    return 0


def _cluster_start(_args: argparse.Namespace) -> int:
    from helpers.node.cluster import start_cluster

    broker = start_cluster(progress=print)
    print(f"Cluster ready: {', '.join(broker.addresses)} ({', '.join(broker.nodes)})")
    return 0


def _cluster_status(_args: argparse.Namespace) -> int:
    from helpers.node.cluster import default_cluster

    cluster = default_cluster(progress=None)
    memory = cluster.memory_mb()
    print(f"cluster:  {cluster.base} ({cluster.runtime.describe()})")
    for each in cluster.nodes:
        state = "running" if each.is_running() else "stopped"
        if state == "running" and not each.is_ready():
            state = "running, not answering yet"
        mb = f", {memory[each.short]:.0f} MB" if each.short in memory else ""
        print(f"{each.short}:    {state}{mb}; AMQP {each.ports.amqp}, management "
              f"{each.ports.management}, distribution {each.ports.dist} ({each.name})")
    if cluster.ready():
        print(f"members:  {', '.join(cluster.members())}")
    print(f"password: in {cluster.base / 'credentials.json'} (readable by you only)")
    return 0


def _cluster_stop(_args: argparse.Namespace) -> int:
    from helpers.node.cluster import all_clusters

    if not any([c.stop(progress=print) for c in all_clusters()]):
        print("No cluster of this checkout is running; nothing to stop.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True)

    broker = groups.add_parser("broker", help="find, start, inspect or stop the broker")
    actions = broker.add_subparsers(dest="action", required=True)
    actions.add_parser("start", help="find a broker or start the private node").set_defaults(
        func=_broker_start
    )
    actions.add_parser("status", help="where the broker is and who started it").set_defaults(
        func=_broker_status
    )
    actions.add_parser("stop", help="stop this checkout's private node(s)").set_defaults(
        func=_broker_stop
    )

    rabbitmq = groups.add_parser("rabbitmq", help="the reference RabbitMQ's root filesystem")
    steps = rabbitmq.add_subparsers(dest="action", required=True)
    steps.add_parser("provision", help="build it now (root or passwordless sudo)").set_defaults(
        func=_rabbitmq_provision
    )
    steps.add_parser("remove", help=f"delete {rootfs.cache_dir()}").set_defaults(
        func=_rabbitmq_remove
    )
    alarm = groups.add_parser("alarm", help="resource alarms that block publishers")
    verbs = alarm.add_subparsers(dest="action", required=True)
    verbs.add_parser("status", help="which alarm the broker has, if any").set_defaults(
        func=_alarm_status
    )
    verbs.add_parser(
        "clear", help="put the private node's disk and memory limits back to its configured ones"
    ).set_defaults(func=_alarm_clear)
    cluster = groups.add_parser("cluster", help="the three-node cluster of chapter 10")
    commands = cluster.add_subparsers(dest="action", required=True)
    commands.add_parser("start", help="start it (once; reused)").set_defaults(func=_cluster_start)
    commands.add_parser("status", help="its nodes, ports and memory").set_defaults(
        func=_cluster_status
    )
    commands.add_parser("stop", help="stop every cluster of this checkout").set_defaults(
        func=_cluster_stop
    )
    classroom_cli.add_parser(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TutorialError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
