"""What the rabbit transport declares on the broker, named and flagged as oslo.messaging does.

Private to :mod:`steward.rpc.transports.rabbit`, split from it so that the oslo rules live in one
place, each next to the oslo behaviour it follows (``shared/reference/oslo-wire.md`` §1-§4):

* the topic exchange is ``Target.exchange`` or ``control_exchange``, type topic, durable when
  ``amqp_durable_queues`` or ``rabbit_quorum_queue``, auto-delete when ``amqp_auto_delete``
  (oslo's ``topic_send`` and ``declare_topic_consumer``);
* a server on (topic, server) consumes ``<topic>`` and ``<topic>.<server>``, bound to the topic
  exchange by their own names, with the exchange's flags and no ``x-expires``; quorum queues
  (``x-queue-type: quorum``, with ``x-delivery-limit``, ``x-max-in-memory-length`` and
  ``x-max-in-memory-bytes`` when those options are set) when ``rabbit_quorum_queue``;
* fanout goes through ``<topic>_fanout`` (type fanout, auto-delete, durable when
  ``rabbit_transient_quorum_queue``), into a queue per listener ``<topic>_fanout_<uuid4 hex>``
  (not auto-delete, ``x-expires`` ``rabbit_transient_queues_ttl`` seconds), bound with the topic
  as routing key (``declare_fanout_consumer``); with ``rabbit_stream_fanout``, into one stream
  queue ``<topic>_fanout`` that every listener reads (durable, ``x-max-age`` of the same ttl);
* replies come to ``reply_<uuid4 hex>`` (not auto-delete, ``x-expires``), reached through the
  default exchange by its name: the queue is never bound (``declare_direct_consumer``);
* reply and per-listener fanout queues are "transient": with ``rabbit_transient_quorum_queue``
  they are durable quorum queues, with the quorum limits above;
* ``rabbit_ha_queues`` adds ``x-ha-policy: all`` to every queue but a stream;
* notifications go to the topic exchange with key ``<topic>.<priority>``; their publisher
  declares the queue of that name, bound by it, so they wait for a listener (oslo's notifier);
* every message has oslo's (kombu's) properties: ``application/json``, ``utf-8``, persistent,
  priority 0, empty headers, and for calls ``expiration`` in milliseconds; no ``message_id``,
  ``correlation_id`` or ``reply_to``.

:func:`declare` never fails on what a deployment already declared with other options. For an
inequivalent ``durable`` it falls back to non-durable, as oslo does for a control exchange shared
by services with different settings. When that is not enough, or another argument differs (a
queue declared with ``rabbit_quorum_delivery_limit`` by a service whose settings lack it), it
joins the queue or exchange as the broker has it (a passive declaration) and logs a warning that
names the oslo option to set. Only an exchange of another type is an error: messages would be
routed otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import typing
from collections.abc import Iterable, Mapping

from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic
from pamqp.common import FieldValue

from steward.rpc.wire import new_id

if typing.TYPE_CHECKING:
    from aiormq.abc import AbstractChannel, AbstractConnection

    from steward.config import Settings
    from steward.config.rabbit import RabbitSettings
    from steward.rpc.target import Target

__all__ = ["Exchange", "Queue", "Topology", "declare", "properties"]

LOG = logging.getLogger(__name__)

# RabbitMQ's PRECONDITION_FAILED for a declaration that differs from what exists, e.g.
# "inequivalent arg 'x-delivery-limit' for queue 'q' in vhost 'v': received none but current is
# the value '5' of type 'byte'".
_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<arg>[^']*)'.*current is (?P<current>.*)$")

# The oslo option that sets each argument RabbitMQ compares (durable and x-queue-type depend on
# the queue: see _option_for).
_OPTION_OF_ARGUMENT = {
    "auto_delete": "amqp_auto_delete",
    "x-delivery-limit": "rabbit_quorum_delivery_limit",
    "x-max-in-memory-length": "rabbit_quorum_max_memory_length",
    "x-max-in-memory-bytes": "rabbit_quorum_max_memory_bytes",
    "x-expires": "rabbit_transient_queues_ttl",
    "x-max-age": "rabbit_transient_queues_ttl",
    "x-ha-policy": "rabbit_ha_queues",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange to declare: name, AMQP type and flags."""

    name: str
    type: str
    durable: bool
    auto_delete: bool
    transient: bool = False  # the fanout exchange: durable by rabbit_transient_quorum_queue


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """A queue to declare, and the exchange and routing key it is bound with (None: not bound).

    ``transient``: a reply or fanout queue, shaped by ``rabbit_transient_quorum_queue``.
    """

    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, FieldValue]
    exchange: Exchange | None = None
    routing_key: str = ""
    transient: bool = False

    @property
    def stream(self) -> bool:
        """Whether this is a stream queue (``rabbit_stream_fanout``), read from an offset."""
        return self.arguments.get("x-queue-type") == "stream"


