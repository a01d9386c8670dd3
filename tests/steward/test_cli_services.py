"""The registry, database and RPC commands of the ``steward`` CLI, against real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steward import Manager, RequestContext
from steward.cli import app
from steward.config import load_settings
from steward.db import Database
from steward.registry import Registry
from steward.rpc import get_transport
from steward.service import Service
from steward.testing import FakeClock

runner = CliRunner()


@pytest.fixture
def database_file(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_db_current_and_upgrade(database_file: str) -> None:
    assert invoke("--set", f"database_url={database_file}", "db", "current") == (
        0,
        "schema: empty (behind 0002: run `steward db upgrade`)\n",
    )
    assert invoke("--set", f"database_url={database_file}", "db", "upgrade") == (
        0,
        "schema: empty -> 0002\n",
    )
    code, output = invoke("--set", f"database_url={database_file}", "db", "current")
    assert (code, output) == (0, "schema: 0002 (up to date)\n")


async def test_services_list_disable_and_enable(database_file: str) -> None:
    settings = load_settings(overrides={"database_url": database_file})
    async with Database(database_file) as db:
        await db.upgrade()
        registry = Registry(db, settings=settings)
        await registry.heartbeat(
            await registry.create_or_update("node1", "steward-volume", "volume")
        )
    base = ["--set", f"database_url={database_file}"]
    code, output = await asyncio.to_thread(invoke, *base, "services", "disable", "node1",
                                           "steward-volume", "--reason", "disk swap")  # fmt: skip
    assert (code, output) == (0, "steward-volume on node1: disabled\n")
    code, output = await asyncio.to_thread(invoke, *base, "services", "list", "--json")
    assert code == 0, output
    (row,) = json.loads(output)
    assert row["host"] == "node1"
    assert row["state"] == "up"
    assert row["disabled"] is True
    assert row["disabled_reason"] == "disk swap"
    code, output = await asyncio.to_thread(invoke, *base, "services", "list")
    assert code == 0
    assert "node1" in output
    assert "disabled" in output
    assert "up" in output
    code, output = await asyncio.to_thread(
        invoke, *base, "services", "enable", "node1", "steward-volume"
    )
    assert (code, output) == (0, "steward-volume on node1: enabled\n")
    code, output = await asyncio.to_thread(
        invoke, *base, "services", "enable", "ghost", "steward-x"
    )
    assert code == 1
    assert "no service 'steward-x' on host 'ghost'" in output


class Adder(Manager):
    async def add(self, context: RequestContext, a: int, b: int = 1) -> dict[str, int]:
        return {"sum": a + b}


@pytest.fixture
async def adder(rabbit_url: str, database_file: str) -> AsyncIterator[str]:
    settings = load_settings(
        overrides={"transport_url": rabbit_url, "database_url": database_file,
                   "periodic_fuzzy_delay": "0"}
    )  # fmt: skip
    transport = get_transport(settings=settings)
    async with Database(database_file) as db:
        await db.upgrade()
        service = Service(Adder(host="calc1", settings=settings), topic="calc",
                          transport=transport, registry=Registry(db, settings=settings),
                          settings=settings, clock=FakeClock())  # fmt: skip
        await service.start()
        try:
            yield rabbit_url
        finally:
            await service.stop()
            await transport.close()


async def test_call_and_cast_from_the_cli(adder: str) -> None:
    base = ["--set", f"transport_url={adder}"]
    code, output = await asyncio.to_thread(
        invoke, *base, "call", "calc", "add", "--arg", "a=40", "--arg", "b=2", "--server", "calc1"
    )
    assert code == 0, output
    assert json.loads(output) == {"sum": 42}
    code, output = await asyncio.to_thread(
        invoke, *base, "call", "calc", "add", "--json-args", '{"a": 1}'
    )
    assert (code, json.loads(output)) == (0, {"sum": 2})
    code, output = await asyncio.to_thread(invoke, *base, "call", "calc", "add", "--arg", "a=x")
    assert code == 2  # the caller's input was wrong
    assert output.startswith("error: InvalidArguments: add(): argument `a`")
    assert "Traceback" not in output
    code, output = await asyncio.to_thread(invoke, *base, "cast", "calc", "add", "--arg", "a=1")
    assert (code, output) == (0, "sent\n")


def test_call_on_memory_transport_explains_itself() -> None:
    code, output = invoke("call", "calc", "add")
    assert code == 2
    assert "memory://, which reaches only this process" in output


def test_bad_arguments_are_one_line_errors() -> None:
    code, output = invoke(
        "--set", "transport_url=amqp://127.0.0.1/", "call", "t", "m", "--arg", "novalue"
    )
    assert code == 2
    assert "--arg expects KEY=VALUE" in output


@pytest.mark.parametrize("command", ["call", "cast"])
def test_call_and_cast_to_an_unreachable_broker_end_with_one_line(command: str) -> None:
    code, output = invoke(
        "--set", "transport_url=amqp://guest:hunter2@127.0.0.1:1/", command, "calc", "add",
        "--timeout", "0.5",
    )  # fmt: skip
    assert code == 1
    assert output.startswith("error: MessagingTimeout: ")
    assert "127.0.0.1:1" in output
    assert "hunter2" not in output
    assert "Traceback" not in output


def test_an_error_holding_markup_is_printed_as_it_is() -> None:
    code, output = invoke(
        "--set", "transport_url=amqp://127.0.0.1/", "call", "t", "m", "--arg", "[/x]"
    )  # fmt: skip
    assert code == 2
    assert output == "error: ValueError: --arg expects KEY=VALUE, got '[/x]'\n"
