"""The nats transport's listeners: subscriptions and JetStream pull consumers feeding a handler.

Private to :mod:`steward.rpc.transports.nats`, split from it because consuming is its own
concern: flow control, settling and giving messages back when a listener stops.

A :class:`Listener` owns several *feeds* and one pump task that hands their messages to the
handler, one at a time. Each feed holds at most ``prefetch`` messages that are delivered and not
settled (``prefetch`` <= 0: no bound):

* :class:`CoreFeed` is a core NATS subscription (with a queue group where the topic's servers
  share the work). Core NATS pushes whatever is published, so the bound is kept here: past
  ``prefetch``, messages wait in nats-py's subscription buffer, unsent to the handler. Settling
  is local; ``requeue`` publishes the message again to its subject (another server of the group
  may take it), or, on a fanout subscription, offers it again to this listener only;
* :class:`PullFeed` is a durable JetStream pull consumer: it asks the server for no more
  messages than it has room for, so the bound is exact and the rest wait in the stream, where
  any other server of the topic may take them. ``ack``/``requeue``/``reject`` are JetStream's
  ``ack``/``nak``/``term``; while a message is unsettled, the listener tells JetStream every
  third of ``nats_ack_wait`` that it is in progress, so only a listener that died (or lost its
  connection) has its messages redelivered, ``nats_ack_wait`` seconds later.

When a listener stops, its subscriptions are drained (the server has sent all it will) and what
the handler never saw is given back: ``nak`` on JetStream, published again on core NATS.

A little over ~400 lines on purpose: the feeds and the listener share one piece of state (what
is held, settled, given back), and either half alone would reach into the other.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import typing

import orjson
from nats.errors import Error as NatsError

from steward.errors import TransportClosed
from steward.rpc.transports._nats_connection import Connection
from steward.rpc.transports.base import BaseIncoming, BaseListener

if typing.TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from steward.rpc.transports.base import (
        CrashHandler,
        IncomingMessage,
        MessageHandler,
        Settlement,
    )
    from steward.rpc.transports.base import Listener as ListenerProtocol

__all__ = ["EXPIRES_HEADER", "REDELIVERED_HEADER", "CoreFeed", "Listener", "PullFeed"]

LOG = logging.getLogger(__name__)

EXPIRES_HEADER = "Steward-Expires"
"""Wall-clock time (seconds since the epoch) after which nobody may take the message."""
REDELIVERED_HEADER = "Steward-Redelivered"
"""Set on a core NATS message published again by ``requeue``."""

# A pull request lives this long on the server; one lost with a connection is made again on
# reconnection, so this only bounds how long a listener may wait on a request nobody answers.
_PULL_EXPIRES = 10.0
_PULL_GRACE = 2.0
_CONFLICT_PAUSE = 0.5
_UNBOUNDED_BATCH = 256
_SETTLE_ERRORS = (NatsError, OSError)  # closed connection, already settled, not JetStream


class _Incoming(BaseIncoming):
    """A delivered message, to settle once."""

    __slots__ = ("_feed", "msg", "redelivered_here")

    def __init__(self, feed: CoreFeed | PullFeed, msg: Msg) -> None:
        super().__init__()
        self._feed = feed
        self.msg = msg
        self.redelivered_here = False

    @property
    def body(self) -> bytes:
        return self.msg.data

    @property
    def redelivered(self) -> bool:
        if self.redelivered_here or REDELIVERED_HEADER in (self.msg.headers or {}):
            return True
        return isinstance(self._feed, PullFeed) and self.msg.metadata.num_delivered > 1

    def expired(self) -> bool:
        expires = (self.msg.headers or {}).get(EXPIRES_HEADER)
        try:
            return expires is not None and time.time() > float(expires)
        except ValueError:
            return False  # not ours to judge: the message is handled

    async def _settle(self, how: Settlement) -> None:
        self._feed.listener.settled(self)
        await self._feed.settle(self, how)

    def offer_again(self) -> None:
        """Deliver this message again to the same listener (a requeued fanout message)."""
        self._settled = False
        self.redelivered_here = True
        self._feed.listener.offer(self)

    @property
    def pulled(self) -> bool:
        """Whether the message came from JetStream (and must be kept in progress)."""
        return isinstance(self._feed, PullFeed)


class _Feed:
    """What both kinds of feed share: the room left under ``prefetch``."""

    def __init__(self, listener: Listener, subject: str, prefetch: int) -> None:
        self.listener = listener
        self.subject = subject
        self.prefetch = prefetch
        self.held = 0  # delivered to the listener and not settled
        self.room = asyncio.Condition()

    def has_room(self) -> bool:
        return self.prefetch <= 0 or self.held < self.prefetch

    async def released(self) -> None:
        self.held -= 1
        async with self.room:
            self.room.notify_all()


class CoreFeed(_Feed):
    """A core NATS subscription to ``subject`` (in ``queue``, or alone for a fanout)."""

    def __init__(self, listener: Listener, subject: str, queue: str | None, prefetch: int) -> None:
        super().__init__(listener, subject, prefetch)
        self.queue = queue
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        client = await self.listener.connection.client()
        self._subscription = await client.subscribe(
            self.subject, queue=self.queue or "", cb=self._on_message
        )

    async def _on_message(self, msg: Msg) -> None:
        # nats-py calls this one message at a time: waiting for room here leaves the rest in its
        # buffer.
        async with self.room:
            await self.room.wait_for(lambda: self.has_room() or self.listener.stopping)
        if self.listener.stopping:
            await self._give_back(msg, redelivered=False)
            return
        self.held += 1
        self.listener.offer(_Incoming(self, msg))

    async def settle(self, incoming: _Incoming, how: str) -> None:
        if how == "requeue" and self.queue is None and not self.listener.stopping:
            incoming.offer_again()  # a fanout message: to this listener only, again
            return
        await self.released()
        if how == "requeue":
            await self._give_back(incoming.msg, redelivered=True)

    async def _give_back(self, msg: Msg, *, redelivered: bool) -> None:
        """Publish ``msg`` again for the group; a fanout message is this listener's alone."""
        if self.queue is None:
            LOG.debug("Dropping a fanout message on %s: its listener stopped", self.subject)
            return
        headers = dict(msg.headers or {})
        if redelivered:
            headers[REDELIVERED_HEADER] = "1"
        try:
            client = await self.listener.connection.client()
            await client.publish(self.subject, msg.data, headers=headers or None)
        except Exception as exc:  # noqa: BLE001 - core NATS is at-most-once: logged, not raised
            LOG.warning("Could not give a message back to %s (%r); dropped", self.subject, exc)

    async def stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            async with self.room:
                self.room.notify_all()
            await _drain(subscription, connected=self.listener.connection.connected)


