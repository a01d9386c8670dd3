from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from steward import Manager, RequestContext, periodic_task
from steward.config import Settings, load_settings
from steward.db import Database
from steward.errors import MessageUndeliverable, ServiceStartError
from steward.registry import Registry, ServiceRecord, service_leases
from steward.rpc import RPCClient, Target, get_transport
from steward.rpc.transports.base import Transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 20.0


def make_settings(**overrides: str) -> Settings:
    values = {
        "report_interval": "10",
        "service_down_time": "60",
        "periodic_fuzzy_delay": "0",
        "periodic_interval_max": "60",
        "graceful_shutdown_timeout": "5",
        **overrides,
    }
    return load_settings(overrides=values)


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


class VolumeManager(Manager):
    def __init__(self, host: str = "node1", **kwargs: Any) -> None:
        super().__init__(host, service_name="volume", **kwargs)
        self.events: list[tuple[str, Any]] = []
        self.audits = 0
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    def init_host(self, service_ref: object | None) -> None:
        assert self.db is not None, "the database is there from init_host on"
        self.events.append(("init_host", service_ref))

    async def pre_start_hook(self, service_ref: object | None) -> None:
        self.events.append(("pre_start_hook", service_ref))

    def post_start_hook(self) -> None:
        self.events.append(("post_start_hook", None))

    async def cleanup_host(self) -> None:
        self.events.append(("cleanup_host", None))

    def reset(self) -> None:
        self.events.append(("reset", None))

    async def create_volume(self, context: RequestContext, size: int) -> dict[str, Any]:
        return {"host": self.host, "size": size, "request_id": context.request_id}

    async def slow(self, context: RequestContext) -> str:
        self.entered.set()
        await self.release.wait()
        return "done"

    @periodic_task(spacing=30, run_immediately=True)
    async def audit(self, context: RequestContext) -> None:
        self.audits += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def service(
    transport: Transport, registry: Registry, settings: Settings, clock: FakeClock
) -> AsyncIterator[Service]:
    service = Service(
        VolumeManager(clock=clock, settings=settings),
        topic="volume",
        transport=transport,
        registry=registry,
        settings=settings,
        clock=clock,
    )
    yield service
    await service.stop()


def names(manager: Manager) -> list[str]:
    return [name for name, _ in typing_events(manager)]


def typing_events(manager: Manager) -> list[tuple[str, Any]]:
    assert isinstance(manager, VolumeManager)
    return manager.events


async def test_start_follows_nova_order(service: Service, registry: Registry) -> None:
    await service.start()
    events = typing_events(service.manager)
    assert [name for name, _ in events] == ["init_host", "pre_start_hook", "post_start_hook"]
    assert events[0][1] is None  # no record before the first start
    record = events[1][1]
    assert isinstance(record, ServiceRecord)
    assert (record.host, record.binary, record.topic) == ("node1", "steward-volume", "volume")
    assert service.rpcserver is not None
    assert service.rpcserver.running


