"""Helpers for the RabbitMQ + pika tutorial.

They find (or start) a broker, read its real state, draw it and check exercises. They never
hide the pika call a chapter teaches: notebooks build their own connections with plain pika.
"""

from helpers.broker import Broker, find_broker
from helpers.errors import BrokerUnavailable, TutorialError, explain

__all__ = ["Broker", "BrokerUnavailable", "TutorialError", "explain", "find_broker"]