class PullFeed(_Feed):
    """A durable JetStream pull consumer ``consumer`` of ``subject``."""

    def __init__(
        self, listener: Listener, subject: str, consumer: str, prefetch: int, ack_wait: float
    ) -> None:
        super().__init__(listener, subject, prefetch)
        self.consumer = consumer
        self.ack_wait = ack_wait
        self._subscription: Subscription | None = None
        self._inbox = ""
        self._answered = asyncio.Event()
        self._wanted = 0
        self._conflict = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        connection = self.listener.connection
        await connection.ensure_consumer(self.subject, self.consumer, ack_wait=self.ack_wait)
        client = await connection.client()
        self._inbox = client.new_inbox()
        self._subscription = await client.subscribe(self._inbox, cb=self._on_message)
        self._task = self.listener.tasks.create_task(self._pull(), name=f"pull {self.consumer}")

    def wake(self) -> None:
        """Ask again now (a pull request in flight was lost with the connection)."""
        self._answered.set()

    async def _pull(self) -> None:
        try:
            await self._keep_pulling()
        except TransportClosed:
            return  # the transport closed under a listener still running: nothing to pull for

    async def _keep_pulling(self) -> None:
        connection = self.listener.connection
        api = f"$JS.API.CONSUMER.MSG.NEXT.{connection.url.namespace}.{self.consumer}"
        while True:
            async with self.room:
                await self.room.wait_for(self.has_room)
            room = self.prefetch - self.held if self.prefetch > 0 else _UNBOUNDED_BATCH
            self._wanted = room
            self._answered.clear()
            self._conflict = False
            request = {"batch": room, "expires": int(_PULL_EXPIRES * 1e9)}
            try:
                client = await connection.client()
                await client.publish(api, orjson.dumps(request), reply=self._inbox)
                async with asyncio.timeout(_PULL_EXPIRES + _PULL_GRACE):
                    await self._answered.wait()
            except TimeoutError:
                # No answer at all, not even "request expired": the consumer may be gone.
                await self._recreate()
            except TransportClosed:
                raise
            except Exception as exc:  # noqa: BLE001 - kept consuming through broker trouble
                LOG.warning("Pulling from %s failed (%r); trying again", self.consumer, exc)
                await connection.wait_connected()
            if self._conflict:  # 409: e.g. a leadership change; do not spin on it
                await asyncio.sleep(_CONFLICT_PAUSE)

    async def _recreate(self) -> None:
        try:
            await self.listener.connection.ensure_consumer(
                self.subject, self.consumer, ack_wait=self.ack_wait
            )
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            LOG.warning("Cannot make sure consumer %s exists (%r)", self.consumer, exc)

    async def _on_message(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status is not None and not msg.data:
            if status != "100":  # 100: idle heartbeat; 404/408/409: the request is over
                self._conflict = status == "409"
                self._answered.set()
            return
        if self.listener.stopping:
            await self._settle_msg(msg, "requeue")
            return
        self.held += 1
        self._wanted -= 1
        if self._wanted <= 0:
            self._answered.set()
        self.listener.offer(_Incoming(self, msg))

    async def settle(self, incoming: _Incoming, how: str) -> None:
        await self.released()
        await self._settle_msg(incoming.msg, how)

    async def _settle_msg(self, msg: Msg, how: str) -> None:
        try:
            if how == "ack":
                await msg.ack()
            elif how == "requeue":
                await msg.nak()
            else:
                await msg.term()
        except _SETTLE_ERRORS as exc:
            LOG.debug("Could not %s a message of %s (%r); JetStream redelivers it", how,
                      self.consumer, exc)  # fmt: skip

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # a crash of it was reported by the listener's group
            task.cancel()
            await asyncio.wait([task])
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await _drain(subscription, connected=self.listener.connection.connected)


class Listener(BaseListener):
    """The feeds of one server target or notification listener, and the pump to ``handler``.

    Its tasks (the pump, the pulls, the progress reports) run in its group; :meth:`aclose`
    stops consuming (progress on what is still unsettled goes on), :meth:`close` ends it all.
    """

    def __init__(
        self, connection: Connection, handler: MessageHandler, on_crash: CrashHandler | None
    ) -> None:
        super().__init__("nats listener", on_crash)
        self.connection = connection
        self.feeds: list[CoreFeed | PullFeed] = []
        self.stopping = False
        self._handler = handler
        self._inbox: collections.deque[_Incoming] = collections.deque()
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._progress: asyncio.Task[None] | None = None
        self._unsettled: set[_Incoming] = set()
        self._forget_reconnect: typing.Callable[[], None] | None = None

    async def start(self) -> None:
        """Subscribe every feed and make sure the server has them before returning."""
        try:
            for feed in self.feeds:
                await feed.start()
            await (await self.connection.client()).flush()
        except BaseException:
            await self.close()
            raise
        self._forget_reconnect = self.connection.on_reconnect(self._on_reconnect)
        self._pump = self.tasks.create_task(self._run(), name="deliver")

    def _on_reconnect(self) -> None:
        for feed in self.feeds:
            if isinstance(feed, PullFeed):
                feed.wake()

    def offer(self, incoming: _Incoming) -> None:
        self._inbox.append(incoming)
        self._ready.set()

    async def _run(self) -> None:
        while not self.stopping:
            if not self._inbox:
                self._ready.clear()
                await self._ready.wait()
                continue
            incoming = self._inbox.popleft()
            if incoming.expired():
                LOG.debug("Dropping a message that expired unconsumed on %s", incoming.msg.subject)
                await incoming.ack()
                continue
            self._unsettled.add(incoming)
            if incoming.pulled:
                self._keep_in_progress()
            try:
                await self._handler(incoming)
            except Exception:
                LOG.exception("Handler failed on a message from %s; requeueing it",
                              incoming.msg.subject)  # fmt: skip
                await incoming.requeue()

    def _keep_in_progress(self) -> None:
        if self._progress is None or self._progress.done():
            self._progress = self.tasks.create_task(self._report_progress(), name="progress")

    async def _report_progress(self) -> None:
        """Tell JetStream that unsettled messages are being worked on, until none is left."""
        pulled = [feed for feed in self.feeds if isinstance(feed, PullFeed)]
        interval = min(feed.ack_wait for feed in pulled) / 3
        while self._unsettled:
            await asyncio.sleep(interval)
            for incoming in list(self._unsettled):
                if incoming.pulled:
                    try:
                        await incoming.msg.in_progress()
                    except _SETTLE_ERRORS as exc:
                        LOG.debug("Could not report progress on a message (%r)", exc)

    def settled(self, incoming: _Incoming) -> None:
        self._unsettled.discard(incoming)

    async def aclose(self) -> None:
        """Stop consuming and give back what the handler never saw; the rest stays to settle."""
        if self.stopping:
            return
        self.stopping = True
        if self._forget_reconnect is not None:
            self._forget_reconnect()
        self._ready.set()
        pump, self._pump = self._pump, None
        if pump is not None:
            await asyncio.wait([pump])
        for feed in self.feeds:
            await feed.stop()
        while self._inbox:
            incoming = self._inbox.popleft()
            await incoming.requeue()

    @property
    def finished(self) -> bool:
        """Whether the listener stopped and reports progress on nothing any more."""
        return self.stopping and (self._progress is None or self._progress.done())

    async def close(self) -> None:
        """Stop, and stop reporting progress on what is still unsettled (the transport closes)."""
        await self.aclose()
        await self.tasks.aclose()


async def _drain(subscription: Subscription, *, connected: bool) -> None:
    """Unsubscribe, letting the callback take what the server sent before it knew.

    Without a connection there is nothing to drain: unsubscribing then also keeps nats-py from
    subscribing again on reconnection (a failed drain would leave it registered).
    """
    try:
        if connected:
            await subscription.drain()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
        else:
            await subscription.unsubscribe()
    except NatsError as exc:  # closed meanwhile: the server forgets the subscription anyway
        LOG.debug("Could not drain subscription to %s (%r)", subscription.subject, exc)


if typing.TYPE_CHECKING:
    _listener: ListenerProtocol = typing.cast("Listener", None)
    _incoming: IncomingMessage = typing.cast("_Incoming", None)
