"""The same chapter open twice at once (two tabs, two kernels) on one broker and vhost.

Before the chapters claimed themselves, the second kernel's first cell deleted the first
kernel's queues and exchanges (its clean slate), the first kernel's next cell failed with
404, and both diagrams counted each other's messages. Now the second first cell refuses in
one line, deleting nothing, and the chapter can be opened again once the first run has
cleaned up or its kernel has died.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator

import pytest
from flow_support import private_vhost
from learner import Chapter, Session

from helpers import Broker
from helpers.chapter_claim import QUEUE_PREFIX, claim_chapter, release_chapter

CHAPTER = Chapter("04_exchanges.ipynb", wrong_answers=())


@pytest.fixture
def vbroker(broker: Broker) -> Iterator[Broker]:
    with private_vhost(broker, "tabs") as b:
        yield b


def _code_cells(session: Session) -> list[int]:
    return [i for i, c in enumerate(session.nb.cells) if c.cell_type == "code"]


def _first_declaring_cell(session: Session) -> int:
    """The first cell after the set-up that declares one of the chapter's objects."""
    for i in _code_cells(session)[1:]:
        if "exchange_declare(" in session.nb.cells[i].source:
            return i
    raise AssertionError("chapter 04 declares no exchange")


def _chapter_objects(vbroker: Broker) -> list[str]:
    api = vbroker.management
    return sorted(
        [q["name"] for q in api.queues(vbroker.vhost) if q["name"].startswith("ch04.")]
        + [x["name"] for x in api.exchanges(vbroker.vhost) if x["name"].startswith("ch04.")]
    )


def _kernel_pid(session: Session) -> int:
    return session.client.km.provisioner.process.pid


def test_a_chapter_open_in_two_kernels_refuses_the_second_and_deletes_nothing(vbroker):
    first, second = Session(CHAPTER, vbroker), Session(CHAPTER, vbroker)
    setup = _code_cells(first)[0]
    declare = _first_declaring_cell(first)
    with first.client.setup_kernel(env=first.env):
        assert "nothing left over" in first.run(setup)
        first.run(declare)
        objects = _chapter_objects(vbroker)
        assert objects, "the first run declared its objects"
        with second.client.setup_kernel(env=second.env):
            refused = second.run(setup, allow_error=True)
            assert "already running in another notebook" in refused, refused
            assert "nothing was deleted" in refused
            assert "Traceback" not in refused and len(refused.splitlines()) <= 2, refused
            assert _chapter_objects(vbroker) == objects, "the second run deleted nothing"
            first.run(declare)  # the first run goes on as before
            # The first run's cleanup releases the chapter: now the second may start.
            first.run(_code_cells(first)[-1])
            assert "nothing left over" in second.run(setup)
            second.run(_code_cells(second)[-1])
    left = [q["name"] for q in vbroker.management.queues(vbroker.vhost)]
    assert not [q for q in left if q.startswith(QUEUE_PREFIX)], "the claims went with them"


def test_a_killed_kernel_gives_the_chapter_up(vbroker):
    first, second = Session(CHAPTER, vbroker), Session(CHAPTER, vbroker)
    setup = _code_cells(first)[0]
    with second.client.setup_kernel(env=second.env):
        with first.client.setup_kernel(env=first.env):
            first.run(setup)
            assert "already running" in second.run(setup, allow_error=True)
            os.kill(_kernel_pid(first), signal.SIGKILL)  # what a crashed kernel does
            deadline = time.monotonic() + 10
            answer = ""
            while time.monotonic() < deadline:
                answer = second.run(setup, allow_error=True)
                if "already running" not in answer:
                    break
                time.sleep(0.5)
            assert "nothing left over" in answer or "deleted" in answer, answer
        second.run(_code_cells(second)[-1])


def test_a_user_who_may_not_declare_the_claim_still_runs_the_chapter(vbroker):
    """On a locked-down shared broker (configure rights on the chapter's names only) the
    claim cannot be declared: the chapter runs unclaimed rather than not at all."""
    api = vbroker.management
    user = f"tabs-limited-{os.getpid()}"
    api.put_user(user, "limited-pw", ["management"])
    try:
        api.set_permissions(vbroker.vhost, user, configure=r"^ch04\..*")
        limited = dataclasses.replace(vbroker, username=user, password="limited-pw")
        claim = claim_chapter(limited, "ch04")
        assert not claim.held
        release_chapter(limited, "ch04")
        # Its refusal is the 403 of this user, not the chapter being open elsewhere:
        assert claim_chapter(vbroker, "ch04").held
        release_chapter(vbroker, "ch04")
    finally:
        api.delete_user(user)
