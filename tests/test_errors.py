"""Each connection mistake a learner makes gets one sentence that says what to do."""

from __future__ import annotations

import pika
import pika.exceptions as pe
import pytest

from helpers import TutorialError, explain


def _connect(**kwargs) -> BaseException:
    params = pika.ConnectionParameters(connection_attempts=1, socket_timeout=2, **kwargs)
    with pytest.raises(pe.AMQPError) as info:
        pika.BlockingConnection(params).close()
    return info.value


def test_wrong_password(broker):
    exc = _connect(
        host=broker.host, port=broker.port, credentials=pika.PlainCredentials("guest", "nope")
    )
    assert "user name or password" in explain(exc)


def test_unknown_vhost(broker):
    exc = _connect(
        host=broker.host,
        port=broker.port,
        virtual_host="no-such-vhost",
        credentials=pika.PlainCredentials(broker.username, broker.password),
    )
    assert "virtual host" in explain(exc)


def test_broker_down(free_port):
    exc = _connect(host="127.0.0.1", port=free_port)
    assert "Nothing is listening" in explain(exc)


def test_port_of_another_program(broker):
    from urllib.parse import urlsplit

    exc = _connect(host="127.0.0.1", port=urlsplit(broker.management_url).port)
    assert "did not speak AMQP" in explain(exc)


def test_malformed_url():
    with pytest.raises(Exception) as info:
        pika.URLParameters("amqp://guest:guest@localhost:notaport/%2F")
    assert "malformed" in explain(info.value)


def test_deprecated_feature_refused_by_rabbitmq_4(broker):
    """RabbitMQ 4 with transient_nonexcl_queues denied closes the connection with 541.

    The installed 3.x of a machine without the reference broker still permits it.
    """
    error = None
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        channel = connection.channel()
        try:
            channel.queue_declare(
                "unit.errors.shared-transient",
                durable=False,  # deliberately transient and shared (deprecated in RabbitMQ 4):
                exclusive=False,  # the broker's answer to exactly this is what is tested
            )
        except pe.ConnectionClosedByBroker as exc:
            error = exc
        else:
            channel.queue_delete("unit.errors.shared-transient")
    if broker.version.startswith("3."):
        assert error is None
        return
    assert error is not None and error.reply_code == 541
    message = explain(error)
    assert "deprecated" in message and "durable=True" in message
    assert "did not speak AMQP" not in message


def test_tutorial_error_renders_as_one_line():
    err = TutorialError("Start the broker.")
    assert err._render_traceback_() == ["TutorialError: Start the broker."]