Entity = Exchange | Queue


def _option_for(argument: str, entity: Entity) -> str | None:
    """Return the oslo option that decides ``argument`` of ``entity`` (None: no option does)."""
    if argument in {"durable", "x-queue-type"}:
        if isinstance(entity, Queue) and entity.stream:
            return "rabbit_stream_fanout"
        if entity.transient:
            return "rabbit_transient_quorum_queue"
        if argument == "durable":
            return "amqp_durable_queues (or rabbit_quorum_queue)"
        return "rabbit_quorum_queue"
    return _OPTION_OF_ARGUMENT.get(argument)


def _queue_arguments(rabbit: RabbitSettings, *, quorum: bool, ttl: int) -> dict[str, FieldValue]:
    """Return a classic or quorum queue's arguments under ``rabbit``, as oslo's."""
    arguments: dict[str, FieldValue] = {}
    if rabbit.ha_queues:
        arguments["x-ha-policy"] = "all"
    if quorum:
        arguments["x-queue-type"] = "quorum"
        limits = {
            "x-delivery-limit": rabbit.quorum_delivery_limit,
            "x-max-in-memory-length": rabbit.quorum_max_memory_length,
            "x-max-in-memory-bytes": rabbit.quorum_max_memory_bytes,
        }
        arguments.update((name, limit) for name, limit in limits.items() if limit)
    if ttl:
        arguments["x-expires"] = ttl * 1000
    return arguments


