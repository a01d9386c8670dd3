"""One source of settings: entry points build them, everything below takes them from its caller.

The process's settings (:func:`steward.config.get_settings`) are read only by the defaults of
the public constructors a user calls directly; :data:`ALLOWED` lists them, and a call anywhere
else in steward or pocketcloud fails the test below that walks their source.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import steward
from steward.config import Settings, load_settings, set_settings
from steward.db import Database
from steward.notify import Notifier
from steward.registry import Registry
from steward.report import build_report
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import Transport
from steward.service import Service

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "src" / "steward", ROOT / "pocketcloud" / "src" / "pocketcloud")

ALLOWED = {
    # A manager's host defaults to the host setting, as nova's CONF.host.
    ("steward/manager.py", "Manager.__init__"),
    # get_transport(url=None, settings=None): the process's transport_url.
    ("steward/rpc/transports/__init__.py", "get_transport"),
    # Service(manager, topic=...) and Service.create(...) given neither settings nor a transport.
    ("steward/service.py", "Service.__init__"),
    ("steward/service.py", "Service.create"),
}
"""(module, function) of every call of ``get_settings()`` outside the entry points."""

ENTRY_POINTS: set[tuple[str, str]] = set()
"""The entry points build settings with load_settings(); none needs get_settings() today."""


def calls_of(name: str, tree: ast.AST) -> list[str]:
    """Return the qualified name of the function around each call of ``name`` in ``tree``."""
    found: list[str] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Call):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append(".".join(scope) or "<module>")
            visit(child, scope)

    visit(tree, ())
    return found


def test_the_finder_sees_plain_and_dotted_calls_in_their_function() -> None:
    tree = ast.parse(
        "class A:\n"
        "    def f(self):\n"
        "        return config.get_settings()\n"
        "def g():\n"
        "    async def h():\n"
        "        get_settings()\n"
        "x = steward.get_settings().host\n"
    )
    assert calls_of("get_settings", tree) == ["A.f", "g.h", "<module>"]


def test_only_the_allowed_defaults_read_the_process_settings() -> None:
    found: set[tuple[str, str]] = set()
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            module = path.relative_to(source.parent).as_posix()
            tree = ast.parse(path.read_text(), filename=str(path))
            found.update((module, function) for function in calls_of("get_settings", tree))
    assert found <= ALLOWED | ENTRY_POINTS, (
        "get_settings() is for entry points and the allowed defaults; take settings from the "
        f"caller (or the transport) instead: {sorted(found - ALLOWED - ENTRY_POINTS)}"
    )


# --- what a transport creates takes the transport's settings -----------------------------------


@pytest.fixture
def process_settings() -> Settings:
    """The process's settings, installed as an entry point would: the objects below ignore them."""
    settings = load_settings(
        overrides={
            "executor_thread_pool_size": "64",
            "notification_driver": "log",
            "allowed_remote_exmods": "process.errors",
        }
    )
    set_settings(settings)
    return settings


@pytest.fixture
def own() -> Settings:
    return load_settings(
        overrides={
            "executor_thread_pool_size": "3",
            "notification_driver": "test",
            "allowed_remote_exmods": "own.errors",
            "host": "own-host",
        }
    )


@pytest.fixture
async def transport(own: Settings, process_settings: Settings) -> AsyncIterator[Transport]:
    transport = get_transport("memory://", settings=own)
    yield transport
    await transport.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("memory://", id="memory"),
        pytest.param("amqp://guest:guest@127.0.0.1:5672/", id="rabbit"),
        pytest.param("nats://127.0.0.1:4222", id="nats"),
    ],
)
def test_every_transport_keeps_the_settings_it_was_made_with(url: str, own: Settings) -> None:
    transport = get_transport(url, settings=own)  # not connected: nothing to close
    assert transport.settings is own


def test_get_transport_defaults_to_the_process_settings(process_settings: Settings) -> None:
    assert get_transport().settings is process_settings


async def test_an_rpc_server_takes_its_defaults_from_the_transport(transport: Transport) -> None:
    server = RPCServer(transport, Target("t", "h"), [])
    try:
        assert server.prefetch == 3
        given = RPCServer(transport, Target("t", "h"), [], settings=load_settings())
        assert given.prefetch == 64
    finally:
        server.executor.shutdown()
        given.executor.shutdown()


def test_an_rpc_client_reads_the_transports_settings_at_call_time(transport: Transport) -> None:
    client = RPCClient(transport, Target("t"))
    assert list(client._allowed_modules()) == ["own.errors"]
    transport.settings = load_settings(overrides={"allowed_remote_exmods": "reloaded.errors"})
    assert list(client._allowed_modules()) == ["reloaded.errors"]


def test_a_notifier_takes_its_defaults_from_the_transport(transport: Transport) -> None:
    assert Notifier(transport, "p").driver == "test"
    assert Notifier(transport, "p", settings=load_settings()).driver == "noop"


def test_a_service_takes_the_transports_settings_else_the_process(
    transport: Transport, process_settings: Settings
) -> None:
    on_transport = Service(steward.Manager(host="h"), topic="t", transport=transport)
    assert on_transport.settings is transport.settings
    alone = Service(steward.Manager(host="h"), topic="t")
    assert alone.settings is process_settings
    on_transport.executor.shutdown()
    alone.executor.shutdown()


def test_a_registry_without_settings_reads_the_defaults_not_the_process(
    process_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_settings(load_settings(overrides={"service_down_time": "500"}))
    monkeypatch.setenv("STEWARD_SERVICE_DOWN_TIME", "90")
    registry = Registry(Database("sqlite+aiosqlite://"))
    assert registry.service_down_time == 90


def test_the_report_and_the_database_take_the_settings_they_are_given(own: Settings) -> None:
    assert build_report(settings=own)["host"] == "own-host"
    database_url = "sqlite+aiosqlite:////tmp/elsewhere.db"
    given = load_settings(overrides={"database_url": database_url})
    assert Database.from_settings(given).url == database_url
