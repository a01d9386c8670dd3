"""Notifications: what a manager tells the world it did, and the listeners that hear it.

:class:`Notifier` follows oslo.messaging's: one method per priority (``audit``, ``debug``,
``info``, ``warn``/``warning``, ``error``, ``critical``, ``sample``), each taking
``(context, event_type, payload)``. Its driver comes from the ``notification_driver`` setting:

* ``messaging`` — over the transport, in oslo's ``messagingv2`` format: the 2.0 envelope around
  ``message_id``, ``publisher_id``, ``event_type``, ``priority`` (upper case), ``payload``,
  ``timestamp`` and the ``_context_*`` fields, routed to ``<topic>.<priority>`` on the control
  exchange, so oslo.messaging listeners read steward's notifications and the reverse;
* ``log`` — one log line per notification; ``noop`` — nothing (oslo's default); ``test`` — kept
  in :attr:`Notifier.sent` for tests.

Notifying never raises into business code and never blocks it: the notification is queued and a
sender task owned by the notifier publishes it, retrying with backoff while the broker is away
(:meth:`Notifier.close` waits for the queue to drain). It works from the event loop and from
executor threads alike.

:class:`NotificationListener` consumes ``<topic>.<priority>`` queues and calls the endpoint
method named after the priority (``info(context, publisher_id, event_type, payload, metadata)``),
optionally filtered by regular expressions on event type and publisher id; it acknowledges after
the endpoint returns, and requeues when the endpoint returns :data:`REQUEUE`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
import typing
import uuid
from collections.abc import Mapping, Sequence

from steward.clock import Clock, SystemClock
from steward.context import RequestContext
from steward.errors import MalformedMessage
from steward.redact import shorten

if typing.TYPE_CHECKING:
    from steward.config import Settings
    from steward.rpc.serializer import Serializer
    from steward.rpc.transports.base import IncomingMessage, Listener, Transport

__all__ = [
    "DRIVERS",
    "HANDLED",
    "PRIORITIES",
    "REQUEUE",
    "NoopNotifier",
    "NotificationFilter",
    "NotificationListener",
    "Notifier",
    "Payload",
    "SentNotification",
]

LOG = logging.getLogger(__name__)

Payload = Mapping[str, typing.Any]
"""A notification's payload: JSON-ready data."""

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
"""Priorities, as oslo names them; each routes to ``<topic>.<priority>``."""

DRIVERS = ("noop", "messaging", "log", "test")

HANDLED = "handled"
"""An endpoint's result: the notification is done with (the default)."""
REQUEUE = "requeue"
"""An endpoint's result: give the notification back to the queue, to be handled again."""

# Notifications waiting for the sender; beyond this the oldest are dropped, with an error log,
# rather than growing memory without bound while the broker is away.
MAX_PENDING = 10_000
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class SentNotification:
    """One notification as the ``test`` driver keeps it."""

    publisher_id: str
    event_type: str
    priority: str
    payload: typing.Any
    context: dict[str, typing.Any]


class _Sender:
    """The queue and task that publish notifications for a notifier and its prepared copies."""

    def __init__(self, transport: Transport, topics: Sequence[str], clock: Clock) -> None:
        self.transport = transport
        self.topics = list(topics)
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0

    def submit(self, priority: str, body: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (self.loop is None or self.loop is loop):
            self._enqueue(loop, priority, body)
        elif self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._enqueue, self.loop, priority, body)
        else:
            LOG.error("Notification %s dropped: no event loop to send it from", priority)

    def _enqueue(self, loop: asyncio.AbstractEventLoop, priority: str, body: bytes) -> None:
        if self.queue is None:
            self.loop, self.queue = loop, asyncio.Queue()
        if self.queue.qsize() >= MAX_PENDING:
            self.queue.get_nowait()
            self.dropped += 1
            LOG.error(
                "Over %d notifications waiting for the broker; dropped the oldest", MAX_PENDING
            )
        self.queue.put_nowait((priority, body))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(), name="steward notification sender")

    async def _run(self) -> None:
        from steward.rpc.target import Target  # noqa: PLC0415 - rpc imports notify's users

        assert self.queue is not None  # noqa: S101 - set before the task starts
        while not self.queue.empty():
            priority, body = self.queue.get_nowait()
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
            self.sent += 1
            self.queue.task_done()

    async def close(self) -> None:
        if self.task is not None:
            await self.task


