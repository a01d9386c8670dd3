"""Notifications: what a manager tells the world it did, and the listeners that hear it.

A package rather than one module, since it holds four ideas that change apart:

* :mod:`~steward.notify.base` — the driver seam: :class:`NotificationDriver` and the
  :class:`Notification` it is handed;
* :mod:`~steward.notify.notifier` — :class:`Notifier`, oslo's notifier: one method per priority,
  the driver chosen by name from the ``steward.drivers.notification`` entry points
  (:func:`steward.load_driver`), as every steward driver is;
* the built-in drivers, under oslo's names: ``messaging`` and ``messagingv2`` (the same driver:
  oslo's ``messagingv2`` format over the transport, :mod:`~steward.notify.messaging`), ``log``,
  ``noop`` and ``test`` (:mod:`~steward.notify.local`);
* :mod:`~steward.notify.listener` — :class:`NotificationListener`, which consumes them.

How a request context travels in a notification's ``_context_*`` fields is
:mod:`steward.rpc.wire`'s, as it is for an RPC request. Everything public is re-exported here;
the listener's names load on first use, so that a manager (which holds a notifier) does not
import the RPC layer the listener consumes with.
"""

from __future__ import annotations

import importlib
import typing

from steward.notify.base import PRIORITIES, Notification, NotificationDriver, Payload
from steward.notify.local import SentNotification
from steward.notify.notifier import NoopNotifier, Notifier

if typing.TYPE_CHECKING:
    from steward.notify.listener import (
        HANDLED,
        REQUEUE,
        NotificationFilter,
        NotificationListener,
    )

__all__ = [
    "DRIVERS",
    "HANDLED",
    "PRIORITIES",
    "REQUEUE",
    "NoopNotifier",
    "Notification",
    "NotificationDriver",
    "NotificationFilter",
    "NotificationListener",
    "Notifier",
    "Payload",
    "SentNotification",
]

DRIVERS = ("noop", "messaging", "messagingv2", "log", "test")
"""The built-in notification drivers' names; installed packages may register more."""

_LISTENER_NAMES = frozenset({"HANDLED", "REQUEUE", "NotificationFilter", "NotificationListener"})


def __getattr__(name: str) -> object:
    if name in _LISTENER_NAMES:
        return getattr(importlib.import_module("steward.notify.listener"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
