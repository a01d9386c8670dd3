"""The RabbitMQ transport's options: ``settings.rabbit`` (amqp://, amqps://, rabbit://).

Each option also answers to its oslo.messaging name (``[oslo_messaging_rabbit]`` in nova.conf),
given flat: ``rabbit_quorum_queue = true`` in a config file, ``STEWARD_RABBIT_QUORUM_QUEUE`` in
the environment, ``rabbit_quorum_queue=True`` as a keyword. Read once, when a transport is made.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from steward.config._option import option

__all__ = ["RabbitSettings"]


class RabbitSettings(BaseModel):
    """Options of the RabbitMQ transport, under ``settings.rabbit``; frozen like every setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    durable_queues: bool = option(
        False,
        "Durable topic exchange and topic queues.",
        flat="amqp_durable_queues",
    )
    auto_delete: bool = option(
        False,
        "Auto-delete the topic exchange and topic queues when unused.",
        flat="amqp_auto_delete",
    )
    quorum_queue: bool = option(
        False,
        "Topic queues are quorum queues (x-queue-type: quorum), hence durable.",
        flat="rabbit_quorum_queue",
    )
    transient_queues_ttl: int = option(
        1800,
        "Seconds an unused reply or fanout queue lives (x-expires); 0 keeps it forever.",
        flat="rabbit_transient_queues_ttl",
        ge=0,
    )
    qos_prefetch_count: int = option(
        0,
        "Unacknowledged messages per consumer; 0: the RPC server's own prefetch.",
        flat="rabbit_qos_prefetch_count",
        ge=0,
    )
    heartbeat_timeout_threshold: int = option(
        60,
        "AMQP heartbeat timeout in seconds; 0 disables heartbeats.",
        flat="heartbeat_timeout_threshold",
        ge=0,
    )
    retry_interval: float = option(
        1.0,
        "Seconds before the first reconnection attempt.",
        flat="rabbit_retry_interval",
        gt=0,
    )
    retry_backoff: float = option(
        2.0,
        "Seconds added to the wait after each failed reconnection.",
        flat="rabbit_retry_backoff",
        ge=0,
    )
    interval_max: float = option(
        30.0,
        "Longest wait between reconnection attempts, in seconds.",
        flat="rabbit_interval_max",
        gt=0,
    )
