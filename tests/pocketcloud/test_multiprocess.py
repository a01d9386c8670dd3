"""pocketcloud as separate processes on the machine's RabbitMQ and PostgreSQL.

Each service is a ``python -m pocketcloud.services <service>`` process (what the
``pocketcloud-<service>`` commands run), with the ``process`` compute driver: instances are real
processes too. The tests kill services as an operator's bad day would (SIGKILL, SIGTERM in the
middle of a boot) and check what the cloud does about it. They wait on conditions with generous
guards; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

GUARD = 90.0
"""Seconds any one wait may take before the test fails (a guard, not a timing assertion)."""

REPORT_INTERVAL = 1.0
SERVICE_DOWN_TIME = 4.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    """The cloud's service processes, started and stopped by the test."""

    def __init__(self, tmp_path: Path, environment: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.environment = environment
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.api_url = f"http://127.0.0.1:{environment['POCKETCLOUD_API_PORT']}"

    async def start(self, topic: str, host: str | None = None, **extra: str) -> None:
        """Start the service on ``topic`` (on ``host``); ``extra`` adds environment variables."""
        name = f"{topic}-{host}" if host else topic
        command = [sys.executable, "-m", "pocketcloud.services", topic]
        if host is not None:
            command += ["--host", host]
        with (self.tmp_path / f"{name}.stderr").open("ab") as stderr:
            self.running[name] = await asyncio.create_subprocess_exec(
                *command,
                env={**os.environ, **self.environment, **extra},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )

    def signal(self, name: str, signum: int) -> None:
        self.running[name].send_signal(signum)

    async def wait(self, name: str) -> int:
        """Wait for service ``name`` to exit; return its exit code."""
        async with asyncio.timeout(GUARD):
            return await self.running.pop(name).wait()

    async def stop_all(self) -> dict[str, int]:
        """SIGTERM every service still running; return their exit codes."""
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        return {name: await self.wait(name) for name in list(self.running)}

    def kill_all(self) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def stderr_of(self, name: str) -> str:
        return (self.tmp_path / f"{name}.stderr").read_text(errors="replace")


@pytest.fixture
async def processes(
    tmp_path: Path, fresh_rabbit_url: str, postgres_url: str
) -> AsyncIterator[Processes]:
    """The environment for pocketcloud's processes; the schema is upgraded by the CLI first."""
    environment = {
        "STEWARD_TRANSPORT_URL": fresh_rabbit_url,
        "STEWARD_DATABASE_URL": postgres_url,
        "STEWARD_REPORT_INTERVAL": str(REPORT_INTERVAL),
        "STEWARD_SERVICE_DOWN_TIME": str(SERVICE_DOWN_TIME),
        "STEWARD_RPC_RESPONSE_TIMEOUT": "20",
        "STEWARD_GRACEFUL_SHUTDOWN_TIMEOUT": "1",
        "POCKETCLOUD_DATA_DIR": str(tmp_path / "data"),
        "POCKETCLOUD_API_PORT": str(_free_port()),
        "POCKETCLOUD_COMPUTE_DRIVER": "process",
        "POCKETCLOUD_COMPUTE_MEMORY_MB": "4096",
    }
    upgrade = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pocketcloud",
        "db",
        "upgrade",
        env={**os.environ, **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await upgrade.communicate()
    assert upgrade.returncode == 0, output.decode()
    assert output.decode().startswith("pocketcloud schema: ")
    cloud = Processes(tmp_path, environment)
    try:
        yield cloud
    finally:
        cloud.kill_all()
        for process in cloud.running.values():
            await process.wait()


async def _services(api: httpx.AsyncClient) -> dict[tuple[str, str], bool]:
    # Up, and heartbeating: a service is recorded before it consumes its queue, and sends its
    # first heartbeat once it does (a fresh database: no earlier run's heartbeats).
    response = await api.get("/v1/services")
    response.raise_for_status()
    return {
        (s["binary"], s["host"]): s["state"] == "up" and s["last_seen_up"] is not None
        for s in response.json()
    }


async def _until(what: str, check: Callable[[], Any]) -> Any:
    """Poll ``check`` (a coroutine function) until it returns a true value; return it."""
    last: Any = None
    try:
        async with asyncio.timeout(GUARD):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    last = await check()
                    if last:
                        return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"never saw {what}; last: {last!r}") from None


async def _start_cloud(cloud: Processes, computes: tuple[str, ...], **compute_env: str) -> None:
    for topic in ("api", "network", "volume", "scheduler"):
        await cloud.start(topic)
    for host in computes:
        await cloud.start("compute", host, **compute_env)


async def _all_up(api: httpx.AsyncClient, computes: tuple[str, ...]) -> None:
    expected = {("pocketcloud-compute", host) for host in computes} | {
        (f"pocketcloud-{topic}", host)
        for topic in ("api", "network", "volume", "scheduler")
        for host in [socket.gethostname()]
    }

    async def up() -> bool:
        services = await _services(api)
        return all(services.get(key) for key in expected)

    await _until(f"services {sorted(expected)} up", up)


async def _server(api: httpx.AsyncClient, server_id: str, *statuses: str) -> Any:
    async def reached() -> Any:
        response = await api.get(f"/v1/servers/{server_id}")
        server = response.json()
        return server if server.get("status") in statuses else None

    return await _until(f"server {server_id} {statuses}", reached)


async def _boot(api: httpx.AsyncClient, name: str, network_id: str) -> str:
    response = await api.post(
        "/v1/servers", json={"name": name, "ram_mb": 256, "network_id": network_id}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_boot_and_delete_across_processes_and_a_killed_compute_is_passed_over(
    processes: Processes,
) -> None:
    computes = ("compute1", "compute2")
    await _start_cloud(processes, computes)
    async with httpx.AsyncClient(base_url=processes.api_url, timeout=30) as api:
        await _until("the REST API", lambda: _services(api))
        await _all_up(api, computes)
        network = (await api.post("/v1/networks", json={"name": "n", "cidr": "10.9.0.0/24"})).json()
        # Spread over both hosts (RAM weigher): each boots, gets an address, runs a guest.
        ids = [await _boot(api, f"vm{number}", network["id"]) for number in range(2)]
        booted = [await _server(api, server_id, "ACTIVE", "ERROR") for server_id in ids]
        assert [server["status"] for server in booted] == ["ACTIVE", "ACTIVE"], booted
        assert {server["host"] for server in booted} == set(computes)
        console = await api.get(f"/v1/servers/{ids[0]}/console")
        assert "login:" in console.json()["output"]
        assert (await api.delete(f"/v1/servers/{ids[1]}")).status_code == 204
        await _until(
            "the deleted server gone",
            lambda: _gone(api, ids[1]),
        )

        processes.signal("compute-compute2", signal.SIGKILL)
        assert await processes.wait("compute-compute2") == -signal.SIGKILL

        async def compute2_down() -> bool:
            return (await _services(api))[("pocketcloud-compute", "compute2")] is False

        await _until("compute2 reported down", compute2_down)
        later = [await _boot(api, f"after{number}", network["id"]) for number in range(3)]
        for server_id in later:
            server = await _server(api, server_id, "ACTIVE", "ERROR")
            assert (server["status"], server["host"]) == ("ACTIVE", "compute1"), server
        codes = await processes.stop_all()
    assert codes == dict.fromkeys(codes, 0), {n: processes.stderr_of(n) for n in codes}


async def _gone(api: httpx.AsyncClient, server_id: str) -> bool:
    return (await api.get(f"/v1/servers/{server_id}")).status_code == httpx.codes.NOT_FOUND


async def test_a_compute_stopped_mid_boot_finishes_the_boot_when_it_comes_back(
    processes: Processes, tmp_path: Path
) -> None:
    # Guests take a while to boot, longer than the compute's grace period on SIGTERM.
    await _start_cloud(processes, ("compute1",), POCKETCLOUD_GUEST_BOOT_SECONDS="60")
    async with httpx.AsyncClient(base_url=processes.api_url, timeout=30) as api:
        await _until("the REST API", lambda: _services(api))
        await _all_up(api, ("compute1",))
        network = (await api.post("/v1/networks", json={"name": "n", "cidr": "10.8.0.0/24"})).json()
        server_id = await _boot(api, "slow", network["id"])
        console = tmp_path / "data" / "instances" / "compute1" / server_id / "console.log"

        async def booting() -> bool:
            return console.exists() and "starting services" in console.read_text()

        await _until("the guest booting", booting)
        processes.signal("compute-compute1", signal.SIGTERM)
        assert await processes.wait("compute-compute1") == 0
        log = (tmp_path / "data" / "pocketcloud-compute-compute1.log").read_text()
        assert "1 requests still running after 1.0 s; returning them to the queue" in log
        assert f"Building server {server_id} was interrupted; undoing it" in log
        # Undone: no guest left, the address released, the server still BUILDING, no fault.
        assert not console.parent.exists()
        server = (await api.get(f"/v1/servers/{server_id}")).json()
        assert (server["status"], server["fault"]) == ("BUILDING", None), server
        assert (await api.get(f"/v1/networks/{network['id']}")).status_code == 200

        # The host comes back (its guests boot fast now): the request, back in its queue, is
        # delivered again and the boot finishes.
        await processes.start("compute", "compute1", POCKETCLOUD_GUEST_BOOT_SECONDS="0")
        server = await _server(api, server_id, "ACTIVE", "ERROR")
        assert (server["status"], server["host"]) == ("ACTIVE", "compute1"), server
        assert server["address"] is not None
        codes = await processes.stop_all()
    assert codes == dict.fromkeys(codes, 0), {n: processes.stderr_of(n) for n in codes}


async def test_pocketcloud_up_runs_one_process_per_service_on_rabbitmq_and_postgresql(
    tmp_path: Path, fresh_rabbit_url: str, postgres_url: str
) -> None:
    code, output = await _up_demo(tmp_path, fresh_rabbit_url, postgres_url)
    assert code == 0, output
    assert "6 service processes on amqp://guest:***@127.0.0.1:5672/" in output
    assert "guest:guest" not in output
    assert output.count("ACTIVE") == 3, output
    logs = sorted(path.name for path in (tmp_path / "data").glob("*.log"))
    assert logs == [
        "pocketcloud-api.log",
        "pocketcloud-compute-compute1.log",
        "pocketcloud-compute-compute2.log",
        "pocketcloud-network.log",
        "pocketcloud-scheduler.log",
        "pocketcloud-volume.log",
        "pocketcloud.log",
    ]


async def _up_demo(tmp_path: Path, rabbit: str, postgres: str) -> tuple[int, str]:
    """Run ``pocketcloud up --demo --demo-exit`` on the broker and database; return code, output."""
    up = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pocketcloud",
        "up",
        "--demo",
        "--demo-exit",
        "--api-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--transport-url",
        rabbit,
        "--database-url",
        postgres,
        env={**os.environ, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(GUARD * 2):
            output, _ = await up.communicate()
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGINT)
            await up.wait()
    assert up.returncode is not None
    return up.returncode, output.decode()


async def test_the_demo_run_again_at_once_finds_its_resources_and_makes_no_second_set(
    tmp_path: Path, fresh_rabbit_url: str, postgres_url: str
) -> None:
    # The second run starts while the registry still shows the first run's services up (and
    # their queues are still there): `up` must wait for its own services to consume.
    code, first = await _up_demo(tmp_path, fresh_rabbit_url, postgres_url)
    assert code == 0, first
    code, second = await _up_demo(tmp_path, fresh_rabbit_url, postgres_url)
    assert code == 0, second
    assert "Traceback" not in second
    rows = [line for line in second.splitlines() if line.startswith("│ demo-")]
    assert len(rows) == 3, second
    assert all("ACTIVE" in row for row in rows), second
    assert "server demo-1 exists" in second
    import sqlalchemy as sa

    from pocketcloud.api.tables import servers
    from pocketcloud.network.tables import networks
    from pocketcloud.volume.tables import volumes
    from steward.db import Database

    async with Database(postgres_url) as db, db.session() as session:
        names = (
            await session.execute(sa.select(servers.c.name).where(servers.c.deleted == sa.false()))
        ).scalars()
        assert sorted(names) == ["demo-1", "demo-2", "demo-3"]
        assert len((await session.execute(sa.select(networks.c.id))).all()) == 1
        live = sa.select(volumes.c.id).where(volumes.c.deleted == sa.false())
        assert len((await session.execute(live)).all()) == 1


async def test_the_api_service_with_a_bad_token_file_fails_at_once_in_one_line(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("[[token]]\ntoken = 'hunter2'\nuser = 'a'\nproject = 'p'\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pocketcloud.services",
        "api",
        "--data-dir",
        str(tmp_path / "data"),
        env={**os.environ, "POCKETCLOUD_API_TOKEN_FILE": str(tokens)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(GUARD):
        out, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().splitlines() == [
        f"pocketcloud-api: error: ConfigError: `api_token_file` {str(tokens)!r}: `token.0.token` "
        "must have 16 characters at least, got 7 (expected [[token]] tables, each with `token` "
        "(16 characters at least), `user`, `project` and an optional `admin`)"
    ]
    assert out == b""