class Notifier:
    """Emits notifications as ``publisher_id``; see the module docstring for the drivers.

    ``transport`` is needed by the ``messaging`` driver only. ``topics`` default to the
    ``notification_topics`` setting, ``driver`` to ``notification_driver``, read from
    ``settings`` (None: the transport's; with no transport, the defaults and the environment).
    ``clock`` paces the retries while the broker is away.
    """

    def __init__(
        self,
        transport: Transport | None,
        publisher_id: str,
        *,
        driver: str | None = None,
        topics: Sequence[str] | None = None,
        serializer: Serializer | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        _sender: _Sender | None = None,
        _sent: list[SentNotification] | None = None,
    ) -> None:
        from steward import config  # noqa: PLC0415 - settings only when none are given
        from steward.rpc.serializer import Serializer  # noqa: PLC0415

        settings = settings or (transport.settings if transport else config.load_settings())
        self.settings = settings
        self.driver = driver if driver is not None else settings.notification_driver
        if self.driver not in DRIVERS:
            raise ValueError(f"`driver` must be one of {', '.join(DRIVERS)}, got {self.driver!r}")
        self.publisher_id = publisher_id
        self.topics = list(topics if topics is not None else settings.notification_topics)
        self.serializer = serializer if serializer is not None else Serializer()
        self.sent: list[SentNotification] = _sent if _sent is not None else []
        self._max_size = settings.max_message_size
        self._sender = _sender
        if self.driver == "messaging" and self._sender is None:
            if transport is None:
                raise ValueError("the messaging notification driver needs a transport")
            self._sender = _Sender(transport, self.topics, clock or SystemClock())

    def prepare(self, *, publisher_id: str | None = None) -> Notifier:
        """Return a notifier sharing this one's driver and queue, as ``publisher_id``."""
        return Notifier(
            None,
            publisher_id or self.publisher_id,
            driver=self.driver,
            topics=self.topics,
            serializer=self.serializer,
            settings=self.settings,
            _sender=self._sender,
            _sent=self.sent,
        )

    def is_enabled(self) -> bool:
        """Return whether notifications go anywhere (False for ``noop``)."""
        return self.driver != "noop"

    def _notify(
        self, context: RequestContext | None, event_type: str, payload: Payload, priority: str
    ) -> None:
        if self.driver == "noop":
            return
        try:
            message = self._message(context, event_type, payload, priority)
            if self.driver == "test":
                self.sent.append(
                    SentNotification(self.publisher_id, event_type, priority.upper(),
                                     message["payload"], self.serializer.serialize_context(context))
                )  # fmt: skip
            elif self.driver == "log":
                LOG.info("Notification %s %s from %s: %s", priority.upper(), event_type,
                         self.publisher_id, message["payload"])  # fmt: skip
            else:
                from steward.rpc import wire  # noqa: PLC0415

                assert self._sender is not None  # noqa: S101 - built with the messaging driver
                self._sender.submit(priority, wire.encode(message, max_size=self._max_size))
        except Exception:
            # Notifying never breaks the business code that notifies.
            LOG.exception("Could not emit notification %s from %s", event_type, self.publisher_id)

    def _message(
        self, context: RequestContext | None, event_type: str, payload: Payload, priority: str
    ) -> dict[str, typing.Any]:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        message: dict[str, typing.Any] = {
            "message_id": str(uuid.uuid4()),
            "publisher_id": self.publisher_id,
            "event_type": event_type,
            "priority": priority.upper(),
            "payload": self.serializer.serialize_entity(context, payload),
            "timestamp": str(now),  # oslo: str(utcnow()), "YYYY-MM-DD HH:MM:SS.ffffff"
            "_unique_id": uuid.uuid4().hex,
        }
        for key, value in self.serializer.serialize_context(context).items():
            message[f"_context_{key}"] = value
        return message

    def audit(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an AUDIT notification."""
        self._notify(context, event_type, payload, "audit")

    def debug(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a DEBUG notification."""
        self._notify(context, event_type, payload, "debug")

    def info(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an INFO notification."""
        self._notify(context, event_type, payload, "info")

    def warn(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a WARN notification (``warning`` is the same)."""
        self._notify(context, event_type, payload, "warn")

    warning = warn

    def error(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an ERROR notification."""
        self._notify(context, event_type, payload, "error")

    def critical(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a CRITICAL notification."""
        self._notify(context, event_type, payload, "critical")

    def sample(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a SAMPLE (metering) notification."""
        self._notify(context, event_type, payload, "sample")

    @property
    def delivered(self) -> int:
        """How many notifications the messaging driver has handed to the broker."""
        return self._sender.sent if self._sender is not None else 0

    async def close(self) -> None:
        """Wait until every queued notification has been sent."""
        if self._sender is not None:
            await self._sender.close()

    def __repr__(self) -> str:
        return f"Notifier({self.publisher_id!r}, driver={self.driver!r})"


def NoopNotifier(  # noqa: N802 - oslo-style factory name
    publisher_id: str, *, settings: Settings | None = None
) -> Notifier:
    """Return a notifier that drops everything (what a manager has until its service starts)."""
    return Notifier(None, publisher_id, driver="noop", topics=(), settings=settings)


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


class NotificationListener:
    r"""Dispatches notifications from ``targets`` to ``endpoints`` by priority.

    ``targets`` are :class:`~steward.rpc.Target`\\ s naming topics (``Target("notifications")``).
    An endpoint handles a priority by having a method of that name taking
    ``(context, publisher_id, event_type, payload, metadata)``; an optional ``filter_rule``
    attribute (a :class:`NotificationFilter`) narrows what it gets. ``pool`` gives this listener
    its own queues, so that it gets every notification rather than sharing them.
    """

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[typing.Any],
        endpoints: Sequence[object],
        *,
        pool: str | None = None,
        serializer: Serializer | None = None,
        prefetch: int = 64,
    ) -> None:
        from steward.rpc.serializer import Serializer  # noqa: PLC0415

        self.transport = transport
        self.targets = list(targets)
        self.endpoints = list(endpoints)
        self.pool = pool
        self.serializer = serializer if serializer is not None else Serializer()
        self.prefetch = prefetch
        self._listener: Listener | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start consuming every priority any endpoint handles."""
        priorities = [p for p in PRIORITIES if any(hasattr(e, p) for e in self.endpoints)]
        pairs = [(target, priority) for target in self.targets for priority in priorities]
        self._listener = await self.transport.listen_notifications(
            pairs, self._on_message, pool=self.pool, prefetch=self.prefetch
        )

    async def stop(self) -> None:
        """Stop consuming."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    async def wait(self) -> None:
        """Wait for notifications being handled."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def _on_message(self, incoming: IncomingMessage) -> None:
        task = asyncio.create_task(self._handle(incoming))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _handle(self, incoming: IncomingMessage) -> None:
        from steward.rpc import wire  # noqa: PLC0415

        try:
            message = wire.decode(incoming.body)
            priority = str(message["priority"]).lower()
            event_type = str(message["event_type"])
            publisher_id = str(message["publisher_id"])
        except (MalformedMessage, KeyError) as exc:
            LOG.warning("Rejecting a malformed notification: %r", exc)
            await incoming.reject()
            return
        priority = "warn" if priority == "warning" else priority
        context_values = {
            key[len("_context_") :]: value
            for key, value in message.items()
            if key.startswith("_context_")
        }
        context = self.serializer.deserialize_context(context_values)
        payload = self.serializer.deserialize_entity(context, message.get("payload"))
        metadata = {"message_id": message.get("message_id"), "timestamp": message.get("timestamp")}
        requeue = False
        for endpoint in self.endpoints:
            method = getattr(endpoint, priority, None)
            rule = getattr(endpoint, "filter_rule", None)
            if method is None or (
                isinstance(rule, NotificationFilter) and not rule.matches(event_type, publisher_id)
            ):
                continue
            try:
                result = method(context, publisher_id, event_type, payload, metadata)
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception:
                LOG.exception(
                    "Notification endpoint %r failed on %r", endpoint, shorten(event_type)
                )
                continue
            requeue = requeue or result == REQUEUE
        await (incoming.requeue() if requeue else incoming.ack())
