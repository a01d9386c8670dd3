"""Notifications a manager emits about what it did.

For now only :class:`NoopNotifier` lives here: every :class:`~steward.Manager` has one as
``self.notifier`` (publisher id ``"<service_name>.<host>"``, as nova's ``rpc.get_notifier``), so
business code can call ``self.notifier.info(ctx, "volume.create.end", payload)`` today and the
messages start flowing, unchanged, once the messaging notifier lands.
"""

from __future__ import annotations

import typing

from steward.context import RequestContext

__all__ = ["NoopNotifier", "Payload"]

Payload = typing.Mapping[str, typing.Any]
"""A notification's payload: JSON-ready data."""


class NoopNotifier:
    """A notifier that drops every notification (oslo.messaging's ``noop`` driver).

    Its methods follow oslo's ``Notifier``: one per priority, each taking
    ``(context, event_type, payload)``; none of them raises into business code.
    """

    __slots__ = ("publisher_id",)

    def __init__(self, publisher_id: str) -> None:
        self.publisher_id = publisher_id

    def prepare(self, *, publisher_id: str | None = None) -> NoopNotifier:
        """Return a notifier like this one with another ``publisher_id``."""
        return NoopNotifier(publisher_id or self.publisher_id)

    def is_enabled(self) -> bool:
        """Return False: nothing is sent."""
        return False

    def _notify(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Drop the notification."""

    def audit(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an AUDIT notification."""
        self._notify(context, event_type, payload)

    def debug(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a DEBUG notification."""
        self._notify(context, event_type, payload)

    def info(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an INFO notification."""
        self._notify(context, event_type, payload)

    def warn(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a WARN notification."""
        self._notify(context, event_type, payload)

    warning = warn

    def error(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send an ERROR notification."""
        self._notify(context, event_type, payload)

    def critical(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a CRITICAL notification."""
        self._notify(context, event_type, payload)

    def sample(self, context: RequestContext | None, event_type: str, payload: Payload) -> None:
        """Send a SAMPLE (metering) notification."""
        self._notify(context, event_type, payload)

    def __repr__(self) -> str:
        return f"NoopNotifier(publisher_id={self.publisher_id!r})"
