"""The fake clock: a :class:`~steward.clock.Clock` whose time moves only when the test says so.

Give it to whatever takes a ``clock=`` (a :class:`~steward.Manager`, whose periodic scheduler reads
it; a :class:`~steward.service.Service`, whose heartbeat and periodic loops sleep on it; a
:class:`~steward.notify.Notifier`, whose retries it paces), move it with :meth:`FakeClock.advance`
and assert exact virtual times; nothing sleeps for real. Re-exported by :mod:`steward.testing`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` moves it.

    :meth:`sleep` parks the caller until the clock reaches its deadline (now + the seconds asked
    for), and a move wakes the sleepers due by then in deadline order. Tests await
    :meth:`wait_for_sleepers` to know a task is parked before they move time. The loop's own
    time (``asyncio.timeout``, a call's timeout) is not this clock: see ``docs/testing.md``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._parked: asyncio.Condition | None = None

    def monotonic(self) -> float:
        """Return the virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers whose deadline has come."""
        if seconds < 0:
            raise ValueError(f"`seconds` must be >= 0 (a monotonic clock), got {seconds!r}")
        self.set(self._now + seconds)

    def set(self, now: float) -> None:
        """Move time to ``now`` (not before the current time) and wake the sleepers now due."""
        if now < self._now:
            raise ValueError(f"time cannot go back from {self._now!r} to {now!r}")
        self._now = float(now)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many callers are parked in :meth:`sleep`."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        """Park until the clock reaches now + ``seconds``; ``seconds <= 0`` only yields."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        parked = self._condition()
        async with parked:
            parked.notify_all()
        await future

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` callers are parked in :meth:`sleep`."""
        parked = self._condition()
        async with parked:
            await parked.wait_for(lambda: self.sleepers >= count)

    def _condition(self) -> asyncio.Condition:
        if self._parked is None:
            self._parked = asyncio.Condition()
        return self._parked

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={self.sleepers})"
