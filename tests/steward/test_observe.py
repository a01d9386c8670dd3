from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from steward import Manager, RequestContext, periodic_task
from steward.config import Settings, load_settings
from steward.db import Database
from steward.observe import Observer
from steward.registry import Registry
from steward.rpc import RPCClient, Target, get_transport
from steward.rpc.transports.base import Transport
from steward.service import Service
from steward.testing import FakeClock


class Worker(Manager):
    async def work(self, context: RequestContext, fail: bool = False) -> str:
        self.notifier.info(context, "work.start", {"fail": fail})
        if fail:
            raise ValueError("asked to fail")
        return "done"

    @periodic_task(spacing=60, run_immediately=True)
    def tidy(self, context: RequestContext) -> None:
        return None


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        overrides={"periodic_fuzzy_delay": "0", "notification_driver": "messaging"}
    )


@pytest.fixture
async def transport(settings: Settings) -> AsyncIterator[Transport]:
    transport = get_transport("memory://", settings=settings)
    yield transport
    await transport.close()


@pytest.fixture
async def service(
    tmp_path: Path, settings: Settings, transport: Transport
) -> AsyncIterator[Service]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as db:
        await db.upgrade()
        clock = FakeClock()
        manager = Worker(host="h1", service_name="worker", clock=clock, settings=settings)
        service = Service(manager, topic="worker", transport=transport, settings=settings,
                          registry=Registry(db, settings=settings), clock=clock)  # fmt: skip
        yield service
        await service.stop()


@pytest.fixture
async def observer(service: Service) -> AsyncIterator[Observer]:
    observer = Observer([service])
    await observer.start()
    yield observer
    await observer.close()


async def get(observer: Observer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{observer.port}") as client:
        return await client.get(path)


async def test_not_ready_before_start_then_ready(observer: Observer, service: Service) -> None:
    response = await get(observer, "/readyz")
    assert response.status_code == 503
    assert "RPC consumers are not running" in response.text
    assert (await get(observer, "/healthz")).status_code == 200
    await service.start()
    assert isinstance(service.clock, FakeClock)
    await service.clock.wait_for_sleepers(2)
    response = await get(observer, "/readyz")
    assert (response.status_code, response.text) == (200, "ready\n")


async def test_metrics_count_requests_failures_latency_and_periodic_runs(
    observer: Observer, service: Service, transport: Transport
) -> None:
    await service.start()
    assert isinstance(service.clock, FakeClock)
    await service.clock.wait_for_sleepers(2)
    client = RPCClient(transport, Target("worker"))
    await client.call(None, "work")
    await client.call(None, "work")
    with pytest.raises(ValueError, match="asked to fail"):
        await client.call(None, "work", fail=True)
    await service.manager.notifier.close()  # every notification handed to the broker
    text = (await get(observer, "/metrics")).text
    labels = 'method="work",service="steward-worker"'
    assert f"steward_rpc_requests_total{{{labels}}} 3.0" in text
    assert f"steward_rpc_failures_total{{{labels}}} 1.0" in text
    assert f'steward_rpc_request_duration_seconds_bucket{{le="+Inf",{labels}}} 3.0' in text
    assert f"steward_rpc_request_duration_seconds_count{{{labels}}} 3.0" in text
    assert 'steward_periodic_task_runs_total{service="steward-worker",task="tidy"} 1.0' in text
    assert 'steward_heartbeat_age_seconds{service="steward-worker"} 0.0' in text
    assert 'steward_rpc_in_flight{service="steward-worker"} 0.0' in text
    assert 'steward_notifications_sent_total{service="steward-worker"} 3.0' in text


async def test_a_blocked_loop_fails_healthz(observer: Observer) -> None:
    answered = threading.Event()
    responses: list[httpx.Response] = []

    def probe() -> None:
        responses.append(httpx.get(f"http://127.0.0.1:{observer.port}/healthz", timeout=30))
        answered.set()

    thread = threading.Thread(target=probe)
    thread.start()
    # Block the loop itself, deliberately, until the probe has its answer: the answer can only
    # be the observer giving up on the loop.
    answered.wait(30)
    thread.join()
    (response,) = responses
    assert response.status_code == 503
    assert "event loop not responding" in response.text
    assert (await get(observer, "/healthz")).status_code == 200


async def test_unknown_paths_are_404(observer: Observer) -> None:
    response = await get(observer, "/nope")
    assert response.status_code == 404
