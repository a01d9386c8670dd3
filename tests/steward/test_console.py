from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from steward import Manager
from steward.config import load_settings
from steward.console import parse_port_range, start_console
from steward.db import Database
from steward.registry import Registry
from steward.rpc import RPCClient, Target, get_transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 20.0


async def converse(port: int, line: str, expect: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(GUARD):
            await reader.readuntil(b">>> ")
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return await reader.readuntil(expect)
    finally:
        writer.close()


async def test_console_evaluates_against_the_namespace() -> None:
    console = await start_console("0", {"answer": 41})
    try:
        assert console.port > 0
        output = await converse(console.port, "answer + 1", b"42")
        assert output.endswith(b"42")
    finally:
        await console.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.org", "::"])  # noqa: S104
async def test_non_loopback_binds_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="binds a loopback address only"):
        await start_console("0", {}, host=host)


async def test_a_busy_port_in_a_range_is_skipped() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        console = await start_console(f"{taken}:{taken + 20}", {})
        await console.close()
    assert taken < console.port <= taken + 20


def test_port_specs() -> None:
    assert parse_port_range("0") == (0, 0)
    assert parse_port_range("4000:4010") == (4000, 4010)
    with pytest.raises(ValueError, match="'N', '0' or 'A:B'"):
        parse_port_range("x")
    with pytest.raises(ValueError, match="A <= B"):
        parse_port_range("5:4")


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as db:
        await db.upgrade()
        yield Registry(db)


async def test_service_console_sees_the_manager_and_reports_its_port(
    registry: Registry,
) -> None:
    settings = load_settings(overrides={"backdoor_port": "0", "periodic_fuzzy_delay": "0"})
    transport = get_transport("memory://", settings=settings)
    manager = Manager(host="h1", service_name="volume", settings=settings)
    service = Service(manager, topic="volume", transport=transport, registry=registry,
                      settings=settings, clock=FakeClock())  # fmt: skip
    await service.start()
    try:
        port = manager.backdoor_port
        assert port is not None
        base = RPCClient(transport, Target("volume", namespace="baseapi", version="1.1"))
        assert await base.call(None, "get_backdoor_port") == port
        output = await converse(port, "manager.service_name.upper()", b"'VOLUME'")
        assert output.endswith(b"'VOLUME'")
    finally:
        await service.stop()
        await transport.close()
