"""The error index: every error a learner meets in the chapters, in one table.

Each entry says what an error means, how to fix it, and which chapter explains it. Three
readers share this one table, so they never disagree:

- `helpers.errors.explain()` turns an exception into the entry's sentence;
- the IPython hook (`helpers.errors.install_error_hook`) adds the entry's `one_line()` under
  the traceback of a cell that raised it;
- `scripts/errors_doc.py` writes docs/errors.md from it (a unit test fails when the file
  is stale).

The order matters: the first entry whose rule matches wins, so the specific ones (a 406 for
an inequivalent argument) come before the general ones (pika's AMQPConnectionError, of
which ConnectionClosedByBroker, StreamLostError and ConnectionBlockedTimeout are subclasses).
The rules that recognise an error live in `helpers.error_rules`.

Reply texts were read on RabbitMQ 4.3.6 and 3.10.8 (tests/test_error_index.py provokes each
error on a real broker). Texts differ between versions (3.10 says "delivery acknowledgement
on channel 1 timed out", 4.3 cancels the consumer instead), so rules match on the reply code
and a short, stable part of the text.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import pika.exceptions as pe
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from helpers.error_rules import (
    Rule,
    closed_with,
    deprecated_feature,
    handshake_timeout,
    is_a,
    raised_by_url_parameters,
    refused,
    reply_text,
    root_cause,
    unresolved,
)
from helpers.i18n import N_, _


@dataclass(frozen=True)
class ErrorEntry:
    """One row of the index.

    `meaning` and `fix` are written to be joined as "meaning: fix." (that is explain()'s
    sentence); a `{detail}` in `meaning` is filled from the exception by `detail`.
    `explain_names_chapter` is False for the connection errors whose sentences chapter 01
    prints in its committed outputs: those sentences stay word for word as they were.
    """

    key: str
    label: str  # how the learner sees it: the reply code and name, or pika's exception
    raised_as: str  # the pika exception a BlockingConnection raises
    when: str  # what the learner typically did
    meaning: str
    fix: str
    chapter: str  # "02": notebooks/02_*.ipynb explains it
    matches: Rule
    detail: Callable[[BaseException], str] | None = None
    explain_names_chapter: bool = True

    def meaning_for(self, exc: BaseException | None = None) -> str:
        """The meaning, with `{detail}` filled from `exc` (or "…" without one)."""
        meaning = _(self.meaning)
        if "{detail}" not in meaning:
            return meaning
        text = self.detail(exc) if (exc is not None and self.detail) else "…"
        return meaning.replace("{detail}", text)

    def headline(self) -> str:
        """The part of the meaning that never changes: what a test looks for."""
        return _(self.meaning).split("{detail}")[0].rstrip(" (（")

    def sentence(self, exc: BaseException | None = None) -> str:
        """explain()'s sentence: "meaning: fix." (plus the chapter, see the class doc)."""
        text = _("{meaning}: {fix}.").format(meaning=self.meaning_for(exc), fix=_(self.fix))
        if not self.explain_names_chapter:
            return text
        return _("{text} (chapter {chapter})").format(text=text, chapter=self.chapter)

    def one_line(self, exc: BaseException | None = None) -> str:
        """What the IPython hook prints under a traceback: label, meaning, fix, chapter."""
        meaning = self.meaning_for(root_cause(exc)) if exc is not None else self.headline()
        return _("{label}: {meaning}; fix: {fix} (chapter {chapter})").format(
            label=self.label, meaning=meaning, fix=_(self.fix), chapter=self.chapter
        )


# -- the index ---------------------------------------------------------------------------------

