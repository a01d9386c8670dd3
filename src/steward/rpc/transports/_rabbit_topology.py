"""What the rabbit transport declares on the broker, named and flagged as oslo.messaging does.

Private to :mod:`steward.rpc.transports.rabbit`, split from it so that the oslo rules live in one
place, each next to the oslo behaviour it follows (``shared/reference/oslo-wire.md`` §1-§4):

* the topic exchange is ``Target.exchange`` or ``control_exchange``, type topic, durable when
  ``amqp_durable_queues`` or ``rabbit_quorum_queue``, auto-delete when ``amqp_auto_delete``
  (oslo's ``topic_send`` and ``declare_topic_consumer``);
* a server on (topic, server) consumes ``<topic>`` and ``<topic>.<server>``, bound to the topic
  exchange by their own names, with the exchange's flags and no ``x-expires``; quorum queues
  (``x-queue-type: quorum``) when ``rabbit_quorum_queue``;
* fanout goes through ``<topic>_fanout`` (type fanout, never durable, auto-delete), into a queue
  per listener ``<topic>_fanout_<uuid4 hex>`` (not durable, not auto-delete, ``x-expires``
  ``rabbit_transient_queues_ttl`` seconds), bound with the topic as routing key
  (``declare_fanout_consumer``);
* replies come to ``reply_<uuid4 hex>`` (not durable, not auto-delete, ``x-expires``), reached
  through the default exchange by its name: the queue is never bound (``declare_direct_consumer``);
* notifications go to the topic exchange with key ``<topic>.<priority>``; their publisher
  declares the queue of that name, bound by it, so they wait for a listener (oslo's notifier);
* every message has oslo's (kombu's) properties: ``application/json``, ``utf-8``, persistent,
  priority 0, empty headers, and for calls ``expiration`` in milliseconds; no ``message_id``,
  ``correlation_id`` or ``reply_to``.

:func:`declare` falls back to non-durable when the broker answers PRECONDITION_FAILED for an
inequivalent ``durable`` argument, as oslo does for a control exchange shared by services with
different settings.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Iterable, Mapping

from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic
from pamqp.common import FieldValue

from steward.rpc.wire import new_id

if typing.TYPE_CHECKING:
    from aiormq.abc import AbstractChannel, AbstractConnection

    from steward.config import Settings
    from steward.rpc.target import Target

__all__ = ["Exchange", "Queue", "Topology", "declare", "properties"]

LOG = logging.getLogger(__name__)

# The text RabbitMQ puts in the PRECONDITION_FAILED that oslo falls back on.
_DURABLE_MISMATCH = "inequivalent arg 'durable'"


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange to declare: name, AMQP type and flags."""

    name: str
    type: str
    durable: bool
    auto_delete: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """A queue to declare, and the exchange and routing key it is bound with (None: not bound)."""

    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, FieldValue]
    exchange: Exchange | None = None
    routing_key: str = ""


Entity = Exchange | Queue


def _exchange_name(entity: Entity) -> str:
    if isinstance(entity, Exchange):
        return entity.name
    return entity.exchange.name if entity.exchange is not None else ""


def _non_durable(entity: Entity) -> Entity:
    # oslo's _declare_fallback_nondurable: both the queue and its exchange become non-durable.
    if isinstance(entity, Exchange):
        return dataclasses.replace(entity, durable=False)
    exchange = entity.exchange and dataclasses.replace(entity.exchange, durable=False)
    return dataclasses.replace(entity, durable=False, exchange=exchange)


