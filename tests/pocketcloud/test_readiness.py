from __future__ import annotations

import asyncio

from tests.pocketcloud.flows import DEADLINE

from pocketcloud.allinone import AllInOne
from pocketcloud.readiness import wait_until_consuming
from pocketcloud.rpc import binary_of
from pocketcloud.services import make_manager, make_service
from steward.testing import FakeClock


async def test_it_returns_once_every_service_answers(cloud: AllInOne) -> None:
    pending: set[tuple[str, str]] = set()
    services = [(service.topic, service.host) for service in cloud.services]
    async with asyncio.timeout(DEADLINE):
        await wait_until_consuming(cloud.transport, services, pending=pending)
    assert pending == set()


async def test_it_waits_for_a_service_the_registry_shows_up_until_it_consumes(
    cloud: AllInOne, fake_clock: FakeClock
) -> None:
    # A previous run's record: "up" in the registry, but nobody consumes compute.late.
    record = await cloud.registry.create_or_update("late", binary_of("compute"), "compute")
    assert await cloud.registry.is_up(record)
    services = [(service.topic, service.host) for service in cloud.services]
    pending: set[tuple[str, str]] = set()
    waiting = asyncio.create_task(
        wait_until_consuming(cloud.transport, [*services, ("compute", "late")], pending=pending)
    )
    async with asyncio.timeout(DEADLINE):
        while pending != {("compute", "late")}:  # noqa: ASYNC110 - a set has no event
            await asyncio.sleep(0.01)
    assert not waiting.done()
    manager = make_manager(
        "compute",
        "late",
        db=cloud.db,
        cloud_settings=cloud.cloud_settings,
        transport=cloud.transport,
        clock=fake_clock,
        settings=cloud.settings,
    )
    late = make_service(
        "compute",
        manager,
        transport=cloud.transport,
        registry=cloud.registry,
        settings=cloud.settings,
        clock=fake_clock,
    )
    await late.start()
    try:
        async with asyncio.timeout(DEADLINE):
            await waiting
        assert pending == set()
    finally:
        async with asyncio.timeout(DEADLINE):
            await fake_clock.wait_for_sleepers(len(cloud.services) + 1)
        await late.stop()
