"""Virtual hosts and users for a workshop on one shared broker.

Why: when a room of students shares one RabbitMQ, each of them must have a private space
(a virtual host) and a user that can enter only that space, so nobody's queues, messages or
mistakes reach anyone else. The flow diagram reads the firehose, and switching the firehose
on needs an administrator, so provisioning switches it on in every student's vhost: the
students never need admin rights.

What provisioning creates, all named `<prefix>-<student>`:
- a vhost with tracing on, tagged `tutorial-classroom:<prefix>`;
- a user with the `management` tag (so the management API and UI answer it) and the same
  marker tag, with full permissions on its own vhost and none anywhere else.

Teardown finds what provisioning made by the marker tag on the users (a vhost's tags are
wiped by any later `PUT /api/vhosts/{name}`, e.g. an admin toggling tracing, so users are
the reliable record) and on the vhosts, and deletes exactly that. Names that carry the
prefix but no marker are someone else's and are left alone: provisioning refuses to take
them over.

Passwords come from `secrets`, live only on the broker and in the CSV the instructor hands
out, and are reused from that CSV on a second run, so provisioning twice changes nothing.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from helpers.broker import Broker
from helpers.errors import TutorialError
from helpers.management import ManagementClient

DEFAULT_PREFIX = "classroom"
DEFAULT_CSV = "classroom.csv"  # .gitignore holds classroom*.csv: passwords are never committed
MARKER = "tutorial-classroom"
STUDENT_TAGS = ("management",)
CSV_FIELDS = ("student", "username", "password", "vhost", "AMQP_URL", "management_url")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# At most this many students per run. The instructor guide plans for rooms of 25-40; 200 is a
# lecture hall. A larger number is almost always a typo (2500 for 25), and on a shared broker
# it would make thousands of vhosts and users, each with the firehose on, before anyone
# noticed (`--students 100000` ran silently for minutes). A larger class is provisioned in
# groups, one --prefix each, which also lets each group be torn down on its own.
MAX_STUDENTS = 200


class ClassroomError(TutorialError):
    """Provisioning cannot go on; the message says why and what to do."""


class ProvisionInterrupted(KeyboardInterrupt):
    """Ctrl-C during `provision`: what was finished, so the caller can write it down.

    Ctrl-C is held until the student being made is complete, so `seats` is exactly what this
    run made on the broker. Only a second Ctrl-C stops in the middle of a student: then
    `unfinished` names the one that may be half made (its vhost without its user, say).
    """

    def __init__(self, seats: list[Seat], unfinished: str | None = None) -> None:
        super().__init__(f"interrupted after {len(seats)} students")
        self.seats = seats
        self.unfinished = unfinished

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback.
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Seat:
    """One student's access: what the instructor hands out, and what this run did."""

    student: str
    username: str
    password: str
    vhost: str
    amqp_url: str
    management_url: str
    status: str  # "created", "unchanged", "new password"; "kept" = from the CSV, not this run


@dataclass
class Removed:
    """What a teardown deleted."""

    vhosts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


def marker_tag(prefix: str) -> str:
    """The tag that says "made by classroom provisioning with this prefix"."""
    return f"{MARKER}:{prefix}"


def check_name(name: str, what: str) -> str:
    """Refuse names that would need quoting everywhere or could be mistaken for options."""
    if not _NAME.match(name):
        raise ClassroomError(
            f"{what} {name!r} is not usable: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 63 characters)."
        )
    return name


def student_names(count: int | None = None, names: Iterable[str] | None = None) -> list[str]:
    """`student01`..`studentNN` for a count, or the given names checked and de-duplicated."""
    if names is not None:
        result = [n.strip() for n in names if n.strip()]
        if not result:
            raise ClassroomError("The name list is empty: give --names alice,bob,...")
        dupes = sorted({n for n in result if result.count(n) > 1})
        if dupes:
            raise ClassroomError(f"These names appear twice: {', '.join(dupes)}.")
        if len(result) > MAX_STUDENTS:
            raise ClassroomError(
                f"{len(result)} names is more than {MAX_STUDENTS}, the most one run provisions: "
                "split the class into groups, one --prefix each."
            )
        return [check_name(n, "Student name") for n in result]
    if count is None or count < 1:
        raise ClassroomError(f"Give --students N (1 to {MAX_STUDENTS}) or --names alice,bob,...")
    if count > MAX_STUDENTS:
        raise ClassroomError(
            f"--students {count} is more than {MAX_STUDENTS}, the most one run provisions: "
            "split the class into groups, one --prefix each."
        )
    width = max(2, len(str(count)))
    return [f"student{i:0{width}d}" for i in range(1, count + 1)]