ENTRIES: tuple[ErrorEntry, ...] = (
    ErrorEntry(
        key="blocked",
        label="ConnectionBlockedTimeout",
        raised_as="ConnectionBlockedTimeout",
        when="publishing while the broker has a memory or disk alarm",
        meaning=N_(
            "The broker blocked this connection's publishing (a memory or disk alarm is on) for "
            "longer than its blocked_connection_timeout, so pika closed the connection"
        ),
        fix=N_(
            "free disk space or memory on the broker's machine (for the tutorial's node: `python "
            "-m helpers alarm clear`), then publish again on a new connection, with confirms"
        ),
        chapter="02",
        matches=is_a(pe.ConnectionBlockedTimeout),
    ),
    ErrorEntry(
        key="541-deprecated",
        label="541 INTERNAL_ERROR (deprecated feature)",
        raised_as="ConnectionClosedByBroker",
        when="declaring a queue that is neither durable nor exclusive where the broker denies it "
        "(upstream RabbitMQ 4.3 and newer by default), or another denied deprecated feature",
        meaning=N_("RabbitMQ refused a deprecated feature and closed the connection ({detail})"),
        fix=N_(
            "declare queues durable=True (or exclusive=True for a temporary one) and use "
            "per-consumer prefetch instead of global_qos. Upstream RabbitMQ 4.3 and newer deny "
            "transient non-exclusive queues by default; 4.0-4.2 permit them with a warning in the "
            "broker's log; a distribution's build or the broker's rabbitmq.conf "
            "(`deprecated_features.permit.transient_nonexcl_queues`) may decide otherwise"
        ),
        chapter="07",
        matches=deprecated_feature,
        detail=reply_text,
    ),
    ErrorEntry(
        key="406-inequivalent",
        label="406 PRECONDITION_FAILED (inequivalent arg)",
        raised_as="ChannelClosedByBroker",
        when="declaring a queue or exchange again with other arguments (durable, type, x-...)",
        meaning=N_(
            "The queue or exchange already exists with other arguments than this declaration "
            "({detail}), and the broker closed the channel"
        ),
        fix=N_(
            "declare it with exactly the arguments it has (see them in the management UI), or "
            "delete it first (`channel.queue_delete(name)`) if you mean to change them; then use a "
            "new channel"
        ),
        chapter="02",
        matches=closed_with(pe.ChannelClosedByBroker, 406, "inequivalent arg"),
        detail=lambda exc: reply_text(exc).split(" for ", 1)[0].replace(
            "PRECONDITION_FAILED - ", ""
        ),
    ),
    ErrorEntry(
        key="406-ack-timeout",
        label="406 PRECONDITION_FAILED (delivery acknowledgement timed out)",
        raised_as="ChannelClosedByBroker",
        when="keeping a delivery unacknowledged longer than the broker's consumer_timeout",
        meaning=N_(
            "A consumer held a delivery unacknowledged longer than the broker's consumer_timeout "
            "(30 minutes by default), so the broker closed the channel and requeued its "
            "unacknowledged messages"
        ),
        fix=N_(
            "acknowledge each delivery when its work is done (and do long work in a thread, acking "
            "with `connection.add_callback_threadsafe`), or raise the timeout. This is RabbitMQ up "
            "to 4.2, for every queue type; 4.3 and newer check the timeout for quorum queues only "
            "and cancel the consumer instead (the channel stays open, pika's `channel.consume()` "
            "just stops yielding)"
        ),
        chapter="05",
        matches=closed_with(pe.ChannelClosedByBroker, 406, "delivery acknowledgement", "timed out"),
    ),
    ErrorEntry(
        key="406-unknown-tag",
        label="406 PRECONDITION_FAILED (unknown delivery tag)",
        raised_as="ChannelClosedByBroker",
        when="acking a delivery twice, or on another channel than the one it came on",
        meaning=N_(
            "The channel acknowledged a delivery tag it does not hold (acked twice, or on the "
            "wrong channel), and the broker closed the channel"
        ),
        fix=N_(
            "ack each delivery exactly once, on the channel it arrived on; the closed channel's "
            "other unacknowledged deliveries come back, so use a new channel"
        ),
        chapter="05",
        matches=closed_with(pe.ChannelClosedByBroker, 406, "unknown delivery tag"),
    ),
    ErrorEntry(
        key="404-not-found",
        label="404 NOT_FOUND",
        raised_as="ChannelClosedByBroker",
        when="publishing to, binding or passively declaring an exchange or queue that does "
        "not exist",
        meaning=N_(
            "The exchange or queue does not exist ({detail}), and the broker closed the channel"
        ),
        fix=N_("declare it first (or check the spelling of its name), then use a new channel"),
        chapter="04",
        matches=closed_with(pe.ChannelClosedByBroker, 404),
        detail=lambda exc: reply_text(exc).replace("NOT_FOUND - ", ""),
    ),
    ErrorEntry(
        key="403-access-refused",
        label="403 ACCESS_REFUSED",
        raised_as="ChannelClosedByBroker",
        when="declaring or deleting a name starting with amq., or using a resource the user "
        "has no permission for",
        meaning=N_("The broker refused the operation ({detail}), and closed the channel"),
        fix=N_(
            "pick a name that does not start with `amq.` (those belong to the broker), or give "
            "the user permission on that vhost; then use a new channel"
        ),
        chapter="04",
        matches=closed_with(pe.ChannelClosedByBroker, 403),
        detail=lambda exc: reply_text(exc).replace("ACCESS_REFUSED - ", ""),
    ),
    ErrorEntry(
        key="312-no-route",
        label="312 NO_ROUTE (UnroutableError)",
        raised_as="UnroutableError",
        when="publishing with mandatory=True (and confirms) a message no queue is bound for",
        meaning=N_(
            "No queue took the message, so the broker returned it (312 NO_ROUTE), as "
            "mandatory=True asks"
        ),
        fix=N_(
            "check the exchange's bindings and the routing key (or the queue name, on the default "
            "exchange), declare and bind the queue before publishing, or give the exchange an "
            "alternate exchange"
        ),
        chapter="02",
        matches=is_a(pe.UnroutableError),
    ),
    ErrorEntry(
        key="nack",
        label="NackError",
        raised_as="NackError",
        when="publishing with confirms to a queue that refuses the message (x-overflow "
        "reject-publish, or an internal error)",
        meaning=N_("The broker nacked the message (it did not take responsibility for it)"),
        fix=N_(
            "publish it again later, or slow down: a full queue with x-overflow reject-publish "
            "nacks until consumers drain it"
        ),
        chapter="02",
        matches=is_a(pe.NackError),
    ),
    ErrorEntry(
        key="320-connection-forced",
        label="320 CONNECTION_FORCED",
        raised_as="ConnectionClosedByBroker",
        when="the broker restarting or shutting down, or an operator closing the connection",
        meaning=N_(
            "The broker closed the connection on purpose ({detail}), because it is shutting down "
            "or an operator closed it"
        ),
        fix=N_(
            "open a new connection when the broker is back (retry with a growing pause), and "
            "publish with confirms so you know what to send again"
        ),
        chapter="08",
        matches=closed_with(pe.ConnectionClosedByBroker, 320),
        detail=lambda exc: reply_text(exc).replace("CONNECTION_FORCED - ", ""),
    ),
    ErrorEntry(
        key="channel-closed",
        label="ChannelWrongStateError",
        raised_as="ChannelWrongStateError",
        when="using a channel after a channel error closed it",
        meaning=N_(
            "The channel is closed, because an earlier error on it (a 404, a 406) closed it, and "
            "a closed channel stays closed"
        ),
        fix=N_("open a new channel with `connection.channel()` (look for the first error)"),
        chapter="01",
        matches=is_a(pe.ChannelWrongStateError),
    ),
    ErrorEntry(
        key="connection-closed",
        label="ConnectionWrongStateError",
        raised_as="ConnectionWrongStateError",
        when="using a connection after it was closed (by the `with` block, or by the broker)",
        meaning=N_(
            "The connection is closed already (by your code, a `with` block, or "
            "the broker)"
        ),
        fix=N_(
            "open a new connection; a cell opens its own with "
            "`with pika.BlockingConnection(...)`"
        ),
        chapter="03",
        matches=is_a(pe.ConnectionWrongStateError),
    ),
    ErrorEntry(
        key="auth",
        label="ProbableAuthenticationError",
        raised_as="ProbableAuthenticationError",
        when="connecting with a wrong user name or password",
        meaning=N_("The broker refused the user name or password"),
        fix=N_(
            "check the credentials (the private node's are in .rabbitmq/<kind>/credentials.json; "
            "`find_broker()` returns them)"
        ),
        chapter="01",
        matches=is_a(pe.ProbableAuthenticationError),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="vhost",
        label="ProbableAccessDeniedError",
        raised_as="ProbableAccessDeniedError",
        when="connecting to a virtual host that does not exist, or that the user may not use",
        meaning=N_("The broker has no such virtual host, or this user may not use it"),
        fix=N_("check the vhost name (the default is '/') and the user's permissions"),
        chapter="01",
        matches=is_a(pe.ProbableAccessDeniedError),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="refused",
        label="AMQPConnectionError (connection refused)",
        raised_as="AMQPConnectionError",
        when="connecting while no broker runs there",
        meaning=N_("Nothing is listening on that host and port"),
        fix=N_("start the broker (`python -m helpers broker start`) or fix the port"),
        chapter="01",
        matches=refused,
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="dns",
        label="AMQPConnectionError (host not found)",
        raised_as="AMQPConnectionError",
        when="connecting to a misspelt host",
        meaning=N_("That host name does not resolve"),
        fix=N_("check the spelling of the host"),
        chapter="01",
        matches=unresolved,
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="stream-lost",
        label="StreamLostError",
        raised_as="StreamLostError",
        when="using a connection after a pause, or after a long callback",
        meaning=N_(
            "The connection was lost (the broker restarted or dropped it after missed heartbeats, "
            "e.g. during a long callback)"
        ),
        fix=N_(
            "open a new connection; if it happened while connecting, check the port is "
            "RabbitMQ's"
        ),
        chapter="01",
        matches=is_a(pe.StreamLostError),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="not-amqp",
        label="AMQPConnectionError (not AMQP)",
        raised_as="IncompatibleProtocolError / AMQPConnectionError",
        when="connecting to a port where another program answers",
        meaning=N_("Something answered on that port but did not speak AMQP"),
        fix=N_("check the port (5672 is AMQP, 15672 is the management web UI)"),
        chapter="01",
        matches=lambda exc: isinstance(exc, pe.AMQPConnectionError)
        and not isinstance(exc, pe.ConnectionClosedByBroker),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="handshake-timeout",
        label="AMQPConnectorStackTimeout (no AMQP handshake)",
        raised_as="AMQPConnectionError",
        when="connecting with stack_timeout to a port whose program never answers AMQP",
        meaning=N_("Something accepted the connection but never completed the AMQP handshake"),
        fix=N_(
            "it is probably not RabbitMQ, so check the port (5672 is AMQP, 15672 is the management "
            "web UI)"
        ),
        chapter="01",
        matches=handshake_timeout,
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="timeout",
        label="AMQPConnectionError (timed out)",
        raised_as="AMQPConnectionError",
        when="connecting to a host that does not answer",
        meaning=N_("The broker did not answer in time"),
        fix=N_("check the host, the port and your network"),
        chapter="01",
        matches=is_a(socket.timeout, TimeoutError, AMQPConnectorStackTimeout),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="url",
        label="IndexError in URLParameters",
        raised_as="IndexError",
        when="writing an AMQP URL without its scheme",
        meaning=N_("pika could not parse that URL"),
        fix=N_(
            "write it as amqp://user:password@host:5672/vhost (the default vhost '/' is written "
            "%2F)"
        ),
        chapter="01",
        matches=lambda exc: isinstance(exc, IndexError) and raised_by_url_parameters(exc),
        explain_names_chapter=False,
    ),
    ErrorEntry(
        key="malformed",
        label="ValueError in connection settings",
        raised_as="ValueError",
        when="a wrong port, an unknown URL parameter, a wrong type in ConnectionParameters",
        meaning=N_("The connection settings are malformed ({detail})"),
        fix=N_("fix them and try again"),
        chapter="01",
        matches=is_a(ValueError),
        detail=str,
        explain_names_chapter=False,
    ),
)


def find_entry(exc: BaseException) -> ErrorEntry | None:
    """The first entry whose rule matches `exc` (after unwrapping pika's layers), or None."""
    cause = root_cause(exc)
    for entry in ENTRIES:
        if entry.matches(cause):
            return entry
    return None


def entry(key: str) -> ErrorEntry:
    """The entry with that key (KeyError when there is none)."""
    for candidate in ENTRIES:
        if candidate.key == key:
            return candidate
    raise KeyError(key)
