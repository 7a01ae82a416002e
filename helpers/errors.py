"""Short, actionable errors.

A learner who mistypes a password should read one sentence that says what to do, not a page
of traceback. `TutorialError` renders itself as one line in IPython, and `explain()` turns
the pika exceptions people actually meet into such a sentence, from the error index
(`helpers.error_index`, also docs/errors.md).

In IPython, `install_error_hook()` (called when the helpers are imported) adds the index's
line under the traceback of every broker or pika error the index knows, so a learner whose
own cell fails (a 406 after forgetting `durable=True` on a re-run) reads what it means, the
fix, and the chapter that explains it, without calling anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import pika.exceptions as pe

from helpers.error_index import ErrorEntry, find_entry
from helpers.error_rules import raised_by_pika, reply_text, root_cause
from helpers.i18n import _

INSTALL_HINT = (
    "Install RabbitMQ (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`; macOS: "
    "`brew install rabbitmq`) and run `make lab` again, or start one with Docker: "
    "`docker run -d --name rabbitmq -p 127.0.0.1:5672:5672 -p 127.0.0.1:15672:15672 "
    "rabbitmq:4-management`."
)


class TutorialError(Exception):
    """An error whose message already says what to do; shown without a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback.
        return [f"{type(self).__name__}: {self}"]


class BrokerUnavailable(TutorialError):
    """No broker could be found or started."""


# How explain() learns which resource alarm blocked a connection. This module sits below the
# management client in the helpers' import tree, so it cannot ask the broker itself;
# `helpers.alarms` (imported with the package) lends it a lookup: the exception in, (the
# alarms in effect, or None when the broker could not be asked; whether the broker is this
# checkout's private node, which `python -m helpers alarm clear` can lower again) out.
AlarmLookup = Callable[[BaseException], "tuple[list[str] | None, bool]"]
_alarm_lookup: AlarmLookup | None = None


def set_alarm_lookup(lookup: AlarmLookup | None) -> None:
    """Let explain() ask the broker which alarm blocks a connection (see `helpers.alarms`)."""
    global _alarm_lookup
    _alarm_lookup = lookup


class ManagementError(TutorialError):
    """The management HTTP API refused or failed a request.

    `status` is the HTTP status when the API answered (None when it did not answer), so a
    caller tells "not supported here" (400) from "gone" (404) without reading the text.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def explain(exc: BaseException) -> str:
    """One sentence that says what went wrong and what to do about it.

    The sentence is the error index's entry for `exc` (`helpers.error_index`, also written
    to docs/errors.md), naming the chapter that explains it; a blocked publish also says
    which alarm blocks the broker now. An error the index does not know gets a generic
    sentence.
    """
    cause = root_cause(exc)
    entry = find_entry(exc)
    if entry is not None and entry.key == "blocked":
        return _("{text} (chapter {chapter})").format(
            text=blocked_publishing(*_ask_alarms(exc)), chapter=entry.chapter
        )
    if entry is not None:
        return entry.sentence(cause)
    if isinstance(cause, pe.ConnectionClosedByBroker):
        return (
            _(
                "The broker closed the connection ({code} {text}): open a new "
                "connection."
            ).format(code=cause.reply_code, text=reply_text(cause))
        )
    if isinstance(cause, pe.ChannelClosedByBroker):
        return (
            _(
                "The broker closed the channel ({code} {text}): open a new channel "
                "with `connection.channel()`."
            ).format(code=cause.reply_code, text=reply_text(cause))
        )
    return f"{type(cause).__name__}: {cause}"


def blocked_publishing(alarms: Sequence[str] | None, private_node: bool = False) -> str:
    """The sentence for a ConnectionBlockedTimeout, given the alarms the broker has now.

    RabbitMQ (3.x and 4.x alike; seen on 3.10.8 and 4.3.6) stops reading from every
    connection that publishes while a memory or disk alarm is on, and tells it with
    `Connection.Blocked`; pika's `blocked_connection_timeout` then closes the connection with
    this error. `alarms` are "disk", "memory" (or "resource" when the broker did not say
    which); None when the broker could not be asked. `private_node`: it is this checkout's
    node, whose limits `python -m helpers alarm clear` puts back.
    """
    if alarms is None:
        return (
            _(
                "The broker blocked this connection's publishing for longer than its "
                "blocked_connection_timeout, which RabbitMQ does while a resource alarm is on "
                "(free disk space below its limit, or memory use above its watermark): free disk "
                "space or memory on the broker's machine (or ask whoever runs it), then publish "
                "again."
            )
        )
    kinds = sorted({a for a in alarms if a in ("disk", "memory")}) or sorted(set(alarms))
    if not kinds:
        return (
            _(
                "The broker blocked this connection's publishing for longer than its "
                "blocked_connection_timeout because of a resource alarm, which has cleared since: "
                "publish again on a new connection, with confirms (the blocked message may have "
                "arrived after all)."
            )
        )
    what = {
        ("disk",): _("a disk alarm (its free disk space is below its disk_free_limit)"),
        ("memory",): _(
            "a memory alarm (it uses more memory than vm_memory_high_watermark allows)"
        ),
        ("disk", "memory"): _("a disk and a memory alarm"),
    }.get(tuple(kinds), _("a resource alarm"))
    if private_node:
        fix = (
            _(
                "run `python -m helpers alarm clear` in a terminal to put the tutorial node's "
                "limits back"
            )
        )
    elif "disk" in kinds:
        fix = (
            _(
                "free disk space on the broker's machine, or lower its limit (`rabbitmqctl "
                "set_disk_free_limit 50MB`)"
            )
        )
    elif "memory" in kinds:
        fix = (
            _(
                "let consumers drain the queues, or raise the limit (`rabbitmqctl "
                "set_vm_memory_high_watermark <fraction of RAM>`)"
            )
        )
    else:
        fix = _("free disk space or memory on the broker's machine (or ask whoever runs it)")
    return (
        _(
            "The broker blocks publishers because it has {what}, so pika gave up on this "
            "connection after its blocked_connection_timeout: {fix}, then publish again."
        ).format(what=what, fix=fix)
    )


def _ask_alarms(exc: BaseException) -> tuple[list[str] | None, bool]:
    """The alarms of the broker `exc` came from, through `helpers.alarms`; never raises."""
    if _alarm_lookup is None:
        return None, False
    try:
        return _alarm_lookup(exc)
    except Exception:  # an explanation must not fail: say what is known without the broker
        return None, False


# -- IPython ----------------------------------------------------------------------------------

# The exception types the hook is registered for. ValueError and IndexError only for what
# pika raised (a malformed URL); the hook shows every other one exactly as IPython would.
_HOOKED_TYPES: tuple[type[BaseException], ...] = (pe.AMQPError, ValueError, IndexError)


def index_entry_for(exc: BaseException) -> ErrorEntry | None:
    """The index entry the hook shows for `exc`: only for pika's errors (raised by pika or a
    pika exception type), never for a learner's own ValueError that merely looks alike."""
    if not (isinstance(exc, pe.AMQPError) or raised_by_pika(exc)):
        return None
    return find_entry(exc)


