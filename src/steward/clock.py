"""The clock scheduling code reads time from.

Everything in steward that schedules (periodic tasks, and later heartbeats and timeouts) takes a
:class:`Clock` instead of calling ``time.monotonic()`` or ``asyncio.sleep()`` itself, so tests can
drive it with :class:`steward.testing.FakeClock` and assert exact virtual times without sleeping
(the idea of trio's ``MockClock``).
"""

from __future__ import annotations

import asyncio
import time
import typing

__all__ = ["Clock", "SystemClock"]


@typing.runtime_checkable
class Clock(typing.Protocol):
    """What a scheduler needs of time: a monotonic reading and a way to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