async def test_a_restart_gives_init_host_the_previous_record(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    first = Service(VolumeManager(settings=settings), topic="volume", transport=transport,
                    registry=registry, settings=settings, clock=FakeClock())  # fmt: skip
    await first.start()
    await first.stop()
    again = Service(VolumeManager(settings=settings), topic="volume", transport=transport,
                    registry=registry, settings=settings, clock=FakeClock())  # fmt: skip
    await again.start()
    try:
        previous = typing_events(again.manager)[0][1]
        assert isinstance(previous, ServiceRecord)
        assert previous.id == first.service_ref.id if first.service_ref else False
    finally:
        await again.stop()


async def test_manager_base_api_and_host_topic_are_served(
    service: Service, transport: Transport
) -> None:
    await service.start()
    context = RequestContext()
    client = RPCClient(transport, Target("volume"), timeout=GUARD)
    assert await client.call(context, "create_volume", size=3) == {
        "host": "node1",
        "size": 3,
        "request_id": context.request_id,
    }
    assert (await client.prepare(server="node1").call(context, "create_volume", size=1))[
        "size"
    ] == 1
    base = client.prepare(namespace="baseapi", version="1.1")
    assert await base.call(context, "ping", arg={"x": 1}) == {"service": "volume", "arg": {"x": 1}}
    assert await base.call(context, "get_backdoor_port") is None


async def test_heartbeats_follow_report_interval_on_the_clock(
    service: Service, registry: Registry, clock: FakeClock
) -> None:
    await service.start()
    await clock.wait_for_sleepers(2)  # the heartbeat and the periodic loop are parked
    record = await registry.get("node1", "steward-volume")
    assert record is not None
    assert record.report_count == 1
    assert await registry.is_up(record)
    for expected in (2, 3):
        clock.advance(10)
        await clock.wait_for_sleepers(2)
        record = await registry.get("node1", "steward-volume")
        assert record is not None
        assert record.report_count == expected


async def test_the_rpc_server_is_sized_by_the_services_own_settings(
    transport: Transport, registry: Registry, clock: FakeClock
) -> None:
    # The process's settings say 64 threads; the service was handed settings that say 3.
    own = make_settings(executor_thread_pool_size="3")
    manager = VolumeManager(clock=clock, settings=own)
    service = Service(manager, topic="volume", transport=transport, registry=registry,
                      settings=own, clock=clock)  # fmt: skip
    await service.start()
    try:
        assert service.rpcserver is not None
        assert service.rpcserver.prefetch == 3
    finally:
        await service.stop()


async def test_a_graceful_stop_marks_the_service_down_at_once(
    service: Service, registry: Registry, clock: FakeClock
) -> None:
    await service.start()
    await clock.wait_for_sleepers(2)
    record = await registry.get("node1", "steward-volume")
    assert record is not None
    assert await registry.is_up(record)
    await service.stop()  # no clock advance: down now, not service_down_time later
    record = await registry.get("node1", "steward-volume")
    assert record is not None
    assert not await registry.is_up(record)


async def test_periodic_loop_sleeps_what_periodic_tasks_returns(
    service: Service, clock: FakeClock
) -> None:
    manager = service.manager
    assert isinstance(manager, VolumeManager)
    manager.periodic_scheduler.jitter = lambda: 0.0
    await service.start()
    await clock.wait_for_sleepers(2)
    assert manager.audits == 1  # run_immediately, no fuzzy delay
    clock.advance(29)
    await clock.wait_for_sleepers(2)
    assert manager.audits == 1
    clock.advance(1)
    await clock.wait_for_sleepers(2)
    assert manager.audits == 2


async def test_periodic_enable_off_runs_no_tasks(
    transport: Transport, registry: Registry, clock: FakeClock
) -> None:
    settings = make_settings(periodic_enable="false")
    service = Service(VolumeManager(settings=settings), topic="volume", transport=transport,
                      registry=registry, settings=settings, clock=clock)  # fmt: skip
    await service.start()
    try:
        await clock.wait_for_sleepers(1)
        clock.advance(100)
        await clock.wait_for_sleepers(1)
        manager = service.manager
        assert isinstance(manager, VolumeManager)
        assert manager.audits == 0
    finally:
        await service.stop()


class BrokenStart(VolumeManager):
    async def pre_start_hook(self, service_ref: object | None) -> None:
        raise OSError("no backing store")


async def test_a_failing_hook_stops_start_up_and_undoes_it(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = BrokenStart(settings=settings)
    service = Service(manager, topic="volume", transport=transport,
                      registry=registry, settings=settings, clock=FakeClock())  # fmt: skip
    with pytest.raises(ServiceStartError, match="while pre_start_hook: no backing store"):
        await service.start()
    assert service.rpcserver is None
    # init_host had run, so the manager gets to clean up what it took.
    assert names(manager) == ["init_host", "cleanup_host"]
    with pytest.raises(MessageUndeliverable):  # nothing consumes the topic
        await RPCClient(transport, Target("volume"), timeout=GUARD).call(
            None, "create_volume", size=1
        )


async def test_stop_lets_requests_finish_then_cleans_up(
    service: Service, transport: Transport
) -> None:
    await service.start()
    manager = service.manager
    assert isinstance(manager, VolumeManager)
    call = asyncio.create_task(
        RPCClient(transport, Target("volume"), timeout=GUARD).call(None, "slow")
    )
    async with asyncio.timeout(GUARD):
        await manager.entered.wait()
    stopping = asyncio.create_task(service.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    manager.release.set()
    async with asyncio.timeout(GUARD):
        assert await call == "done"
        await stopping
    assert names(manager)[-1] == "cleanup_host"


async def test_reset_applies_settings_and_calls_the_hook(service: Service) -> None:
    await service.start()
    reloaded = make_settings(run_external_periodic_tasks="false", report_interval="3")
    await service.reset(reloaded)
    assert service.settings.report_interval == 3
    assert service.manager.periodic_scheduler.run_external is False
    assert names(service.manager)[-1] == "reset"


class FlakyRegistry(Registry):
    """The registry's database goes away for a while."""

    failures = 0

    async def heartbeat(self, record: ServiceRecord) -> ServiceRecord:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("database away")
        return await super().heartbeat(record)


@pytest.fixture
def service_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="steward.service"):
        yield caplog


async def test_lost_registry_is_logged_once_and_its_recovery_once(
    transport: Transport, registry: Registry, settings: Settings, clock: FakeClock,
    service_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    flaky = FlakyRegistry(registry.db, settings=settings)
    service = Service(VolumeManager(settings=settings), topic="volume", transport=transport,
                      registry=flaky, settings=settings, clock=clock)  # fmt: skip
    await service.start()
    try:
        await clock.wait_for_sleepers(2)
        flaky.failures = 3
        for _ in range(4):
            clock.advance(10)
            await clock.wait_for_sleepers(2)
        messages = [record.getMessage() for record in service_log.records]
        assert messages.count("Lost connection to the registry; heartbeats will be retried") == 1
        assert messages.count("Connection to the registry recovered; heartbeats resumed") == 1
        record = await registry.get("node1", "steward-volume")
        assert record is not None
        assert record.report_count == 2  # the first beat and the one after recovery
    finally:
        await service.stop()


# --- cluster-singleton periodic tasks ----------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.active = 0
        self.max_active = 0


class Janitor(Manager):
    counter: Counter

    @periodic_task(spacing=10, run_immediately=True, singleton=True)
    async def sweep(self, context: RequestContext) -> None:
        self.counter.active += 1
        self.counter.max_active = max(self.counter.max_active, self.counter.active)
        self.counter.runs.append(self.host)
        await asyncio.sleep(0)
        self.counter.active -= 1


async def start_janitor(
    host: str, counter: Counter, transport: Transport, registry: Registry, settings: Settings
) -> tuple[Service, FakeClock]:
    clock = FakeClock()
    manager = Janitor(host, service_name="janitor", clock=clock, settings=settings)
    manager.counter = counter
    manager.periodic_scheduler.jitter = lambda: 0.0
    service = Service(manager, topic="janitor", transport=transport, registry=registry,
                      settings=settings, clock=clock)  # fmt: skip
    await service.start()
    await clock.wait_for_sleepers(2)
    return service, clock


async def tick(*clocks: FakeClock, seconds: float = 10) -> None:
    for clock in clocks:
        clock.advance(seconds)
        await clock.wait_for_sleepers(2)


@pytest.fixture
async def any_registry(database_url: str, settings: Settings) -> AsyncIterator[Registry]:
    """A registry on each database steward supports: SQLite and PostgreSQL."""
    async with Database(database_url) as db:
        await db.upgrade()
        yield Registry(db, settings=settings)


async def test_singleton_task_runs_on_one_service_and_fails_over(
    transport: Transport, any_registry: Registry, settings: Settings
) -> None:
    registry = any_registry
    counter = Counter()
    first, first_clock = await start_janitor("a", counter, transport, registry, settings)
    second, second_clock = await start_janitor("b", counter, transport, registry, settings)
    try:
        for _ in range(3):
            await tick(first_clock, second_clock)
        assert counter.runs == ["a"] * 4
        # A graceful stop releases the lease at once: the other service takes over.
        await first.stop()
        await tick(second_clock)
        assert counter.runs[-1] == "b"
        # A holder that dies keeps its lease until it expires; then the other takes over.
        third, third_clock = await start_janitor("c", counter, transport, registry, settings)
        try:
            await tick(second_clock, third_clock)
            before = list(counter.runs)
            assert before[-1] == "b"
            assert second._loops
            for loop in second._loops:
                loop.cancel()  # "kill -9": no more heartbeats, no release
            async with registry.db.session() as session:  # ...and service_down_time passes
                await session.execute(
                    sa.update(service_leases).values(expires_at=datetime.datetime(2000, 1, 1))
                )
            await tick(third_clock)
            assert counter.runs[-1] == "c"
        finally:
            await third.stop()
    finally:
        await second.stop()
    assert counter.max_active == 1


async def test_report_shows_rpc_periodic_stacks_and_masked_config(
    transport: Transport, registry: Registry, clock: FakeClock
) -> None:
    from steward.report import format_report

    settings = make_settings(transport_url="amqp://guest:hunter2@127.0.0.1:5672/")
    manager = VolumeManager(clock=clock, settings=settings)
    service = Service(manager, topic="volume", transport=transport, registry=registry,
                      settings=settings, clock=clock)  # fmt: skip
    await service.start()
    try:
        client = RPCClient(transport, Target("volume"), timeout=GUARD)
        await client.call(None, "create_volume", size=1)
        await client.call(None, "create_volume", size=2)
        base = client.prepare(namespace="baseapi", version="1.1")
        report = await base.call(None, "report")
    finally:
        await service.stop()
    (section,) = report["services"]
    assert section["binary"] == "steward-volume"
    assert section["rpc"]["methods"]["create_volume"]["calls"] == 2
    assert section["rpc"]["handled"] >= 2
    (audit,) = section["periodic_tasks"]
    assert audit["name"] == "audit"
    assert audit["runs"] == 1
    assert report["configuration"]["transport_url"] == "amqp://guest:***@127.0.0.1:5672/"
    assert any("steward-volume" in task["name"] for task in report["asyncio_tasks"])
    assert any(thread["name"] == "MainThread" for thread in report["threads"])
    text = format_report(report)
    assert "hunter2" not in text
    assert "rpc create_volume: 2 calls, 0 failed" in text
    assert "periodic audit every 30.0 s: 1 runs" in text


async def test_a_schema_behind_stops_start_up_on_postgresql_and_sqlite_upgrades(
    database_url: str, transport: Transport
) -> None:
    settings = make_settings(database_url=database_url)
    service = Service(VolumeManager(settings=settings), topic="volume", transport=transport,
                      settings=settings, clock=FakeClock())  # fmt: skip
    if database_url.startswith("sqlite"):
        await service.start()
        await service.stop()
        async with Database(database_url) as db:
            assert await db.current_revision() == Database.head_revision()
        return
    with pytest.raises(ServiceStartError, match=r"run `steward db upgrade`"):
        await service.start()
