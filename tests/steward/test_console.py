from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from steward import Manager
from steward.config import load_settings
from steward.console import parse_port_range, socket_path, start_console, start_unix_console
from steward.db import Database
from steward.registry import Registry
from steward.rpc import RPCClient, Target, get_transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 20.0


async def converse(where: int | Path, line: str, expect: bytes) -> bytes:
    if isinstance(where, Path):
        reader, writer = await asyncio.open_unix_connection(str(where))
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", where)
    try:
        async with asyncio.timeout(GUARD):
            await reader.readuntil(b">>> ")
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return await reader.readuntil(expect)
    finally:
        writer.close()
        await writer.wait_closed()


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


# --- the Unix socket (backdoor_socket) --------------------------------------------------------


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A directory every user may enter (as /run/steward might be) but only this one writes."""
    path = Path(tempfile.mkdtemp(prefix="steward-console-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def test_unix_console_is_owner_only_and_runs_statements(shared_directory: Path) -> None:
    path = shared_directory / "run" / "c.sock"
    console = await start_unix_console(path, {"answer": 41})
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # made by the console
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert console.port == 0
        assert console.server is not None
        assert {sock.family for sock in console.server.sockets} == {socket.AF_UNIX}
        output = await converse(path, "answer + 1", b"42")
        assert output.endswith(b"42")
        assert console.connect_command == f"socat READLINE UNIX-CONNECT:{path}"
    finally:
        await console.close()
    assert not path.exists()
    assert [entry.name for entry in path.parent.iterdir()] == []  # no private leftovers


async def test_another_user_cannot_connect(shared_directory: Path) -> None:
    # The directory lets everyone in; the socket's own mode (0600) is what refuses them.
    path = shared_directory / "c.sock"
    console = await start_unix_console(path, {})
    try:
        socat = shutil.which("socat")
        assert socat is not None, "socat is the documented client; the machine has it"
        other = await asyncio.create_subprocess_exec(
            socat, "-", f"UNIX-CONNECT:{path}",
            user=65534, group=65534, extra_groups=[],
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(GUARD):
            _, errors = await other.communicate()
        assert other.returncode != 0
        assert b"Permission denied" in errors
        assert (await converse(path, "6 * 7", b"42")).endswith(b"42")  # its owner still can
    finally:
        await console.close()


async def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX) as dead:  # bound, then closed without unlinking
        dead.bind(str(path))
    console = await start_unix_console(path, {"x": 1})
    try:
        assert (await converse(path, "x + 1", b"2")).endswith(b"2")
    finally:
        await console.close()


async def test_a_live_console_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    first = await start_unix_console(path, {})
    try:
        with pytest.raises(FileExistsError, match="served by a running process"):
            await start_unix_console(path, {})
        # The first console still serves (and has taken the probe's connection, so close() ends it).
        assert (await converse(path, "1 + 1", b"2")).endswith(b"2")
    finally:
        await first.close()


@pytest.mark.parametrize("kind", ["symlink", "file"])
async def test_a_symlink_or_a_file_at_the_path_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "c.sock"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep me")
    if kind == "symlink":
        path.symlink_to(elsewhere)
    else:
        path.write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a socket"):
        await start_unix_console(path, {})
    assert elsewhere.read_text() == "keep me"
    assert path.read_text() == "keep me"


async def test_a_socket_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX) as theirs:
        theirs.bind(str(path))
    os.chown(path, 65534, 65534)
    with pytest.raises(PermissionError, match="socket of another user"):
        await start_unix_console(path, {})
    assert path.lstat().st_uid == 65534


@pytest.mark.parametrize(("mode", "owner"), [(0o777, None), (0o775, None), (0o700, 65534)])
async def test_a_directory_others_may_write_is_refused(
    tmp_path: Path, mode: int, owner: int | None
) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(mode)
    if owner is not None:
        os.chown(directory, owner, owner)
    with pytest.raises(PermissionError, match="may be written by other users"):
        await start_unix_console(directory / "c.sock", {})
    assert list(directory.iterdir()) == []


async def test_a_directory_given_through_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(PermissionError, match="is a symlink; give its real path"):
        await start_unix_console(tmp_path / "link" / "c.sock", {})
    assert list(real.iterdir()) == []


async def test_a_sticky_directory_such_as_tmp_is_accepted() -> None:
    path = Path(tempfile.gettempdir()) / f"steward-test-{os.getpid()}.sock"
    console = await start_unix_console(path, {})
    try:
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
    finally:
        await console.close()
    assert not path.exists()


async def test_a_path_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="longer than a Unix socket path may be"):
        await start_unix_console(tmp_path / ("x" * 120), {})


def test_socket_path_fills_pid_and_binary() -> None:
    path = socket_path("/run/steward/{binary}-{pid}.sock", binary="nova-compute")
    assert path == Path(f"/run/steward/nova-compute-{os.getpid()}.sock")


async def test_service_console_on_a_socket_opens_no_tcp_port(
    registry: Registry, tmp_path: Path
) -> None:
    template = str(tmp_path / "run" / "{binary}-{pid}.sock")
    settings = load_settings(overrides={"backdoor_socket": template, "periodic_fuzzy_delay": "0"})
    transport = get_transport("memory://", settings=settings)
    manager = Manager(host="h1", service_name="volume", settings=settings)
    service = Service(manager, topic="volume", transport=transport, registry=registry,
                      settings=settings, clock=FakeClock())  # fmt: skip
    path = tmp_path / "run" / f"{service.binary}-{os.getpid()}.sock"
    await service.start()
    try:
        assert manager.backdoor_port is None  # no TCP port was opened
        base = RPCClient(transport, Target("volume", namespace="baseapi", version="1.1"))
        assert await base.call(None, "get_backdoor_port") is None
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        output = await converse(path, "manager.service_name.upper()", b"'VOLUME'")
        assert output.endswith(b"'VOLUME'")
    finally:
        await service.stop()
        await transport.close()
    assert not path.exists()


async def test_no_console_unless_asked(registry: Registry) -> None:
    settings = load_settings(overrides={"periodic_fuzzy_delay": "0"})
    assert settings.backdoor_socket is None
    assert settings.backdoor_port is None
    transport = get_transport("memory://", settings=settings)
    manager = Manager(host="h1", service_name="volume", settings=settings)
    service = Service(manager, topic="volume", transport=transport, registry=registry,
                      settings=settings, clock=FakeClock())  # fmt: skip
    await service.start()
    try:
        assert manager.backdoor_port is None
        assert service._console is None
    finally:
        await service.stop()
        await transport.close()