def install_error_hook() -> bool:
    """Add the error index's line under the traceback of every pika error it knows.

    Registers an IPython custom exception handler for pika's errors (and pika's ValueError
    and IndexError). It keeps the usual traceback and appends one line, e.g.
    "406 PRECONDITION_FAILED (inequivalent arg): ...; fix: ... (chapter 02)". What it does not
    know it shows unchanged; an exception that renders itself (`_render_traceback_`, as
    TutorialError does) keeps its own rendering; a ConnectionBlockedTimeout keeps the one
    sentence that `helpers.alarms.install_ipython_handler` shows (that handler, installed
    later by `find_broker()`, wraps this one). A handler registered before keeps working for
    the exceptions it handles. Nothing of it runs for a cell that does not raise, so the
    outputs nbval compares stay the same. True when installed; False outside IPython. Safe
    to call again.
    """
    ipython = sys.modules.get("IPython")  # not imported: not in IPython (and not worth importing)
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    if getattr(shell, "_tutorial_error_hook", False):
        return True
    before = tuple(shell.custom_exceptions or ())
    previous = shell.CustomTB if before else None

    def show_with_index_line(
        self: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
    ) -> None:
        if previous is not None and issubclass(etype, before):
            return previous(etype, value, tb, tb_offset)
        try:
            entry = None if hasattr(value, "_render_traceback_") else index_entry_for(value)
            if isinstance(value, pe.ConnectionBlockedTimeout):
                stb = [f"{etype.__name__}: {explain(value)}"]
            elif entry is not None:
                stb = self.InteractiveTB.structured_traceback(
                    etype, value, tb, tb_offset=tb_offset
                )
                stb = [*stb, entry.one_line(value)]
            else:
                stb = None
        except Exception:  # never lose the learner's error over the line we wanted to add
            stb = None
        if stb is None:
            self.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        # What showtraceback does first: sys.last_value is the error of the last failed cell
        # (chapter 07's check reads it), and %debug and %tb find it there.
        self._get_exc_info((etype, value, tb))
        self._showtraceback(etype, value, stb)
        if self.call_pdb:  # what showtraceback does after showing it (%pdb on)
            self.debugger(force=True)
        return None

    shell.set_custom_exc(before + _HOOKED_TYPES, show_with_index_line)
    shell._tutorial_error_hook = True
    return True