class Topology:
    """oslo.messaging's names and flags under one transport's settings."""

    def __init__(self, settings: Settings) -> None:
        self.control_exchange = settings.control_exchange
        # oslo: self.durable = amqp_durable_queues or rabbit_quorum_queue.
        self.durable = settings.rabbit.durable_queues or settings.rabbit.quorum_queue
        self.auto_delete = settings.rabbit.auto_delete
        self.topic_arguments: dict[str, FieldValue] = (
            {"x-queue-type": "quorum"} if settings.rabbit.quorum_queue else {}
        )
        ttl = settings.rabbit.transient_queues_ttl
        self.transient_arguments: dict[str, FieldValue] = {"x-expires": ttl * 1000} if ttl else {}

    def topic_exchange(self, target: Target) -> Exchange:
        """Return the topic exchange of ``target``: its ``exchange`` or ``control_exchange``."""
        name = target.exchange or self.control_exchange
        return Exchange(name, "topic", durable=self.durable, auto_delete=self.auto_delete)

    @staticmethod
    def fanout_exchange(topic: str) -> Exchange:
        """``<topic>_fanout``: durable only with transient quorum queues, which steward omits."""
        return Exchange(f"{topic}_fanout", "fanout", durable=False, auto_delete=True)

    def destination(self, target: Target) -> tuple[Exchange, str]:
        """Return the exchange and routing key of a message to ``target``."""
        topic = str(target.topic)
        if target.fanout:
            return self.fanout_exchange(topic), ""  # oslo's fanout_send: routing key ""
        key = f"{topic}.{target.server}" if target.server else topic
        return self.topic_exchange(target), key

    def server_queues(self, target: Target) -> list[Queue]:
        """Return the queues a server on ``target`` consumes: topic, topic.server, fanout."""
        topic, exchange = str(target.topic), self.topic_exchange(target)
        server_key = f"{topic}.{target.server}"
        shared = {"durable": self.durable, "auto_delete": self.auto_delete}
        return [
            Queue(
                topic,
                arguments=self.topic_arguments,
                exchange=exchange,
                routing_key=topic,
                **shared,
            ),
            Queue(
                server_key,
                arguments=self.topic_arguments,
                exchange=exchange,
                routing_key=server_key,
                **shared,
            ),
            Queue(
                f"{topic}_fanout_{new_id()}",
                durable=False,
                auto_delete=False,
                arguments=self.transient_arguments,
                exchange=self.fanout_exchange(topic),
                routing_key=topic,
            ),
        ]

    def notification_queue(self, target: Target, priority: str, pool: str | None = None) -> Queue:
        """Return ``<topic>.<priority>`` (or queue ``pool``) bound by that key to the exchange.

        As oslo's notifier and listener: the topic queue's flags, no ``x-expires``; a listener
        pool is one queue named ``pool`` bound with every key it listens to.
        """
        key = f"{target.topic}.{priority}"
        return Queue(
            pool or key,
            durable=self.durable,
            auto_delete=self.auto_delete,
            arguments=self.topic_arguments,
            exchange=self.topic_exchange(target),
            routing_key=key,
        )

    def reply_queue(self) -> Queue:
        """Return a new reply queue, reached through the default exchange by its name."""
        return Queue(
            f"reply_{new_id()}",
            durable=False,
            auto_delete=False,
            arguments=self.transient_arguments,
        )


def properties(expiration: float | None = None) -> Basic.Properties:
    """Message properties as kombu sets them for oslo; ``expiration`` in seconds (calls)."""
    return Basic.Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={},
        delivery_mode=2,
        priority=0,
        # kombu: str(int(expiration * 1000)), milliseconds as a string.
        expiration=str(int(expiration * 1000)) if expiration is not None else None,
    )


async def declare(connection: AbstractConnection, entities: Iterable[Entity]) -> None:
    """Declare ``entities`` (queues with their exchange and binding) on a channel of their own.

    A PRECONDITION_FAILED for ``durable`` closes the channel; the entity is then declared again,
    non-durable, on a fresh one (oslo's fallback). Any other channel error propagates.
    """
    channel = await connection.channel(publisher_confirms=False)
    declared: set[str] = set()
    fell_back: set[str] = set()  # exchanges declared non-durable after a mismatch
    try:
        for entity in entities:
            if isinstance(entity, Queue) and _exchange_name(entity) in fell_back:
                entity = _non_durable(entity)  # noqa: PLW2901 - as oslo's fallback would
            try:
                await _declare(channel, entity, declared)
            except ChannelPreconditionFailed as exc:
                if _DURABLE_MISMATCH not in str(exc):
                    raise
                LOG.warning(
                    "%s could not be declared as configured (%s); declaring it non-durable, "
                    "as oslo.messaging does",
                    entity.name,
                    exc,
                )
                channel = await connection.channel(publisher_confirms=False)
                entity = _non_durable(entity)  # noqa: PLW2901 - declared as this instead
                await _declare(channel, entity, declared)
                fell_back.add(_exchange_name(entity))
    finally:
        if not channel.is_closed:
            await channel.close()


async def _declare(channel: AbstractChannel, entity: Entity, declared: set[str]) -> None:
    if isinstance(entity, Exchange):
        if entity.name not in declared:
            await channel.exchange_declare(
                entity.name,
                exchange_type=entity.type,
                durable=entity.durable,
                auto_delete=entity.auto_delete,
            )
            declared.add(entity.name)
        return
    if entity.exchange is not None:
        await _declare(channel, entity.exchange, declared)
    await channel.queue_declare(
        entity.name,
        durable=entity.durable,
        auto_delete=entity.auto_delete,
        arguments=dict(entity.arguments),
    )
    if entity.exchange is not None:
        await channel.queue_bind(entity.name, entity.exchange.name, routing_key=entity.routing_key)
