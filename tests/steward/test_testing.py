from __future__ import annotations

import asyncio

import pytest

from steward.clock import Clock, SystemClock
from steward.testing import FakeClock


def test_fake_and_system_clocks_are_clocks() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=5)
    assert clock.monotonic() == 5
    clock.advance(2.5)
    assert clock.monotonic() == 7.5
    clock.set(10)
    assert clock.monotonic() == 10
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(9)
    with pytest.raises(ValueError, match="must be >= 0"):
        clock.advance(-1)


async def test_sleepers_wake_in_deadline_order_at_exact_times() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10))]
    await clock.wait_for_sleepers(2)
    clock.advance(15)
    await asyncio.wait_for(tasks[1], timeout=5)
    assert woke == [("a", 15.0)]
    assert clock.sleepers == 1
    clock.advance(5)
    await asyncio.wait_for(tasks[0], timeout=5)
    assert woke == [("a", 15.0), ("b", 20.0)]


async def test_zero_sleep_only_yields() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    assert clock.sleepers == 0
