"""amqp:// — RabbitMQ, wire-compatible with oslo.messaging's rabbit driver.

A steward service on this transport calls, and is called by, unmodified oslo.messaging services
on the same broker (``shared/reference/oslo-wire.md``). The bodies are :mod:`steward.rpc.wire`'s,
which this module never decodes; what it owns is everything around them, each detail as oslo:

* names, types and flags of exchanges and queues, and message properties: see
  :mod:`~steward.rpc.transports._rabbit_topology` (topic exchange ``control_exchange``, queues
  ``<topic>`` and ``<topic>.<server>``, ``<topic>_fanout`` and a queue per listener, reply queue
  ``reply_<uuid4 hex>`` reached through the default exchange; ``application/json``, persistent,
  ``expiration`` on calls only);
* a call's request goes to the topic exchange without a publisher confirm (its reply confirms
  it); a cast waits for the broker's confirm; a reply goes to the default exchange with
  ``mandatory``, and one the broker returns (its caller is gone) is logged and dropped;
* URLs as oslo's ``transport_url``: several hosts ``amqp://u:p@h1,u:p@h2/vhost`` tried in order,
  ``amqps://`` for TLS, the vhost from the path, AMQP heartbeat ``heartbeat_timeout_threshold``;
  a lost connection is made again with oslo's backoff, and every consumer declares its queues
  and consumes again (see :mod:`~steward.rpc.transports._rabbit_connection`).

Where steward differs, on purpose: a server acknowledges a request after handling it, not on
arrival (``basic.qos`` bounds what it holds: ``prefetch`` per consumer, or
``rabbit_qos_prefetch_count`` when set), so a connection or server lost mid-request makes the
broker deliver the request again (``redelivered``) instead of losing it.

A fanout stream (``rabbit_stream_fanout``: one stream queue ``<topic>_fanout`` that every server
of the topic reads) is consumed as oslo consumes it, with ``basic.qos`` (a stream requires it) and
an ``x-stream-offset``; two things differ. A listener starts at ``next``, the messages sent after
it began to consume (oslo starts at ``last``, which hands a starting server the fanout casts in
the stream's last chunk, sent before it started), and after a lost connection it goes on from
the offset after the last message its handler was given (oslo: after the last delivered, so
what was delivered on the lost channel but not yet handled is lost). A stream cannot requeue or
reject a message (RabbitMQ closes the connection on a ``basic.nack``): both are acknowledgements
there, and the message stays in the stream for the other listeners.

The transport is three modules, each one concern: this one (the Transport protocol: publishing,
consumers, settling), ``_rabbit_topology`` (oslo's names and flags) and ``_rabbit_connection``
(reconnection, and the aiormq internals the publishers rely on).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Callable, Coroutine, Sequence

import aiormq
from pamqp.commands import Basic

from steward import config, redact
from steward._aio import TaskGroup
from steward.errors import InvalidTransportURL, MessagingError
from steward.rpc import wire
from steward.rpc.transports._rabbit_connection import (
    CHANNEL_ERRORS,
    Connector,
    Publisher,
    broker_urls,
)
from steward.rpc.transports._rabbit_topology import Queue, Topology, declare, properties
from steward.rpc.transports.base import BaseIncoming, BaseListener, BaseTransport

if typing.TYPE_CHECKING:
    from aiormq.abc import DeliveredMessage

    from steward.rpc.target import Target
    from steward.rpc.transports.base import (
        CrashHandler,
        IncomingMessage,
        Listener,
        MessageHandler,
        ReplyHandler,
        ReplyListener,
        Settlement,
        Transport,
        UndeliverableHandler,
    )

__all__ = ["RabbitTransport"]

LOG = logging.getLogger(__name__)

_NO_EXPIRATION = properties()

# Where a listener starts reading a fanout stream: what is published after it consumes.
_STREAM_START = "next"


class RabbitTransport(BaseTransport):
    """The amqp:// (``amqps://``, ``rabbit://``) transport. See the module docstring.

    ``settings`` (default: the defaults and the environment; :func:`~steward.rpc.get_transport`
    passes the process's) gives the oslo options that shape the topology and the connection;
    they are read once, here. :attr:`connector` keeps the connection, in the transport's task
    group; its ``name`` is the AMQP ``connection_name`` the broker shows.
    """

    def __init__(self, url: str, *, settings: config.Settings | None = None) -> None:
        super().__init__(url, settings if settings is not None else config.load_settings())
        settings = self.settings
        try:
            urls = broker_urls(url, heartbeat=settings.rabbit.heartbeat_timeout_threshold)
        except ValueError as exc:
            raise InvalidTransportURL(
                f"cannot read {config.mask_url(url)!r}: {redact.mask_detail(str(exc), url)}"
            ) from exc
        self._prefetch_count = settings.rabbit.qos_prefetch_count
        self._topology = Topology(settings)
        self.connector = Connector(
            urls,
            tasks=self.tasks,
            retry_interval=settings.rabbit.retry_interval,
            retry_backoff=settings.rabbit.retry_backoff,
            maximum=settings.rabbit.interval_max,
        )
        # One channel per direction: casts wait for confirms, calls and replies do not.
        self._confirmed = Publisher(self.connector, confirm=True)
        self._unconfirmed = Publisher(self.connector, confirm=False, on_return=self._returned)
        self._reply_listener: _ReplyListener | None = None
        self._undeliverable: UndeliverableHandler | None = None
        self._listeners: set[_Listener] = set()

    def live_listeners(self) -> list[_Listener]:
        """Return the listeners still consuming."""
        return list(self._listeners)

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        """Publish to the target's exchange and routing key (declaring the exchange once).

        With ``confirm`` it returns when the broker confirmed the message. A request is published
        ``mandatory`` (a fanout is not): one that no queue is bound for comes back from the broker
        (``NO_ROUTE``), and raises :class:`MessageUndeliverable` here (confirmed: a cast) or is
        reported to the reply listener's ``undeliverable`` (a call: its ``_msg_id`` is read from
        the returned body, so ``call_id`` needs no AMQP property oslo would not send).
        """
        self.check_body(body)
        if not target.topic:
            raise ValueError(f"a message goes to a topic, got {target}")
        exchange, routing_key = self._topology.destination(target)
        publish = properties(expiration) if expiration is not None else _NO_EXPIRATION
        publisher = self._confirmed if confirm else self._unconfirmed
        await publisher.publish(exchange, routing_key, body, publish, mandatory=not target.fanout)

    async def send_reply(self, reply_to: str, body: bytes) -> None:
        """Publish a reply to the default exchange, routing key ``reply_to``, mandatory."""
        self.check_body(body)
        await self._unconfirmed.publish(None, reply_to, body, _NO_EXPIRATION, mandatory=True)

    async def listen(
        self,
        target: Target,
        handler: MessageHandler,
        *,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> _Listener:
        """Declare and consume the target's topic, server and fanout queues on one channel."""
        if not target.topic or not target.server:
            raise ValueError(f"a server listens on a topic and a server name, got {target}")
        self.check_open()
        queues = self._topology.server_queues(target)
        listener = _Listener(self, queues, handler, self._prefetch_count or prefetch, on_crash)
        await listener.start()
        self._listeners.add(listener)
        return listener

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        """Publish to ``<topic>.<priority>``, confirmed, declaring that queue first (as oslo)."""
        self.check_body(body)
        if not target.topic:
            raise ValueError(f"a notification goes to a topic, got {target}")
        queue = self._topology.notification_queue(target, priority)
        await self._confirmed.publish(queue, queue.routing_key, body, _NO_EXPIRATION)

    async def listen_notifications(
        self,
        targets: Sequence[tuple[Target, str]],
        handler: MessageHandler,
        *,
        pool: str | None = None,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> _Listener:
        """Consume ``<topic>.<priority>`` queues, or one queue ``pool`` bound to those keys."""
        self.check_open()
        if not targets or not all(target.topic for target, _ in targets):
            raise ValueError(f"notifications are consumed from topics, got {targets}")
        queues = [self._topology.notification_queue(t, p, pool) for t, p in targets]
        listener = _Listener(self, queues, handler, self._prefetch_count or prefetch, on_crash)
        await listener.start()
        self._listeners.add(listener)
        return listener

    async def listen_replies(
        self, handler: ReplyHandler, *, undeliverable: UndeliverableHandler | None = None
    ) -> _ReplyListener:
        """Declare and consume a reply queue of this transport, in its task group.

        Called once, by the transport's :attr:`replies`: returned calls are reported to the
        ``undeliverable`` of the last reply listener.
        """
        self.check_open()

        async def on_reply(message: DeliveredMessage) -> None:
            handler(message.body)

        consumption = _Consumption(
            self, self.tasks, [self._topology.reply_queue()], on_reply, prefetch=0, no_ack=True
        )
        await consumption.start()
        self._undeliverable = undeliverable
        self._reply_listener = _ReplyListener(consumption)
        return self._reply_listener

    def _returned(self, frame: Basic.Return, body: bytes) -> None:
        """Handle a mandatory message returned on the unconfirmed channel: a reply or a call."""
        if not frame.exchange:
            # oslo retries such a reply for 60 s, then drops it; its caller has gone (or timed
            # out).
            LOG.warning(
                "Reply to %r could not be delivered (%s %s): its caller is gone; dropped",
                redact.shorten(frame.routing_key or ""),
                frame.reply_code,
                frame.reply_text,
            )
            return
        address = wire.salvage_reply_address(body)
        if address is None or self._undeliverable is None:
            LOG.warning(
                "A message to %r (%r) reached no queue (%s %s); dropped",
                redact.shorten(frame.routing_key or ""),
                frame.exchange,
                frame.reply_code,
                frame.reply_text,
            )
            return
        self._undeliverable(address[0])

    async def _aclose(self) -> None:
        """Stop the consumers left, close the channels and the connection."""
        for listener in list(self._listeners):
            await listener.aclose()
        if self._reply_listener is not None:
            await self._reply_listener.aclose()
        await self._confirmed.close()
        await self._unconfirmed.close()
        await self.connector.close()

    def __repr__(self) -> str:
        return f"RabbitTransport({self.url!r})"


class _ReplyListener:
    """The transport's reply queue and its consumer; aclose() stops consuming it."""

    def __init__(self, consumption: _Consumption) -> None:
        self._consumption = consumption
        self.address = consumption.queues[0].name

    async def aclose(self) -> None:
        channel = await self._consumption.cancel()
        if channel is not None and not channel.is_closed:
            await channel.close()


class _Consumption:
    """Consumes ``queues`` on a channel of its own; declares and consumes again after a loss.

    Its task runs in ``tasks``, the group of its owner (a listener, or the transport for replies).
    """

    def __init__(
        self,
        transport: RabbitTransport,
        tasks: TaskGroup,
        queues: Sequence[Queue],
        on_message: Callable[[DeliveredMessage], Coroutine[None, None, None]],
        *,
        prefetch: int,
        no_ack: bool,
    ) -> None:
        self.queues = list(queues)
        self.channel: aiormq.Channel | None = None
        self._transport = transport
        self._tasks = tasks
        self._on_message = on_message
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._tags: list[str] = []
        # Streams: the offset each is read from next, and the consumer tag of each (this channel).
        self._offsets: dict[str, int | str] = {q.name: _STREAM_START for q in queues if q.stream}
        self._streams: dict[str, str] = {}
        self._broker_cancelled: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Consume; raises what made the first declaration or consume fail."""
        ready = asyncio.get_running_loop().create_future()
        self._task = self._tasks.create_task(self._keep(ready), name=f"consume {self._names()}")
        try:
            await ready
        except BaseException:
            await self.cancel()
            raise

    async def _keep(self, ready: asyncio.Future[None]) -> None:
        try:
            await self._keep_consuming(ready)
        except Exception as exc:
            if ready.done():
                raise  # the task group reports it to the owner (server, or transport)
            ready.set_exception(exc)

    async def _keep_consuming(self, ready: asyncio.Future[None]) -> None:
        attempt = 0
        while True:
            try:
                channel = await self._consume()
            except MessagingError:  # the transport is closed, or its connection cannot be kept
                if ready.done() and self._transport.closed:
                    return
                raise  # after start: a crash of the consumer, which its owner is told of
            except CHANNEL_ERRORS as exc:
                if not ready.done() and self._transport.connector.connected:
                    ready.set_exception(exc)  # e.g. a queue declared elsewhere with other flags
                    return
                delay = self._transport.connector.retry_delay(attempt)
                attempt += 1
                LOG.warning("Cannot consume %s (%r); again in %g s", self._names(), exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if not ready.done():
                ready.set_result(None)
            closing, cancelled = channel.closing, self._broker_cancelled
            assert cancelled is not None  # noqa: S101 - set by _consume
            try:
                await asyncio.wait([closing, cancelled], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
            if not channel.is_closed:
                LOG.warning("The broker cancelled a consumer of %s; consuming again", self._names())
                await channel.close()

    async def _consume(self) -> aiormq.Channel:
        connection = await self._transport.connector.connection()
        await declare(connection, self.queues)
        channel = typing.cast("aiormq.Channel", await connection.channel(publisher_confirms=False))
        # A stream refuses a consumer without a prefetch count (PRECONDITION_FAILED).
        prefetch = max(self._prefetch, 1) if self._offsets else self._prefetch
        try:
            if prefetch > 0:
                await channel.basic_qos(prefetch_count=prefetch)
            self._broker_cancelled = asyncio.get_running_loop().create_future()
            channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
            tags, streams = [], {}
            for name in dict.fromkeys(queue.name for queue in self.queues):  # a pool: once
                offset = self._offsets.get(name)
                ok = await channel.basic_consume(
                    name,
                    self._on_message,
                    no_ack=self._no_ack,
                    arguments=None if offset is None else {"x-stream-offset": offset},
                )
                tags.append(str(ok.consumer_tag))
                if offset is not None:
                    streams[str(ok.consumer_tag)] = name
        except BaseException:
            if not channel.is_closed:
                await channel.close()
            raise
        self.channel, self._tags, self._streams = channel, tags, streams
        return channel

    def _on_broker_cancel(self, frame: Basic.Cancel) -> None:
        # The queue was deleted under us: declare it again rather than go deaf. A stream made
        # anew has offsets of its own: read it from the start point again.
        stream = self._streams.get(str(frame.consumer_tag))
        if stream is not None:
            self._offsets[stream] = _STREAM_START
        if self._broker_cancelled is not None and not self._broker_cancelled.done():
            self._broker_cancelled.set_result(None)

    def from_stream(self, message: DeliveredMessage) -> bool:
        """Return whether ``message`` was read from a stream (which cannot requeue it)."""
        delivery = message.delivery
        return isinstance(delivery, Basic.Deliver) and str(delivery.consumer_tag) in self._streams

    def handed(self, message: DeliveredMessage) -> None:
        """Note that ``message`` reached the handler: a stream is read on after it if lost."""
        delivery = message.delivery
        if not isinstance(delivery, Basic.Deliver):
            return
        stream = self._streams.get(str(delivery.consumer_tag))
        headers = message.header.properties.headers or {}
        offset = headers.get("x-stream-offset")  # set by the broker on each stream delivery
        if stream is not None and isinstance(offset, int):
            self._offsets[stream] = offset + 1

    def _names(self) -> str:
        return ", ".join(queue.name for queue in self.queues)

    async def cancel(self) -> aiormq.Channel | None:
        """Stop consuming; return the channel, left open to settle what was delivered."""
        task, self._task = self._task, None
        if task is not None:  # a crash of it was reported by its group
            task.cancel()
            await asyncio.wait([task])
        channel = self.channel
        if channel is not None and not channel.is_closed:
            for tag in self._tags:
                try:
                    await channel.basic_cancel(tag)
                except CHANNEL_ERRORS:
                    break
        return channel


class _Incoming(BaseIncoming):
    """A delivered message, settled on the channel it came on (a no-op once that is gone)."""

    __slots__ = ("_listener", "_message")

    def __init__(self, listener: _Listener, message: DeliveredMessage) -> None:
        super().__init__()
        self._listener = listener
        self._message = message

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def redelivered(self) -> bool:
        delivery = self._message.delivery
        return isinstance(delivery, Basic.Deliver) and bool(delivery.redelivered)

    async def _settle(self, how: Settlement) -> None:
        try:
            await self._listener.settle(self._message, how)
        finally:
            await self._listener.settled(self)


async def _settle(message: DeliveredMessage, how: Settlement) -> None:
    """Settle ``message`` on its channel (a message from a stream is only ever acknowledged)."""
    channel, tag = message.channel, message.delivery_tag
    if channel.is_closed or tag is None:
        return  # the broker delivers it again, to whoever consumes the queue next
    try:
        if how == "ack":
            await channel.basic_ack(tag, wait=False)
        elif how == "requeue":
            await channel.basic_nack(tag, requeue=True, wait=False)
        else:
            await channel.basic_reject(tag, requeue=False, wait=False)
    except CHANNEL_ERRORS as exc:
        LOG.debug("Could not %s message %s (%r); the broker delivers it again", how, tag, exc)


class _Listener(BaseListener):
    """A target's consumers, feeding one handler one message at a time; tasks in its group."""

    def __init__(
        self,
        transport: RabbitTransport,
        queues: Sequence[Queue],
        handler: MessageHandler,
        prefetch: int,
        on_crash: CrashHandler | None,
    ) -> None:
        super().__init__(f"listener of {queues[0].name}", on_crash)
        self._transport = transport
        self._handler = handler
        self._inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._consumption = _Consumption(
            transport, self.tasks, queues, self._deliver, prefetch=prefetch, no_ack=False
        )
        self._unsettled: set[_Incoming] = set()
        self._pump: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        try:
            await self._consumption.start()
        except BaseException:
            await self.tasks.aclose()
            raise
        self._pump = self.tasks.create_task(self._run(), name="deliver")

    async def _deliver(self, message: DeliveredMessage) -> None:
        # Called by aiormq in a task per message; the queue keeps them in order for _run.
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            if message.channel.is_closed:
                continue  # delivered on a channel since lost: the broker delivers it again
            self._consumption.handed(message)
            incoming = _Incoming(self, message)
            self._unsettled.add(incoming)
            try:
                await self._handler(incoming)
            except Exception:
                LOG.exception(
                    "Handler failed on a message for %s; requeueing it", message.routing_key
                )
                await incoming.requeue()

    async def aclose(self) -> None:
        """Stop consuming and give back what the handler never saw; the rest stays to settle."""
        if self._stopped:
            return
        self._stopped = True
        self._transport._listeners.discard(self)  # noqa: SLF001 - its owner
        await self._consumption.cancel()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            await asyncio.wait([pump])
        while not self._inbox.empty():
            await self.settle(self._inbox.get_nowait(), "requeue")
        await self.tasks.aclose()
        await self._close_when_settled()

    async def settle(self, message: DeliveredMessage, how: Settlement) -> None:
        """Settle ``message``; a stream's is acknowledged whatever ``how`` (it cannot requeue)."""
        await _settle(message, "ack" if self._consumption.from_stream(message) else how)

    async def settled(self, incoming: _Incoming) -> None:
        self._unsettled.discard(incoming)
        await self._close_when_settled()

    async def _close_when_settled(self) -> None:
        channel = self._consumption.channel
        if self._stopped and not self._unsettled and channel is not None and not channel.is_closed:
            await channel.close()


if typing.TYPE_CHECKING:
    _transport: Transport = RabbitTransport("amqp://")
    _listener: Listener = typing.cast("_Listener", None)
    _reply_listener: ReplyListener = typing.cast("_ReplyListener", None)
    _incoming: IncomingMessage = typing.cast("_Incoming", None)
