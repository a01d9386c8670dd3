"""memory:// — the in-process transport, steward's embedded default.

A real transport, not a test fake: it moves the same encoded bodies as the broker transports,
through queues that behave like RabbitMQ's — a topic queue shared by the topic's servers (each
message to one of them, in turn), a ``topic.server`` queue per server, a fanout queue per
listener, one reply address per transport; acknowledgement after handling, requeue of what a
stopped listener leaves unsettled, a ``prefetch`` bound per listener, calls' messages expiring
unconsumed after their timeout. A request for a topic (or server) no listener ever consumed has
no queue: ``send`` raises :class:`~steward.errors.MessageUndeliverable`, as RabbitMQ returns a
mandatory message with ``NO_ROUTE``; a fanout to no listener is dropped.

Everything lives in a broker per event loop and URL: ``memory://`` is one broker,
``memory://other`` another, so independent systems can share a process.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import typing
import weakref

from steward import config
from steward.errors import MessageUndeliverable
from steward.redact import shorten
from steward.rpc.target import Target
from steward.rpc.transports.base import (
    BaseIncoming,
    BaseListener,
    BaseTransport,
    CrashHandler,
    IncomingMessage,
    MessageHandler,
    ReplyHandler,
    Settlement,
    UndeliverableHandler,
)
from steward.rpc.wire import new_id

__all__ = ["MemoryTransport"]

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Message:
    body: bytes
    expires: float | None  # loop time after which nobody may take it
    redelivered: bool = False


class _Queue:
    """A named queue: messages wait here until one of its consumers takes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: collections.deque[_Message] = collections.deque()
        self.consumers: list[_Consumer] = []
        self._turn = itertools.count()

    def put(self, message: _Message, *, front: bool = False) -> None:
        if front:
            self.messages.appendleft(message)
        else:
            self.messages.append(message)
        self.wake()

    def wake(self) -> None:
        """Offer waiting messages to consumers with room, round robin."""
        while self.messages and self.consumers:
            ready = [consumer for consumer in self.consumers if consumer.has_room()]
            if not ready:
                return
            consumer = ready[next(self._turn) % len(ready)]
            consumer.offer(self.messages.popleft())


class _Broker:
    """The queues and reply addresses of one memory:// URL on one loop."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.fanout: dict[str, set[_Queue]] = collections.defaultdict(set)
        self.reply_handlers: dict[str, ReplyHandler] = {}
        # Listener pools: routing key -> pool name -> the pool's own queue.
        self.pools: dict[str, dict[str, _Queue]] = collections.defaultdict(dict)

    def queue(self, name: str) -> _Queue:
        if name not in self.queues:
            self.queues[name] = _Queue(name)
        return self.queues[name]


_brokers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Broker]] = (
    weakref.WeakKeyDictionary()
)


def _broker_for(name: str) -> _Broker:
    brokers = _brokers.setdefault(asyncio.get_running_loop(), {})
    if name not in brokers:
        brokers[name] = _Broker()
    return brokers[name]


class _Incoming(BaseIncoming):
    """A message delivered to a consumer, to settle once."""

    __slots__ = ("_consumer", "_message")

    def __init__(self, consumer: _Consumer, message: _Message) -> None:
        super().__init__()
        self._consumer = consumer
        self._message = message

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def redelivered(self) -> bool:
        return self._message.redelivered

    async def _settle(self, how: Settlement) -> None:
        self._consumer.settled(self)
        if how == "requeue":
            self._message.redelivered = True
            self._consumer.queue.put(self._message, front=True)


class _Consumer:
    """One listener's consumption of one queue: a task feeding its handler."""

    def __init__(self, queue: _Queue, handler: MessageHandler, prefetch: int) -> None:
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self.unsettled: set[_Incoming] = set()

    def has_room(self) -> bool:
        held = len(self.unsettled) + self.inbox.qsize()
        return self.prefetch <= 0 or held < self.prefetch

    def offer(self, message: _Message) -> None:
        self.inbox.put_nowait(message)

    def settled(self, incoming: _Incoming) -> None:
        self.unsettled.discard(incoming)
        self.queue.wake()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self.inbox.get()
            if message.expires is not None and loop.time() > message.expires:
                LOG.debug("Dropping a message that expired unconsumed in %s", self.queue.name)
                self.queue.wake()
                continue
            incoming = _Incoming(self, message)
            self.unsettled.add(incoming)
            try:
                await self.handler(incoming)
            except Exception:
                LOG.exception("Handler failed on a message from %s; requeueing it", self.queue.name)
                await incoming.requeue()

    def detach(self) -> None:
        """Leave the queue; give back what was offered but not yet delivered."""
        self.queue.consumers.remove(self)
        while not self.inbox.empty():
            self.queue.put(self.inbox.get_nowait(), front=True)


