"""The clock scheduling code reads time from.

What steward schedules takes a :class:`Clock` instead of calling ``time.monotonic()`` or
``asyncio.sleep()`` itself: the periodic-task scheduler, the service's heartbeat and periodic-task
loops, and the notifier's retries while the broker is away. Tests drive them with
:class:`steward.testing.FakeClock` and assert exact virtual times without sleeping (the idea of
trio's ``MockClock``). Timeouts are not on this clock: an RPC call's timeout, a grace period and
the transports' reconnection delays are ``asyncio`` timers on the event loop's own time, which a
test makes virtual with a virtual loop clock (``docs/testing.md``).
"""

from __future__ import annotations

import asyncio
import time
import typing

__all__ = ["Clock", "SystemClock"]


@typing.runtime_checkable
class Clock(typing.Protocol):
    """What scheduling code needs of time: a monotonic reading and a way to wait on it."""

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
