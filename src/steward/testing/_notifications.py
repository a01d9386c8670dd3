"""Captured notifications: what a manager emitted, kept in memory for a test to assert on."""

from __future__ import annotations

import typing
from collections.abc import Iterator

from steward.notify import Notifier, SentNotification

if typing.TYPE_CHECKING:
    from steward.config import Settings
    from steward.manager import Manager

__all__ = ["CapturedNotifications"]


class CapturedNotifications:
    """Every notification sent through its notifiers, in the order they were sent.

    Its notifiers use the ``test`` driver (:class:`~steward.notify.Notifier` with
    ``driver="test"``): a notification is kept here the moment it is emitted, nothing is queued
    or sent, so a test asserts right after the call that caused it. :meth:`attach` gives a manager
    one (a :class:`~steward.service.Service` keeps a manager's notifier while the
    ``notification_driver`` setting is ``noop``, the default); :meth:`notifier` makes one for
    code that takes a notifier directly. Re-exported by :mod:`steward.testing`; the plugin's
    ``notifications`` fixture is one per test.
    """

    def __init__(self, *, settings: Settings | None = None) -> None:
        self._root = Notifier(None, "steward.testing", driver="test", topics=(), settings=settings)

    @property
    def sent(self) -> list[SentNotification]:
        """The notifications kept so far, oldest first (the list itself, shared by notifiers)."""
        return self._root.sent

    @property
    def event_types(self) -> list[str]:
        """The event types of :attr:`sent`, in order: what most assertions compare."""
        return [notification.event_type for notification in self.sent]

    def of(self, event_type: str) -> list[SentNotification]:
        """Return the notifications of ``event_type``, oldest first."""
        return [notification for notification in self.sent if notification.event_type == event_type]

    def notifier(self, publisher_id: str) -> Notifier:
        """Return a notifier that keeps what it sends here, as ``publisher_id``."""
        return self._root.prepare(publisher_id=publisher_id)

    def attach(self, manager: Manager) -> None:
        """Replace ``manager``'s notifier by one keeping its notifications here (same publisher)."""
        manager.notifier = self.notifier(manager.notifier.publisher_id)

    def clear(self) -> None:
        """Forget the notifications kept so far."""
        self.sent.clear()

    def __len__(self) -> int:
        return len(self.sent)

    def __iter__(self) -> Iterator[SentNotification]:
        return iter(list(self.sent))

    def __repr__(self) -> str:
        return f"<CapturedNotifications: {len(self.sent)} sent>"
