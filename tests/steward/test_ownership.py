"""Who owns each task: transports, RPC servers and services close what they started.

A crashed task surfaces at once: the listener tells its server, the server its service, and the
service reports unhealthy and stops with the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from steward import Manager, RequestContext
from steward._aio import start
from steward.config import Settings, load_settings
from steward.db import Database
from steward.errors import ServiceFailed, ServiceStartError, TransportClosed
from steward.notify.messaging import MessagingDriver
from steward.registry import Registry
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports import memory
from steward.rpc.transports.base import BaseTransport, Transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 20.0


class Crash(Exception):
    pass


@pytest.fixture
def settings() -> Settings:
    return load_settings(overrides={"periodic_fuzzy_delay": "0", "graceful_shutdown_timeout": "5"})


@pytest.fixture
async def transport(settings: Settings) -> AsyncIterator[Transport]:
    async with get_transport("memory://ownership", settings=settings) as transport:
        yield transport


@pytest.fixture
async def registry(tmp_path: Path, settings: Settings) -> AsyncIterator[Registry]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}") as db:
        await db.upgrade()
        yield Registry(db, settings=settings)


class Echo(Manager):
    def __init__(self) -> None:
        super().__init__("node1", service_name="echo")
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def echo(self, context: RequestContext, value: Any) -> Any:
        return value

    async def slow(self, context: RequestContext) -> str:
        self.entered.set()
        await self.release.wait()
        return "done"


class CrashingClock(FakeClock):
    """A clock whose sleeps fail once told to: a bug in a service's loop."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self.broken.wait()
        raise Crash("the clock broke")


def is_healthy(service: Service) -> bool:
    return service.healthy


def is_running(service: Service) -> bool:
    return service.rpcserver is not None and service.rpcserver.running


def is_serving(server: RPCServer) -> bool:
    return server.running


def make_service(
    transport: Transport,
    registry: Registry,
    settings: Settings,
    clock: FakeClock | None = None,
    manager: Echo | None = None,
) -> Service:
    return Service(
        manager or Echo(),
        topic="echo",
        transport=transport,
        registry=registry,
        settings=settings,
        clock=clock or FakeClock(),
    )


async def test_a_transport_is_an_async_context_manager(settings: Settings) -> None:
    async with get_transport("memory://ctx", settings=settings) as transport:
        await transport.send(Target("t", fanout=True), b"{}")
    with pytest.raises(TransportClosed):
        await transport.send(Target("t", fanout=True), b"{}")


