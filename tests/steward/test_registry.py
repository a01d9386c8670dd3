from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from steward.config import load_settings
from steward.db import Database
from steward.errors import ServiceNotFound
from steward.registry import Registry, ServiceRecord, effective_service_down_time, service_leases

SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[Registry]:
    settings = load_settings(overrides={"report_interval": "10", "service_down_time": "60"})
    async with Database(database_url) as db:
        await db.upgrade()
        yield Registry(db, settings=settings)


async def test_create_then_update_keeps_one_record(registry: Registry) -> None:
    assert await registry.get("h1", "steward-volume") is None
    first = await registry.create_or_update("h1", "steward-volume", "volume", version=1)
    assert (first.host, first.binary, first.topic, first.version) == (
        "h1",
        "steward-volume",
        "volume",
        1,
    )
    assert first.report_count == 0
    assert first.last_seen_up is None
    assert not first.disabled
    again = await registry.create_or_update("h1", "steward-volume", "volume", version=2)
    assert again.id == first.id
    assert again.version == 2
    assert again.updated_at is not None


async def test_racing_workers_share_one_record(registry: Registry) -> None:
    records = await asyncio.gather(
        *(registry.create_or_update("h1", "steward-compute", "compute") for _ in range(5))
    )
    assert len({record.id for record in records}) == 1


async def test_heartbeat_counts_reports_and_stamps_the_database_time(registry: Registry) -> None:
    record = await registry.create_or_update("h1", "b", "t")
    before = await registry.db.now()
    record = await registry.heartbeat(record)
    record = await registry.heartbeat(record)
    after = await registry.db.now()
    assert record.report_count == 2
    assert record.last_seen_up is not None
    assert before - SECOND <= record.last_seen_up <= after + SECOND


def shifted(record: ServiceRecord, **changes: object) -> ServiceRecord:
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def test_is_up_follows_nova_rule_on_the_database_clock(registry: Registry) -> None:
    record = await registry.create_or_update("h1", "b", "t")
    now = await registry.db.now()
    assert registry.is_up_at(shifted(record, last_seen_up=now - 59 * SECOND), now)
    assert not registry.is_up_at(shifted(record, last_seen_up=now - 61 * SECOND), now)
    # abs(): a heartbeat stamped "in the future" by a skewed clock is not up for ever.
    assert not registry.is_up_at(shifted(record, last_seen_up=now + 61 * SECOND), now)
    # No heartbeat yet: created_at counts.
    assert registry.is_up_at(shifted(record, last_seen_up=None, created_at=now - 30 * SECOND), now)
    assert not registry.is_up_at(
        shifted(record, last_seen_up=None, created_at=now - 90 * SECOND), now
    )
    forced = await registry.set_forced_down("h1", "b", True)
    assert not await registry.is_up(forced)
    assert await registry.is_up(await registry.set_forced_down("h1", "b", False))


async def test_a_stopped_service_is_down_at_once_until_it_heartbeats_again(
    registry: Registry,
) -> None:
    record = await registry.heartbeat(await registry.create_or_update("h1", "b", "t"))
    assert await registry.is_up(record)
    await registry.stopped(record)
    stopped = await registry.get("h1", "b")
    assert stopped is not None
    assert stopped.stopped_at is not None
    assert not await registry.is_up(stopped)
    assert [status.up for status in await registry.list_services()] == [False]
    assert await registry.is_up(await registry.heartbeat(stopped))
    await registry.stopped(stopped)
    restarted = await registry.create_or_update("h1", "b", "t")  # a new start
    assert restarted.stopped_at is None
    assert await registry.is_up(restarted)


async def test_is_up_reads_the_database_clock(registry: Registry) -> None:
    record = await registry.heartbeat(await registry.create_or_update("h1", "b", "t"))
    assert await registry.is_up(record)
    async with registry.db.session() as session:
        await session.execute(
            sa.text("UPDATE services SET last_seen_up = :t WHERE id = :id"),
            {"t": datetime.datetime(2000, 1, 1), "id": record.id},
        )
    stale = await registry.get("h1", "b")
    assert stale is not None
    assert not await registry.is_up(stale)
    assert [status.up for status in await registry.list_services()] == [False]


def test_down_time_not_above_report_interval_is_raised_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(overrides={"report_interval": "10", "service_down_time": "10"})
    with caplog.at_level(logging.WARNING, logger="steward.registry"):
        assert effective_service_down_time(settings) == 25
    assert "must be longer than report_interval" in caplog.text
    fine = load_settings(overrides={"report_interval": "10", "service_down_time": "11"})
    assert effective_service_down_time(fine) == 11


async def test_disable_enable_list_and_destroy(registry: Registry) -> None:
    await registry.create_or_update("h2", "steward-volume", "volume")
    await registry.create_or_update("h1", "steward-volume", "volume")
    await registry.create_or_update("h1", "steward-compute", "compute")
    disabled = await registry.set_disabled("h1", "steward-volume", True, reason="maintenance")
    assert disabled.disabled
    assert disabled.disabled_reason == "maintenance"
    listed = await registry.list_services(binary="steward-volume")
    assert [(s.record.host, s.record.disabled, s.up) for s in listed] == [
        ("h1", True, True),
        ("h2", False, True),
    ]
    enabled = await registry.set_disabled("h1", "steward-volume", False, reason="ignored")
    assert not enabled.disabled
    assert enabled.disabled_reason is None
    await registry.destroy("h2", "steward-volume")
    assert await registry.get("h2", "steward-volume") is None
    assert [s.record.topic for s in await registry.list_services(topic="compute")] == ["compute"]
    with pytest.raises(ServiceNotFound, match="no service 'steward-volume' on host 'h2'"):
        await registry.set_disabled("h2", "steward-volume", True)


async def test_leases_are_exclusive_renewable_and_released(registry: Registry) -> None:
    assert await registry.acquire_lease("task", "a", duration=60)
    assert not await registry.acquire_lease("task", "b", duration=60)
    assert await registry.acquire_lease("task", "a", duration=60)  # renewal
    assert await registry.lease_holder("task") == "a"
    await registry.release_lease("task", "b")  # not b's to release
    assert await registry.lease_holder("task") == "a"
    await registry.release_lease("task", "a")
    assert await registry.lease_holder("task") is None
    assert await registry.acquire_lease("task", "b", duration=60)


async def test_an_expired_lease_is_taken_over(registry: Registry) -> None:
    assert await registry.acquire_lease("task", "a", duration=60)
    async with registry.db.session() as session:
        await session.execute(
            sa.update(service_leases).values(expires_at=datetime.datetime(2000, 1, 1))
        )
    assert await registry.lease_holder("task") is None
    assert await registry.acquire_lease("task", "b", duration=60)
    assert not await registry.acquire_lease("task", "a", duration=60)


async def test_concurrent_acquirers_get_one_holder(registry: Registry) -> None:
    results = await asyncio.gather(
        *(registry.acquire_lease("race", f"holder{i}", duration=60) for i in range(8))
    )
    assert results.count(True) == 1
