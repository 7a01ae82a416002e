"""`python -m helpers classroom provision | teardown`: the instructor's side of a workshop.

The logic lives in `helpers.classroom`; this module only turns command-line options into an
administrator's management client and prints what happened. See docs/instructor-guide.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from helpers import classroom
from helpers.broker import broker_from_url, find_broker
from helpers.management import ManagementClient, without_userinfo


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
        help="the management API (default: RABBITMQ_MANAGEMENT_URL, else "
        "http://HOST:AMQP_PORT+10000, https:// for an amqps:// URL)",
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


def _admin(args: argparse.Namespace, start: bool) -> tuple[ManagementClient, str, int, str, bool]:
    """(admin client, AMQP host, AMQP port, management URL, TLS) from --url or find_broker()."""
    if args.url:
        # Parsed as AMQP_URL is: a malformed --url is one line without its password, and
        # amqps:// means the management API is assumed on https.
        broker = broker_from_url(args.url, "--url", args.management_url, source="--url")
    else:
        broker = find_broker(start=start, progress=print)
    host, port, user, password = broker.host, broker.port, broker.username, broker.password
    management = without_userinfo(args.management_url or broker.management_url).rstrip("/")
    return classroom.admin_client(management, user, password), host, port, management, broker.tls


def _csv_path(args: argparse.Namespace) -> Path:
    if args.csv:
        return args.csv
    if args.prefix == classroom.DEFAULT_PREFIX:
        return Path(classroom.DEFAULT_CSV)
    return Path(f"classroom-{args.prefix}.csv")


def _provision(args: argparse.Namespace) -> int:
    names = args.names.split(",") if args.names is not None else None
    # First, before connecting: an absurd --students is refused in one line, at once.
    students = classroom.student_names(args.students, names)
    path = _csv_path(args)
    nothing = "Interrupted before any student was made: nothing was created."
    try:
        admin, host, port, management, tls = _admin(args, start=True)
    except KeyboardInterrupt:
        return _stopped(nothing)
    earlier = classroom.read_seats(path, args.prefix)
    try:
        _progress(
            f"Provisioning {len(students)} students on {management} "
            "(Ctrl-C stops after the student being made):"
        )
        seats = classroom.provision(
            admin,
            students,
            amqp_host=args.public_host or host,
            amqp_port=port,
            management_url=classroom.public_management_url(management, args.public_host),
            prefix=args.prefix,
            known_passwords={seat.username: seat.password for seat in earlier},
            progress=lambda line: _progress("  " + line),
            tls=tls,
        )
    except classroom.ProvisionInterrupted as stop:
        return _interrupted(args, admin, stop, earlier, len(students))
    except KeyboardInterrupt:
        return _stopped(nothing)
    everyone = _write_down(admin, seats, earlier, args.prefix, path)
    try:
        print(classroom.format_table(everyone))
        print(
            f"\nProvisioned {len(seats)} on {management} ({len(everyone)} in {path}, which is "
            "readable by you only: it holds passwords). Each student sets AMQP_URL to their "
            f"URL before starting JupyterLab; `{_teardown_command(args, path)}` removes it all."
        )
    except KeyboardInterrupt:
        return _stopped(f"Interrupted, but all {len(seats)} were made: {path} lists them.")
    return 0


def _progress(line: str) -> None:
    # flush: when stdout is a pipe or a log file, the lines must still appear as they happen.
    print(line, flush=True)


def _teardown_command(args: argparse.Namespace, path: Path) -> str:
    return (
        "python -m helpers classroom teardown"
        + (f" --prefix {args.prefix}" if args.prefix != classroom.DEFAULT_PREFIX else "")
        + (f" --csv {path}" if args.csv else "")
    )


def _write_down(
    admin: ManagementClient,
    seats: list[classroom.Seat],
    earlier: list[classroom.Seat],
    prefix: str,
    path: Path,
) -> list[classroom.Seat]:
    """Write the CSV of everyone that exists, as one step a Ctrl-C cannot cut in half.

    A Ctrl-C meanwhile waits until the file is written; then there is nothing left to stop.
    """
    everyone: list[classroom.Seat] = []
    try:
        with classroom.ctrl_c_held():
            everyone = classroom.merge_seats(admin, seats, earlier, prefix)
            classroom.write_csv(path, everyone)
    except KeyboardInterrupt:
        pass  # raised once the CSV was written: it matches the broker
    return everyone


def _interrupted(
    args: argparse.Namespace,
    admin: ManagementClient,
    stop: classroom.ProvisionInterrupted,
    earlier: list[classroom.Seat],
    wanted: int,
) -> int:
    """After Ctrl-C: a CSV of exactly what exists (or none), and one line on what to do."""
    path = _csv_path(args)
    finish = "run the same provision again to finish"
    undo = f"`{_teardown_command(args, path)}` to undo"
    if not stop.seats and stop.unfinished is None:
        where = f"{path} is unchanged" if earlier else "no CSV was written"
        return _stopped(f"Interrupted before any student was made: nothing was created, {where}.")
    half = ""
    if stop.unfinished is not None:
        half = f" ({stop.unfinished} may be half made: either command completes or removes it)"
    if not stop.seats:
        return _stopped(f"Interrupted during the first student{half}: {finish}, or {undo}.")
    everyone = _write_down(admin, stop.seats, earlier, args.prefix, path)
    return _stopped(
        f"Interrupted after {len(stop.seats)} of {wanted} students{half}: {path} lists the "
        f"{len(everyone)} that exist; {finish}, or {undo}."
    )


def _stopped(line: str) -> int:
    """Say in one line what a Ctrl-C left behind; 130 is the shell's code for it."""
    print(line, file=sys.stderr)
    return 130


def _teardown(args: argparse.Namespace) -> int:
    admin, _host, _port, management, _tls = _admin(args, start=False)
    try:
        removed = classroom.teardown(admin, args.prefix)
    except KeyboardInterrupt:
        return _stopped(
            "Interrupted: some vhosts and users may remain; run the same teardown again to "
            "remove the rest."
        )
    print(
        f"Removed {len(removed.vhosts)} vhosts and {len(removed.users)} users with prefix "
        f"{args.prefix!r} from {management}."
    )
    path = _csv_path(args)
    if classroom.remove_csv(path, args.prefix):
        print(f"Deleted {path}: its passwords no longer work.")
    return 0
