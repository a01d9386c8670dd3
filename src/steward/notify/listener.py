"""NotificationListener: consumes notifications and calls endpoints by priority.

:class:`NotificationListener` consumes ``<topic>.<priority>`` queues and calls the endpoint method
named after the priority (``info(context, publisher_id, event_type, payload, metadata)``),
optionally filtered by regular expressions on event type and publisher id
(:class:`NotificationFilter`); it acknowledges after the endpoints return, and requeues when one
returns :data:`REQUEUE`.

As the RPC dispatcher does, an ``async def`` endpoint method runs on the loop and a plain ``def``
one in the executor, each with the notification's context current
(:func:`steward.context.get_current`). Each notification is handled in a task of the listener's
own task group; the listener is an async context manager that starts consuming on entry and, on
exit (:meth:`NotificationListener.aclose`), stops, waits for the notifications being handled and
closes the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import typing
from collections.abc import Sequence
from concurrent.futures import Executor

from steward._aio import AsyncStarting, TaskGroup, call_sync_or_async
from steward.context import bind
from steward.errors import MalformedMessage
from steward.notify.base import PRIORITIES
from steward.redact import shorten
from steward.rpc import wire
from steward.rpc.serializer import Serializer

if typing.TYPE_CHECKING:
    from steward.rpc.target import Target
    from steward.rpc.transports.base import IncomingMessage, Listener, Transport

__all__ = ["HANDLED", "REQUEUE", "NotificationFilter", "NotificationListener"]

LOG = logging.getLogger(__name__)

HANDLED = "handled"
"""An endpoint's result: the notification is done with (the default)."""
REQUEUE = "requeue"
"""An endpoint's result: give the notification back to the queue, to be handled again."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationFilter:
    """Which notifications an endpoint wants: regular expressions, all optional, all must match."""

    event_type: str | None = None
    publisher_id: str | None = None

    def matches(self, event_type: str, publisher_id: str) -> bool:
        """Return whether a notification passes the filter."""
        return all(
            pattern is None or re.fullmatch(pattern, value) is not None
            for pattern, value in (
                (self.event_type, event_type),
                (self.publisher_id, publisher_id),
            )
        )


class NotificationListener(AsyncStarting):
    r"""Dispatches notifications from ``targets`` to ``endpoints`` by priority.

    ``targets`` are :class:`~steward.rpc.Target`\\ s naming topics (``Target("notifications")``).
    An endpoint handles a priority by having a method of that name taking
    ``(context, publisher_id, event_type, payload, metadata)``; an optional ``filter_rule``
    attribute (a :class:`NotificationFilter`) narrows what it gets. ``pool`` gives this listener
    its own queues, so that it gets every notification rather than sharing them. ``executor``
    runs plain ``def`` endpoint methods (None: the loop's default executor). ``prefetch`` bounds
    the notifications handled at once.
    """

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        endpoints: Sequence[object],
        *,
        pool: str | None = None,
        serializer: Serializer | None = None,
        prefetch: int = 64,
        executor: Executor | None = None,
    ) -> None:
        self.transport = transport
        self.targets = list(targets)
        self.endpoints = list(endpoints)
        self.pool = pool
        self.serializer = serializer if serializer is not None else Serializer()
        self.prefetch = prefetch
        self.executor = executor
        self._listener: Listener | None = None
        self.failure: BaseException | None = None
        self._tasks = TaskGroup(
            f"notification listener on {', '.join(map(str, self.targets))}",
            on_crash=self._crashed,
        )

    def _crashed(self, exc: BaseException) -> None:
        """Fail the listener: a consumer (or a handler, past its own error handling) died.

        The group has logged it; :attr:`failure` keeps it for the owner to see at once, rather
        than at :meth:`aclose`.
        """
        if self.failure is None:
            self.failure = exc

    async def start(self) -> None:
        """Start consuming every priority any endpoint handles; a running listener goes on.

        Raises ``RuntimeError`` once the listener is closed.
        """
        if self._tasks.closed:
            raise RuntimeError("the notification listener is closed; build a new one")
        if self._listener is not None:
            return
        priorities = [p for p in PRIORITIES if any(hasattr(e, p) for e in self.endpoints)]
        pairs = [(target, priority) for target in self.targets for priority in priorities]
        self._listener = await self.transport.listen_notifications(
            pairs, self._on_message, pool=self.pool, prefetch=self.prefetch, on_crash=self._crashed
        )

    async def stop(self) -> None:
        """Stop consuming; notifications being handled go on (see :meth:`wait`)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    async def wait(self) -> None:
        """Wait for the notifications being handled."""
        await self._tasks.wait()

    async def aclose(self) -> None:
        """Stop consuming, wait for the notifications being handled, close the task group.

        What failed the listener is in :attr:`failure`, not raised; a cancelled wait returns the
        unfinished notifications to their queue.
        """
        try:
            await self.stop()
            await self.wait()
        finally:
            await self._tasks.aclose()

    async def _on_message(self, incoming: IncomingMessage) -> None:
        # Return at once so the transport can deliver the next message; the group owns the task.
        if self._tasks.closed:
            await incoming.requeue()
            return
        self._tasks.create_task(self._handle(incoming), name="notification")

    async def _handle(self, incoming: IncomingMessage) -> None:
        try:
            requeue = await self._dispatch(incoming)
        except asyncio.CancelledError:
            # Closing mid-notification: give the message back rather than lose it.
            await asyncio.shield(incoming.requeue())
            raise
        except Exception:
            # A serializer that cannot read the payload, say: never leave the message unsettled
            # (it would hold a prefetch slot until the connection goes).
            LOG.exception("Unexpected error handling a notification; returning it to the queue")
            requeue = True
        if requeue is None:
            return
        try:
            await (incoming.requeue() if requeue else incoming.ack())
        except Exception:
            # The broker takes an unsettled message back when the connection goes.
            LOG.warning("Could not settle a notification", exc_info=True)

    async def _dispatch(self, incoming: IncomingMessage) -> bool | None:
        """Run the endpoints; return whether to requeue (None: the message was rejected)."""
        try:
            message = wire.decode(incoming.body)
            priority = str(message["priority"]).lower()
            event_type = str(message["event_type"])
            publisher_id = str(message["publisher_id"])
            context = self.serializer.deserialize_context(wire.unpack_context(message))
        except (MalformedMessage, KeyError, TypeError, ValueError) as exc:
            LOG.warning("Rejecting a malformed notification: %r", exc)
            await incoming.reject()
            return None
        priority = "warn" if priority == "warning" else priority
        payload = self.serializer.deserialize_entity(context, message.get("payload"))
        metadata = {"message_id": message.get("message_id"), "timestamp": message.get("timestamp")}
        requeue = False
        with bind(context):
            for endpoint in self.endpoints:
                method = getattr(endpoint, priority, None)
                rule = getattr(endpoint, "filter_rule", None)
                if method is None or (
                    isinstance(rule, NotificationFilter)
                    and not rule.matches(event_type, publisher_id)
                ):
                    continue
                try:
                    result = await call_sync_or_async(
                        method, context, publisher_id, event_type, payload, metadata,
                        executor=self.executor,
                    )  # fmt: skip
                except Exception:
                    LOG.exception(
                        "Notification endpoint %r failed on %r", endpoint, shorten(event_type)
                    )
                    continue
                requeue = requeue or result == REQUEUE
        return requeue