def admin_client(management_url: str, username: str, password: str) -> ManagementClient:
    """A management client that is checked to be an administrator, as provisioning needs."""
    client = ManagementClient(management_url, username, password)
    tags = client.whoami().get("tags", [])
    if isinstance(tags, str):  # older brokers answer "administrator,management"
        tags = tags.split(",")
    if "administrator" not in tags:
        raise ClassroomError(
            f"User {username!r} is not an administrator on {management_url}: provisioning "
            "creates vhosts and users, so give the URL of a user with the administrator tag."
        )
    return client


def public_management_url(management_url: str, public_host: str | None) -> str:
    """The management URL as students reach it: same scheme and port, the room's host name."""
    if not public_host:
        return management_url.rstrip("/")
    parts = urlsplit(management_url)
    netloc = public_host if parts.port is None else f"{public_host}:{parts.port}"
    return parts._replace(netloc=netloc).geturl().rstrip("/")


def provision(
    admin: ManagementClient,
    students: Sequence[str],
    *,
    amqp_host: str,
    amqp_port: int,
    management_url: str,
    prefix: str = DEFAULT_PREFIX,
    known_passwords: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    tls: bool = False,
) -> list[Seat]:
    """Give every student a vhost and a user confined to it; safe to run again.

    `amqp_host`, `amqp_port` and `management_url` are what the students use (the room's
    address of the broker), which may differ from how the instructor reached it; with `tls`
    their URLs are amqps://.
    `known_passwords` (username -> password, from the last CSV) keeps existing students'
    passwords, so a second run leaves every handed-out URL valid. `progress` gets one line
    per student made, so a long run is not silent.

    Ctrl-C (in the main thread) waits for the student being made, then raises
    `ProvisionInterrupted` with the seats finished so far: nothing is left half made, and
    the caller can write down exactly what exists.
    """
    check_name(prefix, "Prefix")
    names = [f"{prefix}-{check_name(student, 'Student name')}" for student in students]
    known = known_passwords or {}
    seats: list[Seat] = []
    unfinished: str | None = None
    try:
        plan = _plan(admin, students, names, prefix)
        for number, (student, name, existed) in enumerate(plan, 1):
            with ctrl_c_held(insist=True):
                unfinished = name
                seats.append(
                    _make_seat(
                        admin,
                        student,
                        name,
                        existed,
                        prefix,
                        known,
                        (amqp_host, amqp_port, management_url, tls),
                    )
                )
                unfinished = None
            if progress:
                progress(f"{number}/{len(plan)} {name}: {seats[-1].status}")
    except KeyboardInterrupt:
        raise ProvisionInterrupted(seats, unfinished) from None
    return seats


def _plan(
    admin: ManagementClient, students: Sequence[str], names: Sequence[str], prefix: str
) -> list[tuple[str, str, bool]]:
    """(student, name, user existed) for each, or ClassroomError before anything changes.

    Two list requests instead of two per student, so the check is quick however many
    students there are.
    """
    tag = marker_tag(prefix)
    users = {u["name"]: u for u in admin.users()}
    vhosts = {v["name"]: _tags(v) for v in admin.vhosts()}
    plan = []
    for student, name in zip(students, names, strict=True):
        user = users.get(name)
        vhost_tags = vhosts.get(name)
        user_is_ours = user is not None and tag in _tags(user)
        foreign_user = user is not None and not user_is_ours
        foreign_vhost = vhost_tags is not None and not (tag in vhost_tags or user_is_ours)
        if foreign_user or foreign_vhost:
            raise ClassroomError(
                f"A user or vhost named {name!r} already exists and was not made by classroom "
                "provisioning: choose another --prefix, or remove it yourself."
            )
        plan.append((student, name, user is not None))
    return plan


def _make_seat(
    admin: ManagementClient,
    student: str,
    name: str,
    existed: bool,
    prefix: str,
    known: dict[str, str],
    address: tuple[str, int, str, bool],
) -> Seat:
    """Create or update one student's vhost, user and permissions; the seat to hand out.

    `address` is (AMQP host, AMQP port, management URL, TLS) as the students reach the broker.
    """
    amqp_host, amqp_port, management_url, tls = address
    tag = marker_tag(prefix)
    if existed and name in known:
        password, status = known[name], "unchanged"
    elif existed:
        password, status = new_password(), "new password"
    else:
        password, status = new_password(), "created"
    # One PUT with every field: a later PUT would replace tags and description.
    admin.create_vhost(name, tracing=True, description=f"Classroom vhost of {student}", tags=[tag])
    admin.put_user(name, password, [*STUDENT_TAGS, tag])
    admin.set_permissions(name, name)  # full rights in its own vhost, none elsewhere
    url = Broker(amqp_host, amqp_port, name, name, password, management_url, "classroom", tls=tls)
    return Seat(student, name, password, name, url.amqp_url, management_url + "/", status)


