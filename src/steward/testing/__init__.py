"""Tools for testing code built on steward, as steward tests itself.

Public and supported, like ``trio.testing``. Importing this package does not import pytest:

* :class:`FakeClock` — a :class:`~steward.clock.Clock` whose time moves only when the test says
  so, for managers, services and notifiers (``clock=``);
* :class:`CapturedNotifications` — the notifications a manager emitted, kept by the ``test``
  notification driver;
* :mod:`steward.testing.plugin` — the pytest plugin, loaded by pytest through steward's
  ``pytest11`` entry point: the fixtures ``fake_clock``, ``memory_transport``, ``notifications``
  and ``start_service``;
* :mod:`steward.testing.conformance` — the transport conformance suite a transport proves itself
  with (it imports pytest, pytest-asyncio and hypothesis; import it from a test module only).

``docs/testing.md`` shows them at work.
"""

from __future__ import annotations

from steward.testing._clock import FakeClock
from steward.testing._notifications import CapturedNotifications

__all__ = ["CapturedNotifications", "FakeClock"]
