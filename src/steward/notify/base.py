"""The notification driver seam: what a :class:`NotificationDriver` is handed and must do.

A :class:`~steward.notify.Notifier` turns ``notifier.info(context, event_type, payload)`` into a
:class:`Notification` (payload and context already serialized) and hands it to its driver, which
it loads by name from the ``steward.drivers.notification`` entry points, as every steward driver
is loaded (:func:`steward.load_driver`). The built-in names are oslo.messaging's: ``messaging``
and ``messagingv2`` (:mod:`steward.notify.messaging`), ``log``, ``noop`` and ``test``
(:mod:`steward.notify.local`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping

__all__ = ["PRIORITIES", "Notification", "NotificationDriver", "Payload"]

Payload = Mapping[str, typing.Any]
"""A notification's payload: JSON-ready data."""

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
"""Priorities, as oslo names them; each routes to ``<topic>.<priority>``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One notification, as a driver receives it.

    ``priority`` is one of :data:`PRIORITIES` (lower case: the routing key's; the wire and the
    ``log`` and ``test`` drivers write it upper case, as oslo does). ``payload`` and ``context``
    are what the notifier's serializer made of them: JSON-ready, ``context`` the dict that
    travels in ``_context_*`` fields. ``timestamp`` is oslo's ``str(utcnow())``.
    """

    publisher_id: str
    event_type: str
    priority: str
    payload: typing.Any
    context: dict[str, typing.Any]
    message_id: str
    timestamp: str


@typing.runtime_checkable
class NotificationDriver(typing.Protocol):
    """Where a notifier's notifications go.

    :func:`steward.load_driver` builds a driver with keyword arguments, all of which it must
    accept (it may ignore any): ``transport`` (a :class:`~steward.rpc.transports.base.Transport`
    or None), ``topics`` (a tuple of topic names), ``settings``
    (:class:`~steward.config.Settings`), ``clock`` (:class:`~steward.clock.Clock`) and ``tasks``
    (the notifier's :class:`~steward._aio.TaskGroup`, where a driver runs any background task,
    so that the notifier owns it, sees it crash and closes it).

    :meth:`notify` is synchronous, as oslo's driver interface is, because business code
    notifies from the event loop and from executor threads alike and must never wait for it:
    a driver that does I/O queues the notification and sends it from a task in ``tasks``. It
    may raise; the notifier logs the error and the caller goes on.
    """

    def notify(self, notification: Notification) -> None:
        """Emit ``notification``, or queue it, and return at once."""
        ...

    async def aclose(self) -> None:
        """Send what is queued (the caller bounds the wait) and release what the driver holds."""
        ...
