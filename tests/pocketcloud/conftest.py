"""Fixtures for pocketcloud's tests: a whole cloud in the test's process, and a client for it.

The cloud runs on its own ``memory://`` broker, a fresh SQLite file and a fake clock; periodic
tasks run only when a test calls ``manager.periodic_tasks`` after moving the clock. Notifications
use steward's ``test`` driver, so a test reads what each manager sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.pocketcloud.flows import (
    DEADLINE,
    CloudFactory,
    client_for,
    make_cloud_settings,
    make_steward_settings,
)

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.config import ENV_PREFIX
from steward.config import set_settings
from steward.testing import FakeClock


@pytest.fixture(autouse=True)
def _isolated_cloud_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POCKETCLOUD_* variable from the environment leaks into a test."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def steward_settings(tmp_path: Path) -> steward.Settings:
    """steward's settings for one test: its own broker and database; no periodic loop."""
    settings = make_steward_settings(tmp_path)
    set_settings(settings)
    return settings


@pytest.fixture
def cloud_factory(
    tmp_path: Path, steward_settings: steward.Settings, fake_clock: FakeClock
) -> CloudFactory:
    """Return ``make(**cloud_settings_overrides)``: an all-in-one cloud as a context manager."""

    @contextlib.asynccontextmanager
    async def make(
        *,
        compute_hosts: tuple[str, ...] = ("compute1", "compute2"),
        serve_rest: bool = False,
        **overrides: object,
    ) -> AsyncIterator[AllInOne]:
        cloud = AllInOne(
            make_cloud_settings(tmp_path, **overrides),
            settings=steward_settings,
            compute_hosts=compute_hosts,
            clock=fake_clock,
            serve_rest=serve_rest,
        )
        async with cloud:
            yield cloud
            # Let heartbeats woken by the test's clock finish before the services stop: a
            # heartbeat cancelled inside its transaction keeps SQLite's lock (see the report).
            async with asyncio.timeout(DEADLINE):
                await fake_clock.wait_for_sleepers(len(cloud.services))

    return make


@pytest.fixture
async def cloud(cloud_factory: CloudFactory) -> AsyncIterator[AllInOne]:
    """A running cloud: fake drivers, FlatManager, two compute hosts."""
    async with cloud_factory() as running:
        yield running


@pytest.fixture
async def client(cloud: AllInOne) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the ``cloud`` fixture's REST API."""
    async with client_for(cloud) as api:
        yield api