class Topology:
    """oslo.messaging's names and flags under one transport's settings."""

    def __init__(self, settings: Settings) -> None:
        rabbit = settings.rabbit
        self.control_exchange = settings.control_exchange
        # oslo: self.durable = amqp_durable_queues or rabbit_quorum_queue.
        self.durable = rabbit.durable_queues or rabbit.quorum_queue
        self.auto_delete = rabbit.auto_delete
        self.topic_arguments = _queue_arguments(rabbit, quorum=rabbit.quorum_queue, ttl=0)
        ttl = rabbit.transient_queues_ttl
        # Reply and per-listener fanout queues, and the fanout exchange.
        self.transient_durable = rabbit.transient_quorum_queue
        self.transient_arguments = _queue_arguments(
            rabbit, quorum=rabbit.transient_quorum_queue, ttl=ttl
        )
        # oslo replaces every other argument of a fanout stream: no HA policy, no quorum limits.
        self.stream_arguments: dict[str, FieldValue] | None = None
        if rabbit.stream_fanout:
            self.stream_arguments = {"x-queue-type": "stream"}
            if ttl:
                self.stream_arguments["x-max-age"] = f"{ttl}s"  # a string, as RabbitMQ wants

    def topic_exchange(self, target: Target) -> Exchange:
        """Return the topic exchange of ``target``: its ``exchange`` or ``control_exchange``."""
        name = target.exchange or self.control_exchange
        return Exchange(name, "topic", durable=self.durable, auto_delete=self.auto_delete)

    def fanout_exchange(self, topic: str) -> Exchange:
        """Return ``<topic>_fanout``: auto-delete, durable if ``rabbit_transient_quorum_queue``."""
        return Exchange(
            f"{topic}_fanout",
            "fanout",
            durable=self.transient_durable,
            auto_delete=True,
            transient=True,
        )

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
            self.fanout_queue(topic),
        ]

    def fanout_queue(self, topic: str) -> Queue:
        """Return a new listener's queue ``<topic>_fanout_<uuid4 hex>``, or the fanout stream."""
        if self.stream_arguments is not None:
            # One stream per topic that every listener reads: durable, never auto-deleted.
            return Queue(
                f"{topic}_fanout",
                durable=True,
                auto_delete=False,
                arguments=self.stream_arguments,
                exchange=self.fanout_exchange(topic),
                routing_key=topic,
                transient=True,
            )
        return Queue(
            f"{topic}_fanout_{new_id()}",
            durable=self.transient_durable,
            auto_delete=False,
            arguments=self.transient_arguments,
            exchange=self.fanout_exchange(topic),
            routing_key=topic,
            transient=True,
        )

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
            durable=self.transient_durable,
            auto_delete=False,
            arguments=self.transient_arguments,
            transient=True,
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

    What already exists with other flags or arguments is joined, not fought (see the module
    docstring): a PRECONDITION_FAILED closes the channel, and the entity is declared again on a
    fresh one, non-durable (oslo's fallback) or passively. Any other channel error propagates,
    and so does an exchange that exists with another type.
    """
    declaring = _Declaring(connection, await connection.channel(publisher_confirms=False))
    try:
        for entity in entities:
            if isinstance(entity, Exchange):
                await declaring.exchange(entity)
            else:
                await declaring.queue(entity)
    finally:
        if not declaring.channel.is_closed:
            await declaring.channel.close()


class _Declaring:
    """One :func:`declare`: its channel (opened again after each refusal) and what it did."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.declared: set[str] = set()  # exchanges
        self.fell_back: set[str] = set()  # exchanges declared non-durable after a mismatch

    async def exchange(self, exchange: Exchange) -> None:
        if exchange.name in self.declared:
            return
        try:
            await self._declare_exchange(exchange)
        except ChannelPreconditionFailed as exc:
            await self._reopen()
            if not (exchange.durable and _differs_in(exc, "durable")):
                await self._join(exchange, exc)
            else:
                _warn_fallback(exchange, exc)
                try:
                    await self._declare_exchange(dataclasses.replace(exchange, durable=False))
                except ChannelPreconditionFailed as again:
                    await self._reopen()
                    await self._join(exchange, again)
                else:
                    self.fell_back.add(exchange.name)
        self.declared.add(exchange.name)

    async def queue(self, queue: Queue) -> None:
        if queue.exchange is not None:
            await self.exchange(queue.exchange)
            # oslo's fallback makes a queue non-durable with its exchange; a quorum queue or a
            # stream cannot be, and is declared as configured.
            if queue.exchange.name in self.fell_back and _classic(queue):
                queue = dataclasses.replace(queue, durable=False)
        try:
            await self._declare_queue(queue)
        except ChannelPreconditionFailed as exc:
            await self._reopen()
            if not (queue.durable and _classic(queue) and _differs_in(exc, "durable")):
                await self._join(queue, exc)
            else:
                _warn_fallback(queue, exc)
                try:
                    await self._declare_queue(dataclasses.replace(queue, durable=False))
                except ChannelPreconditionFailed as again:
                    await self._reopen()
                    await self._join(queue, again)
        if queue.exchange is not None:
            await self.channel.queue_bind(
                queue.name, queue.exchange.name, routing_key=queue.routing_key
            )

    async def _declare_exchange(self, exchange: Exchange) -> None:
        await self.channel.exchange_declare(
            exchange.name,
            exchange_type=exchange.type,
            durable=exchange.durable,
            auto_delete=exchange.auto_delete,
        )

    async def _declare_queue(self, queue: Queue) -> None:
        await self.channel.queue_declare(
            queue.name,
            durable=queue.durable,
            auto_delete=queue.auto_delete,
            arguments=dict(queue.arguments),
        )

    async def _join(self, entity: Entity, exc: ChannelPreconditionFailed) -> None:
        """Declare ``entity`` passively: use it as it exists, after telling which option differs."""
        match = _INEQUIVALENT.search(str(exc))
        if match is None or (isinstance(entity, Exchange) and match["arg"] == "type"):
            raise exc
        kind = "exchange" if isinstance(entity, Exchange) else "queue"
        option = _option_for(match["arg"], entity)
        LOG.warning(
            "%s %r exists on the broker with another %s (current is %s) than steward's settings "
            "declare; using it as it is. To declare what the deployment declares, set %s as the "
            "services that declared it do",
            kind.capitalize(),
            entity.name,
            match["arg"],
            match["current"],
            f"the oslo option {option}" if option else "the same options",
        )
        if isinstance(entity, Exchange):
            await self.channel.exchange_declare(entity.name, passive=True)
        else:
            await self.channel.queue_declare(entity.name, passive=True)

    async def _reopen(self) -> None:
        self.channel = await self.connection.channel(publisher_confirms=False)


def _classic(queue: Queue) -> bool:
    return "x-queue-type" not in queue.arguments


def _differs_in(exc: ChannelPreconditionFailed, argument: str) -> bool:
    match = _INEQUIVALENT.search(str(exc))
    return match is not None and match["arg"] == argument


def _warn_fallback(entity: Entity, exc: ChannelPreconditionFailed) -> None:
    LOG.warning(
        "%s could not be declared as configured (%s); declaring it non-durable, "
        "as oslo.messaging does (%s decides it)",
        entity.name,
        exc,
        _option_for("durable", entity),
    )
