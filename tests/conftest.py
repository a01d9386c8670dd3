"""Fixtures shared by steward's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from steward import config
from steward.testing import FakeClock


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from default settings: no STEWARD_* variables, no installed settings."""
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    config.set_settings(None)
    yield
    config.set_settings(None)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock at t=1000 that moves only when the test advances it."""
    return FakeClock(start=1000.0)
