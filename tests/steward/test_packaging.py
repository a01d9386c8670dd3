"""steward's distribution: what a bare install brings, and how a missing extra is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from steward import _optional
from steward.errors import MissingDependency

EXTRAS = {"amqp", "nats", "postgres", "tracing", "metrics", "console"}
NOT_IN_CORE = {
    "fastapi",
    "uvicorn",
    "nats-py",
    "asyncpg",
    "aio-pika",
    "aiormq",
    "prometheus-client",
    "aioconsole",
    "opentelemetry-sdk",
}


def requirements(distribution: str) -> list[Requirement]:
    return [Requirement(line) for line in metadata.requires(distribution) or []]


def core(distribution: str) -> set[str]:
    """Names a plain ``pip install distribution`` installs (no ``extra ==`` marker)."""
    return {
        canonicalize_name(requirement.name)
        for requirement in requirements(distribution)
        if requirement.marker is None or "extra" not in str(requirement.marker)
    }


def extra(distribution: str, name: str) -> set[str]:
    return {
        canonicalize_name(requirement.name)
        for requirement in requirements(distribution)
        if requirement.marker is not None
        and requirement.marker.evaluate({"extra": name})
        and not requirement.marker.evaluate({"extra": ""})
    }


def test_a_bare_install_brings_no_broker_client_database_driver_or_web_framework() -> None:
    installed = core("steward-rpc")
    assert {"pydantic", "sqlalchemy", "aiosqlite", "alembic", "orjson", "typer"} <= installed
    assert installed.isdisjoint(NOT_IN_CORE), installed & NOT_IN_CORE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("amqp", {"aiormq"}),
        ("nats", {"nats-py"}),
        ("postgres", {"asyncpg"}),
        ("tracing", {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"}),
        ("metrics", {"prometheus-client"}),
        ("console", {"aioconsole"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_extra_installs_its_libraries(name: str, expected: set[str]) -> None:
    assert extra("steward-rpc", name) == expected


def test_all_installs_every_extra_and_dev_installs_all() -> None:
    provided = set(metadata.metadata("steward-rpc").get_all("Provides-Extra") or [])
    assert EXTRAS | {"all", "dev"} <= provided
    every = set().union(*(extra("steward-rpc", name) for name in EXTRAS))
    # The build backend writes `steward-rpc[...]` inside an extra out as the libraries it names.
    assert extra("steward-rpc", "all") == every
    assert every <= extra("steward-rpc", "dev")


def test_the_error_table_names_only_real_extras() -> None:
    assert set(_optional.EXTRAS.values()) == EXTRAS


def test_pocketcloud_depends_on_steward_with_the_extras_it_uses() -> None:
    (steward,) = (
        r for r in requirements("pocketcloud") if canonicalize_name(r.name) == "steward-rpc"
    )
    assert steward.marker is None
    assert steward.extras == {"amqp", "nats", "postgres", "metrics", "console"}
    assert {"fastapi", "uvicorn"} <= core("pocketcloud")


# Run in a fresh interpreter where the optional libraries cannot be imported, as after
# `pip install steward-rpc`: steward must import, serve and call on memory://, and each feature
# that needs an extra must say which one.
WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys

    BLOCKED = (
        "aio_pika", "aiormq", "nats", "asyncpg", "fastapi", "uvicorn", "starlette", "httpx",
        "prometheus_client", "aioconsole", "opentelemetry.sdk", "opentelemetry.exporter",
    )

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    import asyncio
    import json

    import steward
    import steward.cli
    import steward.launcher
    import steward.service
    from steward import Manager, load_settings
    from steward.context import RequestContext
    from steward.db import Database
    from steward.errors import MissingDependency
    from steward.registry import Registry
    from steward.rpc import RPCClient, Target, get_transport


    class Echo(Manager):
        async def echo(self, context: RequestContext, value: int) -> int:
            return value * 2


    async def missing(name, action):
        try:
            await action()
        except MissingDependency as exc:
            return str(exc)
        return f"{name}: no error"


    async def main():
        out = {}
        settings = load_settings(
            overrides={"host": "node1", "database_url": "sqlite+aiosqlite:///./r.db",
                       "periodic_fuzzy_delay": "0"}
        )
        transport = get_transport("memory://", settings=settings)
        async with Database(settings.database_url) as db:
            await db.upgrade()
            service = steward.service.Service(
                Echo(host="node1", service_name="echo", settings=settings), topic="echo",
                transport=transport, registry=Registry(db, settings=settings), settings=settings,
            )
            await service.start()
            try:
                client = RPCClient(transport, Target(topic="echo"), timeout=30)
                out["call"] = await client.call(RequestContext(), "echo", value=21)
            finally:
                await service.stop()
                await transport.close()

        async def transport_(url):
            get_transport(url, settings=settings)

        async def database():
            Database("postgresql+asyncpg://u:secret@127.0.0.1/db").engine

        async def console():
            from steward.console import start_console
            await start_console("0", {})

        async def metrics():
            from steward.observe import Observer
            await Observer([], port=0).start()

        async def tracing():
            from steward.tracing import configure_tracing
            configure_tracing(enabled=True, exporter="console", service_name="x")

        out["amqp"] = await missing("amqp", lambda: transport_("amqp://guest:guest@h:5672/"))
        out["rabbit"] = await missing("rabbit", lambda: transport_("rabbit://h:5672/"))
        out["nats"] = await missing("nats", lambda: transport_("nats://h:4222"))
        out["postgres"] = await missing("postgres", database)
        out["console"] = await missing("console", console)
        out["metrics"] = await missing("metrics", metrics)
        out["tracing"] = await missing("tracing", tracing)
        print(json.dumps(out))


    asyncio.run(main())
    """
)


def test_steward_works_on_memory_and_names_the_extra_a_feature_needs(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("STEWARD_")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WITHOUT_EXTRAS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out.pop("call") == 42
    assert out.pop("rabbit") == (
        "the rabbit:// transport needs aiormq, which is not installed; install steward's 'amqp' "
        "extra: pip install 'steward-rpc[amqp]'"
    )
    expected = {
        "amqp": ("the amqp:// transport", "aiormq"),
        "nats": ("the nats:// transport", "nats"),
        "postgres": ("the database postgresql+asyncpg://u:***@127.0.0.1/db", "asyncpg"),
        "console": ("the debug console (backdoor_port)", "aioconsole"),
        "metrics": ("metrics (metrics_port)", "prometheus_client"),
        "tracing": ("tracing export (tracing_exporter=console)", "opentelemetry.sdk"),
    }
    for name, (feature, module) in expected.items():
        assert out[name].startswith(f"{feature} needs {module}"), out[name]
        assert out[name].endswith(f"pip install 'steward-rpc[{name}]'"), out[name]


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("aiormq.abc", "amqp"),
        ("opentelemetry.exporter.otlp.proto.http", "tracing"),
        ("opentelemetry.sdk", "tracing"),
        ("opentelemetry", None),  # the API is a core dependency
        ("natsort", None),
        (None, None),
    ],
    ids=str,
)
def test_extra_for_finds_the_extra_of_a_module_or_its_package(
    module: str | None, expected: str | None
) -> None:
    assert _optional.extra_for(module) == expected


def test_requiring_lets_an_import_error_no_extra_explains_through() -> None:
    with pytest.raises(ModuleNotFoundError) as raised:
        _optional.require("steward_no_such_library", feature="a feature")
    assert not isinstance(raised.value, MissingDependency)
