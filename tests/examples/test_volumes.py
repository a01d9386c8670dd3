from __future__ import annotations

import pytest

from examples import volumes
from steward.testing import FakeClock


class JumpingClock(FakeClock):
    """Sleeping moves the clock at once: the example's loop runs in no real time."""

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@pytest.mark.parametrize("driver", ["fake", "file"])
async def test_example_runs_its_periodic_task_each_second_and_cleans_up(driver: str) -> None:
    clock = JumpingClock()
    manager = await volumes.main(driver=volumes.DRIVERS[driver], run_for=3.5, clock=clock)
    assert manager.audits == 4  # t = 0 (run_immediately), ~1, ~2, ~3
    assert manager.last_audit == (3, 111)
    assert not manager.root.exists()