@contextmanager
def ctrl_c_held(insist: bool = False) -> Iterator[None]:
    """Run the block whole: a Ctrl-C during it is raised as KeyboardInterrupt once it ends.

    Why: a student interrupted between the vhost and the user would exist on the broker but
    in no CSV, and a CSV interrupted while written would not match the broker. With `insist`
    a second Ctrl-C stops at once (a request that hangs until its timeout is not worth
    waiting for). Signal handlers can only be set in the main thread; elsewhere, and when
    Ctrl-C is ignored, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        if held and insist:
            raise KeyboardInterrupt
        held.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if held:
        if callable(previous):  # Python's default handler raises KeyboardInterrupt
            previous(signal.SIGINT, None)
        else:  # SIG_DFL (or a handler set outside Python) would have ended the process
            raise KeyboardInterrupt


def new_password() -> str:
    """A random password that is safe in a URL without quoting (24 url-safe characters)."""
    return secrets.token_urlsafe(18)


def find_classroom(admin: ManagementClient, prefix: str = DEFAULT_PREFIX) -> Removed:
    """The vhosts and users provisioning made with `prefix` (what teardown would delete)."""
    tag = marker_tag(prefix)
    users = sorted(u["name"] for u in admin.users() if tag in _tags(u))
    vhosts = sorted(
        v["name"]
        for v in admin.vhosts()
        if tag in _tags(v) or (v["name"] in users and v["name"].startswith(f"{prefix}-"))
    )
    return Removed(vhosts=vhosts, users=users)


def teardown(admin: ManagementClient, prefix: str = DEFAULT_PREFIX) -> Removed:
    """Delete every vhost and user that provisioning made with `prefix`; safe to run again.

    Vhosts go first: deleting one closes its connections and drops its queues.
    """
    found = find_classroom(admin, prefix)
    for vhost in found.vhosts:
        admin.delete_vhost(vhost)
    for user in found.users:
        admin.delete_user(user)
    return found


# -- the CSV the instructor hands out -------------------------------------------------------


def write_csv(path: Path, seats: Sequence[Seat]) -> None:
    """Write the seats, readable by the instructor only (it holds passwords)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for s in seats:
            writer.writerow(
                (s.student, s.username, s.password, s.vhost, s.amqp_url, s.management_url)
            )


def read_seats(path: Path, prefix: str = DEFAULT_PREFIX) -> list[Seat]:
    """The seats of this prefix in an earlier CSV (empty if there is none), status "kept"."""
    return [
        Seat(
            r["student"],
            r["username"],
            r["password"],
            r["vhost"],
            r["AMQP_URL"],
            r["management_url"],
            "kept",
        )
        for r in _read_rows(Path(path)) or []
        if r["username"].startswith(f"{prefix}-") and r["password"]
    ]


def read_passwords(path: Path, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """username -> password from an earlier CSV of this prefix (empty if there is none)."""
    return {seat.username: seat.password for seat in read_seats(path, prefix)}


def merge_seats(
    admin: ManagementClient, new: Sequence[Seat], old: Sequence[Seat], prefix: str
) -> list[Seat]:
    """This run's seats plus earlier ones that still exist, so the CSV lists everyone.

    Provisioning `--names dave` after `--names alice,bob` must not drop alice's and bob's
    passwords from the file the instructor keeps.
    """
    alive = set(find_classroom(admin, prefix).users)
    done = {seat.username for seat in new}
    return list(new) + [s for s in old if s.username not in done and s.username in alive]


def remove_csv(path: Path, prefix: str = DEFAULT_PREFIX) -> bool:
    """Delete the CSV if it is ours and only about this prefix; its passwords are dead now."""
    path = Path(path)
    rows = _read_rows(path)
    if rows is None or not all(r["username"].startswith(f"{prefix}-") for r in rows):
        return False
    path.unlink()
    return True


def _read_rows(path: Path) -> list[dict[str, str]] | None:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != CSV_FIELDS:
                return None
            return list(reader)
    except FileNotFoundError:
        return None


def format_table(seats: Sequence[Seat]) -> str:
    """A plain-text table to read out or project: student, status, AMQP_URL, management."""
    header = ("student", "status", "AMQP_URL", "management (log in as the URL's user)")
    rows = [header] + [(s.student, s.status, s.amqp_url, s.management_url) for s in seats]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _tags(item: dict) -> list[str]:
    tags = item.get("tags") or []
    return tags.split(",") if isinstance(tags, str) else list(tags)
