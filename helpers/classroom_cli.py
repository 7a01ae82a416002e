"""`python -m helpers classroom provision | teardown`: the instructor's side of a workshop.

The logic lives in `helpers.classroom`; this module only turns command-line options into an
administrator's management client and prints what happened. See docs/instructor-guide.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from helpers import classroom
from helpers.broker import find_broker, parse_amqp_url
from helpers.management import ManagementClient


def add_parser(groups: argparse._SubParsersAction) -> None:
    """Add the `classroom` group next to `broker` in `python -m helpers`."""
    group = groups.add_parser(
        "classroom", help="create or remove one vhost and one user per student on a shared broker"
    )
    actions = group.add_subparsers(dest="action", required=True)

    provision = actions.add_parser(
        "provision", help="create (or update) every student's vhost and user; safe to rerun"
    )
    who = provision.add_mutually_exclusive_group(required=True)
    who.add_argument("--students", type=int, metavar="N", help="student01 .. studentNN")
    who.add_argument("--names", metavar="a,b,c", help="comma-separated student names")
    provision.add_argument(
        "--public-host",
        metavar="HOST",
        help="host name or IP students use to reach the broker (default: the one in --url)",
    )
    _common(provision)
    provision.set_defaults(func=_provision)

    teardown = actions.add_parser(
        "teardown", help="delete every vhost and user provisioning made (and the CSV)"
    )
    _common(teardown)
    teardown.set_defaults(func=_teardown)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        metavar="AMQP_URL",
        help="an administrator's AMQP URL, e.g. amqp://admin:secret@broker:5672/ "
        "(default: the broker the tutorial finds: AMQP_URL, 127.0.0.1:5672, the private node)",
    )
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help="the management API (default: RABBITMQ_MANAGEMENT_URL, else http://HOST:AMQP_PORT+10000)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("CLASSROOM_PREFIX", classroom.DEFAULT_PREFIX),
        help="names are PREFIX-student; teardown removes only this prefix "
        "(default: $CLASSROOM_PREFIX or %(default)s)",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        help="where the seats are written (default: classroom.csv, or classroom-PREFIX.csv)",
    )


def _admin(args: argparse.Namespace, start: bool) -> tuple[ManagementClient, str, int, str]:
    """(admin client, AMQP host, AMQP port, management URL) from --url or find_broker()."""
    if args.url:
        host, port, _vhost, user, password = parse_amqp_url(args.url)
        management = (
            args.management_url
            or os.environ.get("RABBITMQ_MANAGEMENT_URL")
            or f"http://{host}:{port + 10000}"
        )
    else:
        broker = find_broker(start=start, progress=print)
        host, port, user, password = broker.host, broker.port, broker.username, broker.password
        management = args.management_url or broker.management_url
    management = management.rstrip("/")
    return classroom.admin_client(management, user, password), host, port, management


def _csv_path(args: argparse.Namespace) -> Path:
    if args.csv:
        return args.csv
    if args.prefix == classroom.DEFAULT_PREFIX:
        return Path(classroom.DEFAULT_CSV)
    return Path(f"classroom-{args.prefix}.csv")


def _provision(args: argparse.Namespace) -> int:
    names = args.names.split(",") if args.names is not None else None
    students = classroom.student_names(args.students, names)
    admin, host, port, management = _admin(args, start=True)
    path = _csv_path(args)
    earlier = classroom.read_seats(path, args.prefix)
    seats = classroom.provision(
        admin,
        students,
        amqp_host=args.public_host or host,
        amqp_port=port,
        management_url=classroom.public_management_url(management, args.public_host),
        prefix=args.prefix,
        known_passwords={seat.username: seat.password for seat in earlier},
    )
    everyone = classroom.merge_seats(admin, seats, earlier, args.prefix)
    print(classroom.format_table(everyone))
    classroom.write_csv(path, everyone)
    print(
        f"\nProvisioned {len(seats)} on {management} ({len(everyone)} in {path}, which is "
        "readable by you only: it holds passwords). Each student sets AMQP_URL to their URL "
        "before starting JupyterLab; `python -m helpers classroom teardown"
        + (f" --prefix {args.prefix}" if args.prefix != classroom.DEFAULT_PREFIX else "")
        + (f" --csv {path}" if args.csv else "")
        + "` removes it all."
    )
    return 0


def _teardown(args: argparse.Namespace) -> int:
    admin, _host, _port, management = _admin(args, start=False)
    removed = classroom.teardown(admin, args.prefix)
    print(
        f"Removed {len(removed.vhosts)} vhosts and {len(removed.users)} users with prefix "
        f"{args.prefix!r} from {management}."
    )
    path = _csv_path(args)
    if classroom.remove_csv(path, args.prefix):
        print(f"Deleted {path}: its passwords no longer work.")
    return 0
