"""The Service hands its Manager its collaborators, once, when it wraps it (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from steward import BindingError, Manager, RequestContext, periodic_task
from steward.clock import Clock
from steward.config import Settings, load_settings
from steward.db import Database
from steward.errors import DriverNotFound, NoSuchMethod
from steward.notify import Notifier
from steward.registry import Registry
from steward.rpc import RPCClient, Target, get_transport
from steward.rpc.transports.base import Transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 20.0


def make_settings(**overrides: str) -> Settings:
    return load_settings(
        overrides={"periodic_fuzzy_delay": "0", "graceful_shutdown_timeout": "5", **overrides}
    )


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def transport(settings: Settings) -> AsyncIterator[Transport]:
    transport = get_transport("memory://", settings=settings)
    yield transport
    await transport.close()


@pytest.fixture
async def registry(tmp_path: Path, settings: Settings) -> AsyncIterator[Registry]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}") as db:
        await db.upgrade()
        yield Registry(db, settings=settings)


class Sweeper(Manager[object]):
    """Notes what it has in init_host; sweeps as a cluster singleton."""

    def __init__(
        self,
        host: str | None = None,
        db: object | None = None,
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
        label: str = "",
    ) -> None:
        super().__init__(host, db, "sweeper", clock=clock, settings=settings)
        self.label = label
        self.in_init_host: tuple[object, str] | None = None
        self.swept = 0

    def init_host(self, service_ref: object | None) -> None:
        self.in_init_host = (self.db, self.notifier.driver)

    async def echo(self, context: RequestContext, value: int) -> int:
        return value

    @periodic_task(spacing=10, run_immediately=True, singleton=True)
    async def sweep(self, context: RequestContext) -> None:
        self.swept += 1


def serve(
    manager: Manager, transport: Transport, registry: Registry, settings: Settings
) -> Service:
    return Service(manager, topic="sweeper", transport=transport, registry=registry,
                   settings=settings, clock=FakeClock())  # fmt: skip


async def test_the_service_hands_db_notifier_and_executor_before_init_host(
    transport: Transport, registry: Registry
) -> None:
    settings = make_settings(notification_driver="test")
    manager = Sweeper("node1", settings=settings)
    service = serve(manager, transport, registry, settings)
    bindings = manager.bindings
    assert bindings is not None
    assert manager.db is registry.db
    assert manager.notifier is bindings.notifier
    assert (manager.notifier.driver, manager.notifier.publisher_id) == ("test", "sweeper.node1")
    assert manager.periodic_scheduler.executor is service.executor
    assert bindings.singleton_gate is not None
    await service.start()
    try:
        assert manager.in_init_host == (registry.db, "test")
    finally:
        await service.stop()


async def test_a_manager_built_with_its_own_db_keeps_it(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    own = object()
    manager = Sweeper("node1", own, settings=settings)
    service = serve(manager, transport, registry, settings)
    await service.start()
    try:
        assert manager.in_init_host == (own, "noop")
    finally:
        await service.stop()


async def test_without_a_notification_driver_the_manager_keeps_its_notifier(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = Sweeper("node1", settings=settings)
    given = Notifier(None, "sweeper.node1", driver="test", topics=(), settings=settings)
    manager.notifier = given
    service = serve(manager, transport, registry, settings)
    try:
        assert manager.notifier is given
    finally:
        await service.stop()


async def test_a_manager_runs_in_one_service(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = Sweeper("node1", settings=settings)
    first = serve(manager, transport, registry, settings)
    bindings = manager.bindings
    try:
        with pytest.raises(BindingError, match="a manager runs in one service"):
            serve(manager, transport, registry, settings)
        assert manager.bindings is bindings
        assert manager.periodic_scheduler.executor is first.executor
    finally:
        await first.stop()


async def test_the_singleton_gate_is_handed_over_with_the_rest(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    # Neither service is started: the gate arrived when each wrapped its manager.
    first = serve(Sweeper("a", settings=settings), transport, registry, settings)
    second = serve(Sweeper("b", settings=settings), transport, registry, settings)
    try:
        for service in (first, second):
            await service.manager.periodic_tasks(RequestContext())
        assert [s.manager.swept for s in (first, second)] == [1, 0]  # type: ignore[attr-defined]
    finally:
        await first.stop()
        await second.stop()


async def test_bind_is_not_callable_over_rpc(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    service = serve(Sweeper("node1", settings=settings), transport, registry, settings)
    await service.start()
    try:
        client = RPCClient(transport, Target("sweeper"), timeout=GUARD)
        assert await client.call(RequestContext(), "echo", value=7) == 7
        with pytest.raises(NoSuchMethod):
            await client.call(RequestContext(), "bind", bindings={})
    finally:
        await service.stop()


async def test_create_builds_the_manager_with_the_services_settings_and_clock(
    transport: Transport, registry: Registry
) -> None:
    settings = make_settings(host="node9")
    clock = FakeClock()
    options: dict[str, Any] = {"label": "from create"}
    service = Service.create(Sweeper, topic="sweeper", transport=transport, registry=registry,
                             settings=settings, clock=clock, **options)  # fmt: skip
    try:
        manager = service.manager
        assert isinstance(manager, Sweeper)
        assert (manager.host, service.host, manager.label) == ("node9", "node9", "from create")
        assert manager.periodic_scheduler.clock is clock
        assert manager.bindings is not None
        assert manager.db is registry.db
    finally:
        await service.stop()
    named = Service.create(Sweeper, topic="sweeper", host="given", transport=transport,
                           registry=registry, settings=settings)  # fmt: skip
    try:
        assert named.manager.host == "given"
    finally:
        await named.stop()


async def test_the_notification_driver_setting_takes_any_registered_name(
    transport: Transport, registry: Registry
) -> None:
    for name in ("messagingv2", "steward.notify.local:LogDriver"):
        service = Service(
            Sweeper("node1"), topic="sweeper", transport=transport, registry=registry,
            settings=make_settings(notification_driver=name),
        )  # fmt: skip
        assert service.manager.notifier.driver == name
    with pytest.raises(DriverNotFound, match="nope"):
        Service(
            Sweeper("node1"), topic="sweeper", transport=transport, registry=registry,
            settings=make_settings(notification_driver="nope"),
        )  # fmt: skip
