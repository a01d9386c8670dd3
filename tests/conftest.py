"""Fixtures shared by steward's tests.

steward's own pytest plugin (:mod:`steward.testing.plugin`, loaded through its entry point) gives
them ``fake_clock``, ``memory_transport``, ``notifications`` and ``start_service``; the fixtures
here are for the real brokers and databases of the integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from steward import config


def pytest_configure(config: pytest.Config) -> None:
    """Say "no current event loop" before any test runs (looptime 0.9 needs it; decision 0010).

    looptime looks up the current loop of every test, sync ones too; asked before any loop was
    set, asyncio's policy makes one, which nobody closes (a ResourceWarning, an error here).
    pytest-asyncio sets each async test's loop itself, so no test relies on that one.
    """
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from default settings: no STEWARD_* variables, no installed settings."""
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    config.set_settings(None)
    yield
    config.set_settings(None)


POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _create_postgres_database() -> str:
    import asyncpg

    name = f"steward_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def _drop_postgres_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind steward supports: a SQLite file, a new PostgreSQL one."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'steward.db'}"
        return
    name = await _create_postgres_database()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await _drop_postgres_database(name)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the machine's server, dropped afterwards."""
    name = await _create_postgres_database()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await _drop_postgres_database(name)


# RabbitMQ for the integration tests: the machine's broker, in a vhost of this test session's
# own, created on first use and deleted at the end, so that sessions running at once never share
# a queue and none leaves queues behind. Test modules read the URL from this variable at import
# (the conformance suite parametrizes with it); the `rabbit_url` fixture makes the vhost exist.
RABBIT_URL_VARIABLE = "RABBIT_TEST_URL"
os.environ[RABBIT_URL_VARIABLE] = (
    f"amqp://guest:guest@127.0.0.1:5672/steward-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
)

RabbitCtl = Callable[..., str]


def _rabbitmqctl(*args: str) -> str:
    command = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    done = subprocess.run(  # noqa: S603 - a fixed command with test-made arguments
        [command, "-q", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def _delete_orphan_vhosts() -> None:
    """Delete the vhosts of test sessions whose process is gone (killed before teardown)."""
    for name in _rabbitmqctl("list_vhosts", "name").split()[1:]:
        parts = name.split("-")
        if name.startswith("steward-test-") and len(parts) == 4 and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                _rabbitmqctl("delete_vhost", name)
            except PermissionError:
                pass  # alive, another user's


@pytest.fixture(scope="session")
def rabbitmqctl() -> RabbitCtl:
    """Run ``rabbitmqctl -q ARGS...`` and return what it printed; raises if it fails."""
    return _rabbitmqctl


@contextlib.contextmanager
def _rabbit_vhost(vhost: str) -> Iterator[str]:
    """Create ``vhost`` with guest's permissions; yield its URL; delete it afterwards."""
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """The test session's RabbitMQ URL (guest on 127.0.0.1), its vhost created for it."""
    url = os.environ[RABBIT_URL_VARIABLE]
    _delete_orphan_vhosts()
    with _rabbit_vhost(url.rsplit("/", 1)[1]):
        yield url


@pytest.fixture
def fresh_rabbit_url() -> Iterator[str]:
    """A RabbitMQ vhost of the test's own, for a test that leaves queues behind (killed services).

    Named as the session's vhosts are, so that one left by a killed test run is deleted too.
    """
    with _rabbit_vhost(f"steward-test-{os.getpid()}-{uuid.uuid4().hex[:6]}") as url:
        yield url


# NATS for the integration tests: the machine's server, in a namespace of this test session's own
# (the first token of every subject, and the name of the JetStream stream), with JetStream on, so
# that the conformance suite runs casts at-least-once. Read at import, as the RabbitMQ URL is; the
# stream is deleted when the session ends, if the session used the NATS transport at all.
NATS_URL_VARIABLE = "NATS_TEST_URL"
NATS_TEST_NAMESPACE = f"steward-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
os.environ[NATS_URL_VARIABLE] = f"nats://127.0.0.1:4222/{NATS_TEST_NAMESPACE}?jetstream=true"


async def delete_nats_streams(*names: str) -> None:
    """Delete these JetStream streams (with their consumers) on the machine's NATS, if present."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect("nats://127.0.0.1:4222", allow_reconnect=False)
    try:
        js = client.jetstream()
        for name in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()


@pytest.fixture(scope="session", autouse=True)
def _nats_test_stream() -> Iterator[None]:
    """Delete the session's NATS stream at the end, when the NATS transport was used."""
    yield
    if "steward.rpc.transports.nats" in sys.modules:
        asyncio.run(delete_nats_streams(NATS_TEST_NAMESPACE))
