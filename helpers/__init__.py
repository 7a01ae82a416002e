"""Helpers for the RabbitMQ + pika tutorial.

They find (or start) a broker, read its real state, draw it and check exercises. They never
hide the pika call a chapter teaches: notebooks build their own connections with plain pika.
"""

from helpers import alarms  # noqa: F401  lends explain() its look at the broker's alarms
from helpers.broker import Broker, find_broker
from helpers.chapter_claim import claim_chapter, release_chapter
from helpers.errors import BrokerUnavailable, TutorialError, explain, install_error_hook

# In IPython (a chapter's first cell imports the helpers), a pika error the error index knows
# gets the index's line under its traceback: what it means, the fix, the chapter.
install_error_hook()

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "TutorialError",
    "claim_chapter",
    "explain",
    "find_broker",
    "release_chapter",
]
