"""The RabbitMQ transport's options: ``settings.rabbit`` (amqp://, amqps://, rabbit://).

Each option also answers to its oslo.messaging name (``[oslo_messaging_rabbit]`` in nova.conf),
given flat: ``rabbit_quorum_queue = true`` in a config file, ``STEWARD_RABBIT_QUORUM_QUEUE`` in
the environment, ``rabbit_quorum_queue=True`` as a keyword. Read once, when a transport is made.

The options that change what is declared on the broker have oslo's names, defaults and meaning,
so that a steward service declares exactly what an oslo service with the same options does
(``_rabbit_topology``), and the combinations oslo refuses are refused here too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

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
    transient_quorum_queue: bool = option(
        False,
        "Reply and fanout queues are quorum queues too, durable, and so is the fanout exchange.",
        flat="rabbit_transient_quorum_queue",
    )
    quorum_delivery_limit: int = option(
        0,
        "Deliveries of a message before a quorum queue drops or dead-letters it "
        "(x-delivery-limit); 0: no limit.",
        flat="rabbit_quorum_delivery_limit",
        ge=0,
    )
    quorum_max_memory_length: int = option(
        0,
        "Messages a quorum queue keeps in memory (x-max-in-memory-length); 0: no limit.",
        flat="rabbit_quorum_max_memory_length",
        ge=0,
    )
    quorum_max_memory_bytes: int = option(
        0,
        "Bytes of messages a quorum queue keeps in memory (x-max-in-memory-bytes); 0: no limit.",
        flat="rabbit_quorum_max_memory_bytes",
        ge=0,
    )
    ha_queues: bool = option(
        False,
        "Declare queues with x-ha-policy: all (mirrored before RabbitMQ 3.0; since, a policy "
        "decides).",
        flat="rabbit_ha_queues",
    )
    stream_fanout: bool = option(
        False,
        "Fanout goes through one stream queue per topic, named <topic>_fanout, that every server "
        "reads; needs rabbit_transient_quorum_queue.",
        flat="rabbit_stream_fanout",
    )
    transient_queues_ttl: int = option(
        1800,
        "Seconds an unused reply or fanout queue lives (x-expires), or a fanout stream keeps "
        "messages (x-max-age); 0: for ever.",
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

    @model_validator(mode="after")
    def _check_queue_types(self) -> RabbitSettings:
        # oslo.messaging refuses these combinations when it declares the queues; refusing them
        # when the settings are read names the options before anything is declared.
        if self.ha_queues and (self.quorum_queue or self.transient_quorum_queue):
            which = "rabbit_quorum_queue" if self.quorum_queue else "rabbit_transient_quorum_queue"
            raise ValueError(
                f"rabbit_ha_queues and {which} cannot both be set: a queue is quorum or HA "
                f"(mirrored), not both (as oslo.messaging); unset one of them"
            )
        if self.stream_fanout and not self.transient_quorum_queue:
            raise ValueError(
                "rabbit_stream_fanout needs rabbit_transient_quorum_queue = true (as "
                "oslo.messaging: the fanout exchange a stream is bound to is durable then)"
            )
        return self