async def test_the_transport_owns_the_reply_consumer_and_stops_it_when_it_closes(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = Echo()
    service = make_service(transport, registry, settings, manager=manager)
    async with service:
        caller = get_transport("memory://ownership", settings=settings)
        client = RPCClient(caller, Target("echo"))
        assert await client.call(RequestContext(), "echo", value=1) == 1
        address = await caller.replies.address()
        broker = memory._broker_for("ownership")
        assert address in broker.reply_handlers
        # A call waiting for its reply when its transport closes fails at once, not at timeout.
        waiting = asyncio.create_task(client.call(RequestContext(), "slow"))
        await manager.entered.wait()
        await caller.aclose()
        with pytest.raises(TransportClosed, match="closed while call"):
            await waiting
        assert address not in broker.reply_handlers
        manager.release.set()


async def test_serve_reports_readiness_and_stops_gracefully_when_cancelled(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = Echo()
    service = make_service(transport, registry, settings, manager=manager)
    client = RPCClient(transport, Target("echo"))
    ready: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    class Status:
        def started(self, value: object = None) -> None:
            ready.set_result(value)

    serving = asyncio.create_task(service.serve(task_status=Status()))
    assert await ready is service
    assert is_healthy(service)
    assert await client.call(RequestContext(), "echo", value="up") == "up"
    # A request in flight when serving is cancelled finishes within the grace period.
    slow = asyncio.create_task(client.call(RequestContext(), "slow"))
    await manager.entered.wait()
    serving.cancel()
    manager.release.set()
    assert await slow == "done"
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not is_healthy(service)
    assert not is_running(service)


async def test_a_crashed_loop_fails_the_service_at_once(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    clock = CrashingClock()
    service = make_service(transport, registry, settings, clock)
    await service.start()
    assert is_healthy(service)
    clock.broken.set()
    with pytest.raises(ServiceFailed, match="the clock broke") as caught:
        await service.wait()
    assert isinstance(caught.value.__cause__, Crash)
    assert isinstance(service.failure, Crash)
    assert not is_healthy(service)
    assert not is_running(service)  # it was stopped


async def test_a_crashed_consumer_fails_its_server_and_its_service(
    transport: Transport,
    registry: Registry,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service(transport, registry, settings)
    original = memory._Consumer.run
    broken = asyncio.Event()

    async def run(consumer: memory._Consumer) -> None:
        if consumer.queue.name == "echo":
            await broken.wait()
            raise Crash("consumer died")
        await original(consumer)

    monkeypatch.setattr(memory._Consumer, "run", run)

    # Structured: serve() raises in the group that runs it, which cancels its other work.
    async def run_until_failure() -> None:
        async with asyncio.TaskGroup() as group:
            await start(group, service.serve)
            assert is_healthy(service)
            broken.set()
            await asyncio.Event().wait()  # cancelled by the failure

    with pytest.raises(ExceptionGroup) as caught:
        await run_until_failure()
    (failure,) = caught.value.exceptions
    assert isinstance(failure, ServiceFailed)
    assert "consumer died" in str(failure)
    assert not is_running(service)
    assert service.rpcserver is not None
    assert isinstance(service.rpcserver.failure, Crash)
    assert isinstance(service.failure, Crash)


async def test_an_rpc_server_serves_in_a_block_and_owns_its_requests(
    transport: Transport,
) -> None:
    manager = Echo()
    server = RPCServer(transport, Target("echo", "node1"), [manager])
    client = RPCClient(transport, Target("echo"))
    async with server:
        assert server.running
        slow = asyncio.create_task(client.call(RequestContext(), "slow"))
        await manager.entered.wait()
        assert server.in_flight == 1
        manager.release.set()
        assert await slow == "done"
    assert not is_serving(server)
    with pytest.raises(RuntimeError, match="closed"):
        await server.start()


async def test_a_crashed_notification_sender_fails_the_service(
    transport: Transport,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(
        overrides={"periodic_fuzzy_delay": "0", "notification_driver": "messaging"}
    )

    async def run(driver: MessagingDriver) -> None:
        raise Crash("sender died")

    monkeypatch.setattr(MessagingDriver, "_run", run)
    manager = Echo()
    service = make_service(transport, registry, settings, manager=manager)
    await service.start()
    manager.notifier.info(RequestContext(), "echo.ping", {})
    with pytest.raises(ServiceFailed, match="sender died"):
        async with asyncio.timeout(GUARD):  # a guard against hanging, not a measurement
            await service.wait()
    assert not is_running(service)


class SlowStart(Echo):
    """post_start_hook waits until released; cleanup_host is noted."""

    def __init__(self) -> None:
        super().__init__()
        self.in_post_start = asyncio.Event()
        self.cleaned = False

    async def post_start_hook(self) -> None:
        self.in_post_start.set()
        await asyncio.Event().wait()

    async def cleanup_host(self) -> None:
        self.cleaned = True


async def test_serve_cancelled_while_starting_undoes_the_start(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = SlowStart()
    service = make_service(transport, registry, settings, manager=manager)
    serving = asyncio.create_task(service.serve())
    async with asyncio.timeout(GUARD):
        await manager.in_post_start.wait()
    assert is_running(service)  # consuming since before post_start_hook, as in nova
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not is_running(service)  # its listener is gone: nothing consumes for it
    assert manager.cleaned
    assert service.service_ref is not None
    record = await registry.get("node1", "steward-echo")
    assert record is not None
    assert not await registry.is_up(record)  # it never heartbeated: nobody takes it for up


async def test_start_cancelled_before_ready_cancels_what_it_started(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    manager = SlowStart()
    service = make_service(transport, registry, settings, manager=manager)
    async with asyncio.TaskGroup() as group:
        starting = group.create_task(start(group, service.serve))
        async with asyncio.timeout(GUARD):
            await manager.in_post_start.wait()
        starting.cancel()
    assert not is_running(service)
    assert manager.cleaned


async def test_a_crash_in_the_transport_fails_the_services_on_it(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    service = make_service(transport, registry, settings)
    await service.start()
    assert isinstance(transport, BaseTransport)

    async def keeper() -> None:
        raise Crash("connection keeper died")

    transport.tasks.create_task(keeper(), name="keeper")
    with pytest.raises(ServiceFailed, match="connection keeper died"):
        async with asyncio.timeout(GUARD):
            await service.wait()
    assert not is_running(service)


async def test_a_transport_closed_under_a_running_service_fails_it(
    registry: Registry, settings: Settings
) -> None:
    transport = get_transport("memory://closed-under", settings=settings)
    service = make_service(transport, registry, settings)
    await service.start()
    await transport.aclose()
    assert not is_healthy(service)
    with pytest.raises(ServiceFailed, match="closed while its listener consumed"):
        async with asyncio.timeout(GUARD):
            await service.wait()


async def test_a_release_that_fails_does_not_keep_the_others_from_running(
    registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(Echo(), topic="echo", registry=registry, settings=settings,
                      clock=FakeClock())  # fmt: skip  # its own transport (memory://)
    await service.start()

    async def broken() -> None:
        raise OSError("the broker hung up")

    monkeypatch.setattr(service.transport, "aclose", broken)
    await service.stop()
    assert service.tasks.closed  # the group was closed after the failed transport close
    with pytest.raises(RuntimeError, match="after shutdown"):
        service.executor.submit(print)


async def test_wait_returns_after_a_start_that_failed(
    transport: Transport, registry: Registry, settings: Settings
) -> None:
    class Broken(Echo):
        def init_host(self, service_ref: object) -> None:
            raise RuntimeError("no disk")

    service = make_service(transport, registry, settings, manager=Broken())
    with pytest.raises(ServiceStartError):
        await service.start()
    async with asyncio.timeout(GUARD):
        await service.wait()  # a start undone is a stop: nothing to wait for
