"""The notification drivers that stay in the process: ``noop``, ``log`` and ``test``.

They do no I/O and start no task, so they share a module: ``noop`` drops everything (oslo's
default), ``log`` writes one line per notification, ``test`` keeps each one in
:attr:`TestDriver.sent` for tests to look at (a notifier shows that list as ``notifier.sent``).
"""

from __future__ import annotations

import dataclasses
import logging
import typing

from steward.notify.base import Notification

__all__ = ["LogDriver", "NoopDriver", "SentNotification", "TestDriver"]

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class SentNotification:
    """One notification as the ``test`` driver keeps it (``priority`` upper case, as sent)."""

    publisher_id: str
    event_type: str
    priority: str
    payload: typing.Any
    context: dict[str, typing.Any]


class NoopDriver:
    """Drops every notification (the ``noop`` driver, oslo's default)."""

    def __init__(self, **options: object) -> None:
        """Take the options every driver is built with, and use none."""

    def notify(self, notification: Notification) -> None:
        """Do nothing."""

    async def aclose(self) -> None:
        """Do nothing."""


class LogDriver:
    """Writes one INFO line per notification to this module's logger (the ``log`` driver)."""

    def __init__(self, **options: object) -> None:
        """Take the options every driver is built with, and use none."""

    def notify(self, notification: Notification) -> None:
        """Log ``notification``: priority, event type, publisher and payload."""
        LOG.info("Notification %s %s from %s: %s", notification.priority.upper(),
                 notification.event_type, notification.publisher_id,
                 notification.payload)  # fmt: skip

    async def aclose(self) -> None:
        """Do nothing: nothing is queued."""


class TestDriver:
    """Keeps every notification in :attr:`sent`, in order (the ``test`` driver)."""

    __test__ = False  # a driver, not a pytest test class

    def __init__(self, **options: object) -> None:
        """Take the options every driver is built with, and use none."""
        self.sent: list[SentNotification] = []

    def notify(self, notification: Notification) -> None:
        """Append ``notification`` to :attr:`sent`."""
        self.sent.append(
            SentNotification(
                notification.publisher_id,
                notification.event_type,
                notification.priority.upper(),
                notification.payload,
                notification.context,
            )
        )

    async def aclose(self) -> None:
        """Do nothing: what was sent stays in :attr:`sent`."""
