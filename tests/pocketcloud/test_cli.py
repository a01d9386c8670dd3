from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from tests.pocketcloud.flows import DEADLINE
from tests.steward.test_cli_startup import loaded_after, run_help

from pocketcloud.cli import _up
from pocketcloud.config import load_cloud_settings
from pocketcloud.database import MIGRATIONS
from steward.db import Database

COMMAND = (sys.executable, "-m", "pocketcloud")
UP_TIMEOUT = 120.0


def _environment() -> dict[str, str]:
    # The child starts from defaults: none of this process's steward or pocketcloud settings.
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STEWARD_", "POCKETCLOUD_"))
    } | {"COLUMNS": "120"}


def _guests_of(data_dir: Path) -> list[int]:
    return [int(path.read_text()) for path in data_dir.glob("instances/*/*/guest.pid")]


def _runs(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def test_the_command_is_installed_as_a_console_script() -> None:
    scripts = metadata.entry_points(group="console_scripts")
    assert [ep.value for ep in scripts if ep.name == "pocketcloud"] == ["pocketcloud.cli:main"]


@pytest.mark.parametrize(
    "code", ["import pocketcloud.cli", run_help("pocketcloud.cli:main")], ids=["import", "help"]
)
def test_the_command_imports_nothing_heavy_until_a_command_runs(code: str) -> None:
    assert loaded_after(code) == []
    assert loaded_after(f"{code}\nimport pocketcloud.client") == ["httpx"]


async def test_up_demo_boots_three_servers_shows_them_and_exits_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "up",
        "--demo",
        "--demo-exit",
        "--data-dir",
        str(data_dir),
        "--api-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(),
    )
    async with asyncio.timeout(UP_TIMEOUT):
        out, err = await process.communicate()
    output = out.decode()
    assert process.returncode == 0, err.decode()
    assert "pocketcloud is up: REST API on http://127.0.0.1:" in output
    assert "✓ network demo-net (10.0.0.0/24)" in output
    assert "✓ demo-vol attached to demo-1" in output
    rows = [line for line in output.splitlines() if re.match(r"│ demo-\d", line)]
    assert len(rows) == 3
    assert all("ACTIVE" in row and "10.0.0." in row for row in rows)
    assert "network demo-net 10.0.0.0/24 on br100" in output
    assert (data_dir / "pocketcloud.db").is_file()
    assert len(list((data_dir / "volumes").glob("*.img"))) == 1
    assert not [pid for pid in _guests_of(data_dir) if _runs(pid)], "guests outlived the cloud"


async def test_up_serves_the_api_on_loopback_until_sigint_then_stops_gracefully(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "up",
        "--data-dir",
        str(tmp_path),
        "--api-port",
        "0",
        "--compute-driver",
        "fake",
        "--compute-hosts",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(),
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(DEADLINE):
            line = ""
            while "pocketcloud is up" not in line:
                line = (await process.stdout.readline()).decode()
                assert line, "pocketcloud up exited before serving"
        found = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        assert found is not None, line
        async with httpx.AsyncClient(base_url=found.group(1)) as client:
            services = (await client.get("/v1/services")).json()
            assert {service["binary"] for service in services} >= {"pocketcloud-api"}
            response = await client.post("/v1/servers", json={"name": "x", "ram_mb": "x"})
            assert response.status_code == 400
            assert (await client.get("/docs")).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(DEADLINE):
            _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def test_db_upgrade_then_current_reports_the_newest_revision(tmp_path: Path) -> None:
    head = Database.head_revision(MIGRATIONS)
    for arguments, expected in (
        (("db", "current"), f"pocketcloud schema: empty (behind {head}"),
        (("db", "upgrade"), f"pocketcloud schema: {head}"),
        (("db", "current"), f"pocketcloud schema: {head} (up to date)"),
    ):
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            *arguments,
            "--data-dir",
            str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_environment(),
        )
        async with asyncio.timeout(DEADLINE):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert out.decode().startswith(expected), out.decode()


async def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    environment = _environment() | {"POCKETCLOUD_API_HOST": "0.0.0.0"}  # noqa: S104 - refused
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "up",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    async with asyncio.timeout(DEADLINE):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "loopback address only" in err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize("where", ["one-process", "on-a-broker"])
async def test_up_with_its_api_port_taken_fails_at_once_in_one_line(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    if where == "one-process":
        options = ["--compute-driver", "fake"]
    else:
        options = ["--transport-url", request.getfixturevalue("rabbit_url")]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "up",
            "--data-dir",
            str(tmp_path),
            "--api-port",
            str(port),
            *options,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_environment(),
        )
        async with asyncio.timeout(DEADLINE):
            out, err = await process.communicate()
    assert process.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, err.decode()
    assert f"the REST API cannot listen on 127.0.0.1:{port}: Address already in use" in lines[0]
    assert out == b""
    assert not (tmp_path / "pocketcloud.db").exists()  # nothing was started or written


class _Launcher:
    """Runs until asked to stop, as the steward launchers do."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()

    async def run(self) -> int:
        await self.stop.wait()
        return 0

    def request_stop(self) -> None:
        self.stop.set()


async def test_up_names_the_services_that_never_answered_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_up, "STARTUP_TIMEOUT", 0.01)
    pending = {("compute", "compute2"), ("volume", "vm")}
    launcher = _Launcher()

    async def never_ready() -> str:
        await asyncio.Event().wait()
        return "unreachable"

    code = await _up._serve(
        launcher,
        never_ready(),
        "test",
        load_cloud_settings({"data_dir": tmp_path}),
        pending=pending,
        demo=True,
        demo_exit=True,
        token=None,
    )
    assert code == 1
    assert launcher.stop.is_set()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: the services compute on compute2, volume on vm did not answer within 0.01 s; "
        f"stopping. The services' logs are in {tmp_path}."
    ]


async def test_up_with_a_bad_token_file_fails_at_once_in_one_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("[[token]]\ntoken = 'hunter2'\nuser = 'a'\nproject = 'p'\n")
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--api-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment() | {"POCKETCLOUD_API_TOKEN_FILE": str(tokens)},
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode == 2
    lines = err.decode().splitlines()
    assert len(lines) == 1, err.decode()
    assert "`token.0.token` must have 16 characters at least, got 7" in lines[0]
    assert "(expected [[token]] tables" in lines[0]
    assert "hunter2" not in err.decode()
    assert out == b""