class _Listener(BaseListener):
    """The consumers of one target, each a task of the listener's group.

    aclose() ends them and gives their backlog back to the queues.
    """

    def __init__(
        self,
        transport: MemoryTransport,
        broker: _Broker,
        consumers: list[_Consumer],
        fanout: tuple[str, _Queue] | None,
        on_crash: CrashHandler | None,
    ) -> None:
        super().__init__(f"listener of {consumers[0].queue.name}", on_crash)
        self._transport = transport
        self._broker = broker
        self._consumers = consumers
        self._fanout = fanout
        self._stopped = False
        for consumer in consumers:
            self.tasks.create_task(consumer.run(), name=f"consume {consumer.queue.name}")
            consumer.queue.consumers.append(consumer)
            consumer.queue.wake()
        transport.listeners.add(self)

    async def aclose(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._transport.listeners.discard(self)
        if self._fanout is not None:
            topic, fanout_queue = self._fanout
            self._broker.fanout[topic].discard(fanout_queue)
        try:
            await self.tasks.aclose()
        finally:
            for consumer in self._consumers:
                consumer.detach()


class _ReplyListener:
    """This transport's reply address in its broker; aclose() takes it out."""

    def __init__(self, broker: _Broker, address: str) -> None:
        self._broker = broker
        self.address = address

    async def aclose(self) -> None:
        self._broker.reply_handlers.pop(self.address, None)


class MemoryTransport(BaseTransport):
    """The memory:// transport. See the module docstring.

    Its URL is masked in :attr:`url` as every transport's (``memory://tok@name`` shows
    ``memory://***@name``).
    """

    def __init__(self, url: str = "memory://", *, settings: config.Settings | None = None) -> None:
        super().__init__(url, settings if settings is not None else config.load_settings())
        self._name = url.partition("://")[2].strip("/")
        self.listeners: set[_Listener] = set()

    def _broker(self) -> _Broker:
        self.check_open()
        return _broker_for(self._name)

    def live_listeners(self) -> list[_Listener]:
        """Return the listeners still consuming."""
        return list(self.listeners)

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        """Put ``body`` in the target's queue(s).

        Raises :class:`MessageUndeliverable` if no queue exists for a (non-fanout) target.
        """
        self.check_body(body)
        broker = self._broker()
        loop_time = asyncio.get_running_loop().time()
        expires = loop_time + expiration if expiration is not None else None
        if target.fanout:
            for fanout_queue in list(broker.fanout.get(target.topic or "", ())):
                fanout_queue.put(_Message(body, expires))
            return
        key = f"{target.topic}.{target.server}" if target.server else str(target.topic)
        queue = broker.queues.get(key)
        if queue is None:
            raise MessageUndeliverable(f"{key!r} on {self.url}")
        queue.put(_Message(body, expires))

    async def send_reply(self, reply_to: str, body: bytes) -> None:
        """Hand ``body`` to the transport that owns ``reply_to``; drop it if that one is gone."""
        self.check_body(body)
        handler = self._broker().reply_handlers.get(reply_to)
        if handler is None:
            LOG.warning("Reply address %r is gone; dropping a reply", shorten(reply_to))
            return
        handler(body)

    async def listen(
        self,
        target: Target,
        handler: MessageHandler,
        *,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> _Listener:
        """Consume the target's topic queue, its server queue and a fanout queue of its own."""
        if not target.topic or not target.server:
            raise ValueError(f"a server listens on a topic and a server name, got {target}")
        broker = self._broker()
        fanout_queue = _Queue(f"{target.topic}_fanout_{new_id()}")
        broker.fanout[target.topic].add(fanout_queue)
        queues = [
            broker.queue(target.topic),
            broker.queue(f"{target.topic}.{target.server}"),
            fanout_queue,
        ]
        consumers = [_Consumer(queue, handler, prefetch) for queue in queues]
        return _Listener(self, broker, consumers, (target.topic, fanout_queue), on_crash)

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        """Put ``body`` in queue ``<topic>.<priority>`` (created if missing) and its pools."""
        self.check_body(body)
        broker = self._broker()
        key = f"{target.topic}.{priority}"
        broker.queue(key).put(_Message(body, None))
        for pool_queue in broker.pools.get(key, {}).values():
            pool_queue.put(_Message(body, None))

    async def listen_notifications(
        self,
        targets: typing.Sequence[tuple[Target, str]],
        handler: MessageHandler,
        *,
        pool: str | None = None,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> _Listener:
        """Consume ``<topic>.<priority>`` queues (or, with ``pool``, that pool's own queues)."""
        broker = self._broker()
        consumers = []
        for target, priority in targets:
            key = f"{target.topic}.{priority}"
            if pool is None:
                queue = broker.queue(key)
            else:
                queue = broker.pools[key].setdefault(pool, _Queue(f"{pool}:{key}"))
            consumers.append(_Consumer(queue, handler, prefetch))
        return _Listener(self, broker, consumers, None, on_crash)

    async def listen_replies(
        self, handler: ReplyHandler, *, undeliverable: UndeliverableHandler | None = None
    ) -> _ReplyListener:
        """Register ``handler`` under a new reply address of this broker.

        ``undeliverable`` is never called: :meth:`send` raises at once when no queue exists.
        """
        broker = self._broker()
        address = f"reply_{new_id()}"
        broker.reply_handlers[address] = handler
        return _ReplyListener(broker, address)

    async def _aclose(self) -> None:
        """Stop the listeners left; later use raises :class:`TransportClosed`."""
        for listener in list(self.listeners):
            await listener.aclose()

    def __repr__(self) -> str:
        return f"MemoryTransport({self.url!r})"


if typing.TYPE_CHECKING:
    from steward.rpc.transports.base import Listener, ReplyListener, Transport

    _transport: Transport = MemoryTransport()
    _listener: Listener = typing.cast("_Listener", None)
    _reply_listener: ReplyListener = typing.cast("_ReplyListener", None)
    _incoming: IncomingMessage = typing.cast("_Incoming", None)
