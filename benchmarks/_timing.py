"""Timing loops: a calibrated batch size, then the median of several rounds.

The method of :mod:`timeit`: a *batch* runs the measured operation ``number`` times and returns
the seconds it took (it reads :func:`time.perf_counter` itself, so set-up outside its loop is not
counted). The batch size grows until one batch lasts a good fraction of a round, then
:attr:`Budget.rounds` batches of that size run with the garbage collector off, and the figure is
the median round's time per operation: a round disturbed by the machine moves the median little.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import statistics
from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "FULL",
    "QUICK",
    "AsyncBatch",
    "Batch",
    "Budget",
    "Timing",
    "acalibrate",
    "ameasure",
    "calibrate",
    "measure",
]

Batch = Callable[[int], float]
"""Runs the measured operation ``number`` times; returns the seconds that took."""

AsyncBatch = Callable[[int], Awaitable[float]]
""":data:`Batch` for an operation that is awaited."""


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """How long one figure is measured: ``rounds`` batches of about ``round_seconds`` each."""

    rounds: int
    round_seconds: float


FULL = Budget(rounds=7, round_seconds=0.2)
"""The budget of a real run: about 1.5 s per figure."""

QUICK = Budget(rounds=3, round_seconds=0.002)
"""A smoke run's budget: the code paths run, the figures mean little."""

# Calibration stops growing the batch once one lasts this fraction of a round, then scales it.
_CALIBRATED = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """One figure: seconds per operation of each round, and their median."""

    number: int
    """Operations per round."""
    per_round: tuple[float, ...]
    """Seconds per operation in each round, in the order they ran."""

    @property
    def median(self) -> float:
        """Seconds per operation of the median round."""
        return statistics.median(self.per_round)

    @property
    def spread(self) -> float:
        """(slowest round - fastest round) / median: how much the rounds disagreed."""
        return (max(self.per_round) - min(self.per_round)) / self.median

    @property
    def operations(self) -> int:
        """Operations run in the rounds (calibration not counted)."""
        return self.number * len(self.per_round)


def _next_number(number: int, elapsed: float, budget: Budget) -> int | None:
    """Return the next calibration batch size, or None once ``number`` is the round's size."""
    target = budget.round_seconds
    if elapsed >= target * _CALIBRATED:
        return None
    if elapsed <= 0 or elapsed < target * _CALIBRATED / 10:
        return number * 10
    return max(number + 1, math.ceil(number * target / elapsed))


def _round_number(number: int, elapsed: float, budget: Budget) -> int:
    return max(1, round(number * budget.round_seconds / max(elapsed, 1e-9)))


def calibrate(batch: Batch, budget: Budget) -> int:
    """Return how many operations make a round of ``budget``; the batches run warm things up."""
    number = 1
    elapsed = batch(number)
    while (grown := _next_number(number, elapsed, budget)) is not None:
        number = grown
        elapsed = batch(number)
    return _round_number(number, elapsed, budget)


async def acalibrate(batch: AsyncBatch, budget: Budget) -> int:
    """:func:`calibrate` for an operation that is awaited."""
    number = 1
    elapsed = await batch(number)
    while (grown := _next_number(number, elapsed, budget)) is not None:
        number = grown
        elapsed = await batch(number)
    return _round_number(number, elapsed, budget)


def measure(batch: Batch, budget: Budget, *, number: int | None = None) -> Timing:
    """Time the operation ``batch`` runs, ``number`` times a round.

    ``number`` None calibrates it (:func:`calibrate`); given, one batch of ``number`` warms up
    instead, so two sides given the same ``number`` run exactly the same operations.
    """
    if number is None:
        number = calibrate(batch, budget)
    else:
        batch(number)
    with _gc_disabled():
        per_round = [batch(number) / number for _ in range(budget.rounds)]
    return Timing(number=number, per_round=tuple(per_round))


async def ameasure(batch: AsyncBatch, budget: Budget, *, number: int | None = None) -> Timing:
    """:func:`measure` for an operation that is awaited; run it on the loop."""
    if number is None:
        number = await acalibrate(batch, budget)
    else:
        await batch(number)
    with _gc_disabled():
        per_round = [await batch(number) / number for _ in range(budget.rounds)]
    return Timing(number=number, per_round=tuple(per_round))


@contextlib.contextmanager
def _gc_disabled() -> Iterator[None]:
    """Keep the collector out of the rounds, as :mod:`timeit` does."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
