"""The ``messaging`` notification driver: notifications over the transport, as oslo sends them.

The format is oslo.messaging's ``messagingv2`` (steward has no other, so the ``messaging`` and
``messagingv2`` names both load this driver): the 2.0 envelope around ``message_id``,
``publisher_id``, ``event_type``, ``priority`` (upper case), ``payload``, ``timestamp``,
``_unique_id`` and the ``_context_*`` fields (:func:`steward.rpc.wire.pack_context`, shared with
RPC requests), routed to ``<topic>.<priority>`` on the control exchange of every topic, so
oslo.messaging listeners read steward's notifications and the reverse.

:meth:`MessagingDriver.notify` never waits: it encodes the notification and queues it, from the
event loop or from an executor thread, and a sender task publishes the queue, retrying with
backoff while the broker is away. The task runs in the notifier's task group (the ``tasks`` the
driver is built with), so the notifier owns it and hears at once if it crashes.
"""

from __future__ import annotations

import asyncio
import logging
import typing
import uuid
from collections.abc import Sequence

from steward.rpc import wire
from steward.rpc.target import Target

if typing.TYPE_CHECKING:
    from steward._aio import TaskGroup
    from steward.clock import Clock
    from steward.config import Settings
    from steward.notify.base import Notification
    from steward.rpc.transports.base import Transport

__all__ = ["MAX_PENDING", "RETRY_FIRST", "RETRY_MAX", "MessagingDriver"]

LOG = logging.getLogger(__name__)

# Notifications waiting for the sender; beyond this the oldest are dropped, with an error log,
# rather than growing memory without bound while the broker is away.
MAX_PENDING = 10_000
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


class MessagingDriver:
    """Publishes notifications to ``<topic>.<priority>`` for each of ``topics`` over ``transport``.

    Built by the notifier (see :class:`~steward.notify.base.NotificationDriver` for the
    keywords); raises ``ValueError`` without a transport. ``clock`` paces the retries while the
    broker is away; ``settings.max_message_size`` bounds a notification's size.
    """

    def __init__(
        self,
        *,
        transport: Transport | None,
        topics: Sequence[str],
        settings: Settings,
        clock: Clock,
        tasks: TaskGroup,
        **options: object,
    ) -> None:
        if transport is None:
            raise ValueError("the messaging notification driver needs a transport")
        self.transport = transport
        self.topics = list(topics)
        self.clock = clock
        self.tasks = tasks
        self.max_size = settings.max_message_size
        self.delivered = 0
        """How many notifications were handed to the broker."""
        self.dropped = 0
        """How many notifications were dropped: too many waiting, or sent after :meth:`aclose`."""
        # The loop the sender runs on: the one the driver is made on, if any, so a first
        # notification from a thread (a plain def method in the pool) has a loop to go to.
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def notify(self, notification: Notification) -> None:
        """Encode ``notification`` and queue it for the sender; raises if it cannot be encoded.

        From a thread, the notification is handed to the loop the sender runs on; with no loop
        to send it from, it is dropped with an error log.
        """
        body = wire.encode(_message(notification), max_size=self.max_size)
        priority = notification.priority
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (self._loop is None or self._loop is loop):
            self._enqueue(loop, priority, body)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._enqueue, self._loop, priority, body)
        else:
            self.dropped += 1
            LOG.error("Notification %s dropped: no event loop to send it from", priority)

    def _enqueue(self, loop: asyncio.AbstractEventLoop, priority: str, body: bytes) -> None:
        if self._closed or self.tasks.closed or _crashed(self._task):
            self.dropped += 1
            LOG.error("Notification %s dropped: its notifier is closed or failed", priority)
            return
        if self._queue is None:
            self._loop, self._queue = loop, asyncio.Queue()
        if self._queue.qsize() >= MAX_PENDING:
            self._queue.get_nowait()
            self.dropped += 1
            LOG.error(
                "Over %d notifications waiting for the broker; dropped the oldest", MAX_PENDING
            )
        self._queue.put_nowait((priority, body))
        if self._task is None or self._task.done():
            self._task = self.tasks.create_task(self._run(), name="notification sender")

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None  # noqa: S101 - set before the task starts
        while not queue.empty():
            priority, body = queue.get_nowait()
            delay = RETRY_FIRST
            failures = 0
            for topic in self.topics:
                while True:
                    try:
                        await self.transport.send_notification(Target(topic), priority, body)
                        break
                    except Exception as exc:  # noqa: BLE001 - any failure to publish is retried
                        failures += 1
                        if failures == 1:
                            LOG.warning("Cannot send a notification (%s); retrying", exc)
                        await self.clock.sleep(delay)
                        delay = min(delay * 2, RETRY_MAX)
            if failures:
                LOG.info("Notification sent after %d failed attempts", failures)
            self.delivered += 1
            queue.task_done()

    async def aclose(self) -> None:
        """Wait until the sender has sent the queue; then take no more notifications.

        A crash of the sender is not raised here: the notifier's task group reports it.
        """
        # A notification may come while the sender finishes (from a thread, through the loop)
        # and start a new sender: wait until none runs, so nothing queued is left unsent.
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        self._closed = True


def _crashed(task: asyncio.Task[None] | None) -> bool:
    return (
        task is not None and task.done() and not task.cancelled() and task.exception() is not None
    )


def _message(notification: Notification) -> dict[str, typing.Any]:
    """Return the inner dict of ``notification`` in oslo's ``messagingv2`` key order."""
    message: dict[str, typing.Any] = {
        "message_id": notification.message_id,
        "publisher_id": notification.publisher_id,
        "event_type": notification.event_type,
        "priority": notification.priority.upper(),
        "payload": notification.payload,
        "timestamp": notification.timestamp,
        "_unique_id": uuid.uuid4().hex,
    }
    wire.pack_context(message, notification.context)
    return message
