"""Notifier: what a manager tells the world it did.

:class:`Notifier` follows oslo.messaging's: one method per priority (``audit``, ``debug``,
``info``, ``warn``/``warning``, ``error``, ``critical``, ``sample``), each taking
``(context, event_type, payload)``, handing a :class:`~steward.notify.base.Notification` to the
driver it loaded by name (see :mod:`steward.notify.base`).

Notifying never blocks business code and never raises into it, with one exception: once the
notifier has failed (a task of its task group, such as the ``messaging`` driver's sender,
crashed), notifying raises :class:`~steward.errors.MessageDeliveryFailure` rather than queue
notifications nobody will send. A notifier is an async context manager: leaving it (or
:meth:`Notifier.aclose`, or its old name ``close``) waits until what is queued is sent, then
closes its task group.

This module imports nothing of :mod:`steward.rpc`, so a manager holding a notifier does not
import the RPC layer: the ``messaging`` driver is loaded by name, when one is asked for.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import typing
import uuid
from collections.abc import Callable, Sequence

from steward._aio import AsyncClosing, TaskGroup
from steward.clock import Clock, SystemClock
from steward.config import load_settings
from steward.context import RequestContext
from steward.drivers import load_driver
from steward.errors import MessageDeliveryFailure
from steward.notify.base import Notification, NotificationDriver, Payload
from steward.notify.local import NoopDriver, SentNotification, TestDriver

if typing.TYPE_CHECKING:
    from steward.config import Settings
    from steward.rpc.serializer import Serializer
    from steward.rpc.transports.base import Transport

__all__ = ["DRIVER_KIND", "NoopNotifier", "Notifier"]

LOG = logging.getLogger(__name__)

DRIVER_KIND = "notification"
"""The kind notification drivers are registered under: entry-point group
``steward.drivers.notification``."""


@dataclasses.dataclass(slots=True)
class _Shared:
    """What a notifier shares with its prepared copies: the driver, its tasks, their fate."""

    name: str
    driver: NotificationDriver
    tasks: TaskGroup
    on_crash: Callable[[BaseException], None] | None = None
    failure: BaseException | None = None

    def crashed(self, exc: BaseException) -> None:
        # The task group has logged the traceback; say what it means for notifications.
        self.failure = exc
        LOG.error(
            "Notifier failed (a task of %s crashed): notifications can no longer be sent",
            self.tasks.owner,
        )
        if self.on_crash is not None:
            self.on_crash(exc)


class Notifier(AsyncClosing):
    """Emits notifications as ``publisher_id`` through the driver named ``driver``.

    ``driver`` is an entry-point name of the ``steward.drivers.notification`` group (built in:
    ``messaging``, ``messagingv2``, ``log``, ``noop``, ``test``) or a ``"module:Class"`` path;
    an unknown name raises :class:`~steward.errors.DriverNotFound`. ``transport`` is needed by
    the ``messaging`` driver only (without one it raises ``ValueError``). ``driver`` and
    ``topics`` default to the ``notification_driver`` and ``notification_topics`` settings.
    ``settings`` (None: the transport's; with no transport, the defaults and the environment,
    :func:`~steward.config.load_settings`) is read in the constructor even when ``driver`` and
    ``topics`` are given, since the driver takes its options from it (the ``messaging``
    driver's ``max_message_size``). ``serializer`` turns payloads and the context into JSON
    (None: payloads as they are, the context as ``RequestContext.to_dict()``, as the default
    :class:`~steward.rpc.Serializer` does). ``clock`` paces the ``messaging`` driver's retries.
    ``on_crash`` is told at once when the notifier fails.
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
        on_crash: Callable[[BaseException], None] | None = None,
        _shared: _Shared | None = None,
    ) -> None:
        if settings is None:
            settings = transport.settings if transport is not None else load_settings()
        self.settings = settings
        self.publisher_id = publisher_id
        self.topics = list(topics if topics is not None else settings.notification_topics)
        self.serializer = serializer
        if _shared is None:
            name = driver if driver is not None else settings.notification_driver
            tasks = TaskGroup(f"notifier {publisher_id}")
            built = load_driver(
                DRIVER_KIND,
                name,
                NotificationDriver,
                transport=transport,
                topics=tuple(self.topics),
                settings=settings,
                clock=clock or SystemClock(),
                tasks=tasks,
            )
            _shared = _Shared(name, built, tasks, on_crash)
            tasks.on_crash = _shared.crashed
        self._shared = _shared
        self.driver = _shared.name
        """The driver's name (or ``module:Class`` path), as given."""

    def prepare(self, *, publisher_id: str | None = None) -> Notifier:
        """Return a notifier sharing this one's driver, queue and tasks, as ``publisher_id``."""
        return Notifier(
            None,
            publisher_id or self.publisher_id,
            topics=self.topics,
            serializer=self.serializer,
            settings=self.settings,
            _shared=self._shared,
        )

    def is_enabled(self) -> bool:
        """Return whether notifications go anywhere (False for ``noop``)."""
        return not isinstance(self._shared.driver, NoopDriver)

    @property
    def failure(self) -> BaseException | None:
        """What a task of the notifier crashed of (None while it is healthy)."""
        return self._shared.failure

    @property
    def sent(self) -> list[SentNotification]:
        """What the ``test`` driver kept, in order (always empty with another driver)."""
        driver = self._shared.driver
        return driver.sent if isinstance(driver, TestDriver) else []

    @property
    def delivered(self) -> int:
        """How many notifications the driver has handed on (counted by ``messaging``)."""
        return int(getattr(self._shared.driver, "delivered", 0))

    def _notify(
        self, context: RequestContext | None, event_type: str, payload: Payload, priority: str
    ) -> None:
        shared = self._shared
        if shared.failure is not None:
            raise MessageDeliveryFailure(
                f"notification {event_type!r} from {self.publisher_id!r} not sent: the "
                f"notifier failed ({shared.failure!r}; its traceback is in the log); "
                "build a new notifier"
            ) from shared.failure
        if isinstance(shared.driver, NoopDriver):
            return
        try:
            shared.driver.notify(self._notification(context, event_type, payload, priority))
        except Exception:
            # Notifying never breaks the business code that notifies.
            LOG.exception("Could not emit notification %s from %s", event_type, self.publisher_id)

    def _notification(
        self, context: RequestContext | None, event_type: str, payload: Payload, priority: str
    ) -> Notification:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        if self.serializer is not None:
            serialized = self.serializer.serialize_entity(context, payload)
            context_dict = self.serializer.serialize_context(context)
        else:
            serialized, context_dict = payload, context.to_dict() if context is not None else {}
        return Notification(
            publisher_id=self.publisher_id,
            event_type=event_type,
            priority=priority,
            payload=serialized,
            context=context_dict,
            message_id=str(uuid.uuid4()),
            timestamp=str(now),  # oslo: str(utcnow()), "YYYY-MM-DD HH:MM:SS.ffffff"
        )

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

    async def aclose(self) -> None:
        """Wait until every queued notification is sent, then close the notifier's task group.

        Prepared copies share the driver and close with it. Raises nothing of what failed the
        notifier: :attr:`failure` holds it. A notification sent after this is dropped with an
        error log by the ``messaging`` driver. Bound the wait with ``asyncio.timeout``: when it
        expires, the notifications still queued are dropped and the sender is cancelled.
        """
        try:
            await self._shared.driver.aclose()
        finally:
            # Its group hands crashes to _Shared.crashed (kept in .failure): closing raises none.
            await self._shared.tasks.aclose()

    close = aclose
    """The name the notifier's close had before it became an async context manager."""

    def __repr__(self) -> str:
        return f"Notifier({self.publisher_id!r}, driver={self.driver!r})"


def NoopNotifier(  # noqa: N802 - oslo-style factory name
    publisher_id: str, *, settings: Settings | None = None
) -> Notifier:
    """Return a notifier that drops everything (what a manager has until its service starts).

    Its driver is built directly, not looked up among the entry points: every manager makes one.
    """
    tasks = TaskGroup(f"notifier {publisher_id}")
    shared = _Shared("noop", NoopDriver(), tasks)
    return Notifier(None, publisher_id, topics=(), settings=settings, _shared=shared)
