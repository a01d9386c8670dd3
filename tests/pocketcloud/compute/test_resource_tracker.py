"""The resource tracker's report of its host, written by several writers at once."""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa

from pocketcloud.compute.drivers.fake import FakeComputeDriver
from pocketcloud.compute.resource_tracker import ResourceTracker
from pocketcloud.compute.tables import compute_nodes
from pocketcloud.database import ensure_schemas
from steward.db import Database


async def test_concurrent_first_reports_of_a_host_leave_one_row(database_url: str) -> None:
    # The periodic report, a build's and a delete's can all be a host's first, at once (and a
    # restarted service's report can meet its predecessor's): none may fail on the insert.
    driver = FakeComputeDriver(host="compute1", memory_mb=2048, disk_gb=20)
    async with contextlib.AsyncExitStack() as stack:
        databases = [await stack.enter_async_context(Database(database_url)) for _ in range(2)]
        await ensure_schemas(databases[0], upgrade=True)
        trackers = [ResourceTracker(db, "compute1", availability_zone="nova") for db in databases]
        await asyncio.gather(*(tracker.update(driver) for tracker in trackers * 20))
        async with databases[0].session() as session:
            rows = (await session.execute(sa.select(compute_nodes))).mappings().all()
    assert [(row["host"], row["memory_mb"], row["disk_gb"]) for row in rows] == [
        ("compute1", 2048, 20)
    ]
