"""steward's pytest plugin: fixtures for testing managers and services without a broker.

pytest loads it through steward's ``pytest11`` entry point (disable it with ``-p no:steward``).
Every fixture is function-scoped and cleans up after the test:

``fake_clock``
    a :class:`~steward.testing.FakeClock` at t=1000 (not 0, so that code taking 0 for "never"
    shows), moving only when the test advances it;
``memory_transport``
    a ``memory://`` transport on a broker of the test's own name, closed after the test;
``notifications``
    a :class:`~steward.testing.CapturedNotifications`: the notifications of the managers the
    test attaches to it, and of every manager ``start_service`` starts;
``start_service``
    ``await start_service(manager, topic="volume")`` starts a :class:`~steward.service.Service`
    around ``manager`` on ``memory_transport``, with the ``fake_clock`` driving its heartbeat and
    periodic loops and a registry in a SQLite file of the test's own; the services are stopped
    after the test, last started first.

The async fixtures need pytest-asyncio (they work in its ``strict`` and ``auto`` modes alike);
without it, asking for one fails with a message saying so. Importing this module imports only
the light part of steward; the service, registry and database come with ``start_service``.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from steward.testing._clock import FakeClock
from steward.testing._notifications import CapturedNotifications

if typing.TYPE_CHECKING:
    from steward.config import Settings
    from steward.manager import Manager
    from steward.rpc.transports.base import Transport
    from steward.service import Service

__all__ = [
    "StartService",
    "fake_clock",
    "memory_transport",
    "notifications",
    "start_service",
]

FAKE_CLOCK_START = 1000.0
"""Where ``fake_clock`` starts."""


class StartService(typing.Protocol):
    """The ``start_service`` fixture: start a service around ``manager``; return it running."""

    async def __call__(
        self,
        manager: Manager,
        *,
        topic: str,
        binary: str | None = None,
        settings: Settings | None = None,
        transport: Transport | None = None,
        version: int = 0,
    ) -> Service:
        """Start a :class:`~steward.service.Service` around ``manager``; return it started."""
        ...


_Fixture = typing.TypeVar("_Fixture", bound=Callable[..., typing.Any])

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency of steward

    def _async_fixture(function: _Fixture) -> _Fixture:
        name = function.__name__

        def needs_pytest_asyncio() -> typing.NoReturn:
            pytest.fail(f"steward's `{name}` fixture is async: install pytest-asyncio to use it")

        needs_pytest_asyncio.__name__ = name
        needs_pytest_asyncio.__doc__ = function.__doc__
        return typing.cast("_Fixture", pytest.fixture(needs_pytest_asyncio))

else:

    def _async_fixture(function: _Fixture) -> _Fixture:
        return typing.cast("_Fixture", pytest_asyncio.fixture(function))


@pytest.fixture
def fake_clock() -> FakeClock:
    """Return a clock at t=1000 that moves only when the test advances it."""
    return FakeClock(start=FAKE_CLOCK_START)


@pytest.fixture
def notifications() -> CapturedNotifications:
    """Return where the test's managers' notifications are kept (the ``test`` driver)."""
    return CapturedNotifications()


@_async_fixture
async def memory_transport() -> AsyncIterator[Transport]:
    """Yield a ``memory://`` transport on a broker of the test's own; close it after the test."""
    from steward.rpc import get_transport  # noqa: PLC0415 - loaded with the fixture, not the plugin

    transport = get_transport(f"memory://steward-test-{uuid.uuid4().hex[:12]}")
    try:
        yield transport
    finally:
        await transport.close()


@_async_fixture
async def start_service(
    memory_transport: Transport,
    fake_clock: FakeClock,
    notifications: CapturedNotifications,
    tmp_path: Path,
) -> AsyncIterator[StartService]:
    """Start services around managers, on ``memory_transport`` and ``fake_clock``; stop them after.

    ``settings`` default to the process's with ``periodic_fuzzy_delay`` 0 (the first periodic
    pass comes at once). A manager whose notifier sends nowhere (``noop``) gets one that keeps
    its notifications in ``notifications``. The registry, shared by the test's services, is a
    SQLite file in ``tmp_path``.
    """
    from steward.config import load_settings  # noqa: PLC0415 - the heavy part, when used
    from steward.db import Database  # noqa: PLC0415
    from steward.registry import Registry  # noqa: PLC0415
    from steward.service import Service  # noqa: PLC0415

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'steward-registry.db'}")
    services: list[Service] = []
    schema_ready = False

    async def start(
        manager: Manager,
        *,
        topic: str,
        binary: str | None = None,
        settings: Settings | None = None,
        transport: Transport | None = None,
        version: int = 0,
    ) -> Service:
        nonlocal schema_ready
        if settings is None:
            settings = load_settings(overrides={"periodic_fuzzy_delay": "0"})
        if not schema_ready:
            await database.upgrade()
            schema_ready = True
        if not manager.notifier.is_enabled():
            notifications.attach(manager)
        service = Service(
            manager,
            topic=topic,
            binary=binary,
            transport=transport if transport is not None else memory_transport,
            registry=Registry(database, settings=settings),
            settings=settings,
            clock=fake_clock,
            version=version,
        )
        await service.start()
        services.append(service)
        return service

    try:
        yield start
    finally:
        try:
            for service in reversed(services):
                await service.stop()
        finally:
            await database.dispose()
