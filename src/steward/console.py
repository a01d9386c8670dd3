"""The opt-in debug console (the seed's ``backdoor_port``): a Python shell for the service's owner.

The console is an unauthenticated Python shell inside the service, so who can reach it is the
whole of its protection. It is off unless a setting turns it on:

* ``backdoor_socket`` (oslo.service's name; the way to turn it on): a Unix socket at that path,
  ``{pid}`` and ``{binary}`` in it replaced. Only the service's user can connect: the socket is
  mode 0600 from the moment it has its name (it is bound under a private name, made 0600, then
  linked to its path), and its directory, created 0700 if missing, must not be writable by anyone
  but its owner or root (a sticky directory such as /tmp is accepted). A socket left at the path
  by a dead process of the same user is replaced; a live one, someone else's, a symlink or any
  other file is refused. The socket is removed when the console stops.
* ``backdoor_port`` (the explicit choice of TCP): a port ``"N"``, ``"0"`` for any free port, or
  a range ``"A:B"`` (the first free port in it; oslo's forms), on 127.0.0.1 only — but every
  local user of the host can connect to a TCP port, which is logged as a warning.

Connect with ``socat READLINE UNIX-CONNECT:PATH`` (or ``nc -U PATH``; ``socat READLINE
TCP:127.0.0.1:PORT`` for TCP) to get an asyncio-aware Python console — ``await`` works at the
prompt — with the service, its manager and the settings in scope. The console is aioconsole's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
import struct
import tempfile
import typing
from pathlib import Path

from steward._aio import TaskGroup
from steward._optional import require

__all__ = ["Console", "parse_port_range", "socket_path", "start_console", "start_unix_console"]

LOG = logging.getLogger(__name__)

BANNER = (
    "steward debug console: `service`, `manager` and `settings` are in scope; "
    "`await` works here. Ctrl-D leaves (the service keeps running)."
)

# sun_path holds 108 bytes on Linux, 104 on the BSDs and macOS, the final NUL included.
_MAX_SOCKET_PATH = 103


def parse_port_range(spec: str) -> tuple[int, int]:
    """Return ``(first, last)`` for ``"N"`` or ``"A:B"``; raise ``ValueError`` otherwise."""
    first_text, sep, last_text = spec.partition(":")
    try:
        first = int(first_text)
        last = int(last_text) if sep else first
    except ValueError as exc:
        raise ValueError(f"backdoor_port must be 'N', '0' or 'A:B', got {spec!r}") from exc
    if not 0 <= first <= last <= 65535:  # noqa: PLR2004 - the highest TCP port
        raise ValueError(f"backdoor_port range must be within 0-65535 with A <= B, got {spec!r}")
    return first, last


def socket_path(template: str, *, binary: str) -> Path:
    """Return the ``backdoor_socket`` path ``template`` with ``{pid}`` and ``{binary}`` filled."""
    return Path(template.replace("{pid}", str(os.getpid())).replace("{binary}", binary))


def _require_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the debug console binds a loopback address only (127.0.0.1, ::1), got {host!r}"
        )


class Console:
    """A running console server and its sessions; :meth:`close` ends them all.

    ``port`` is the TCP port (0 on a Unix socket); ``path`` the Unix socket (None on TCP).
    """

    def __init__(self, namespace: dict[str, typing.Any]) -> None:
        self.namespace = namespace
        self.server: asyncio.Server | None = None
        self.port = 0
        self.path: Path | None = None
        self._inode: tuple[int, int] | None = None
        self._sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        # A session that dies of an error is logged by the group; it is the debugger's, and
        # never fails the service.
        self._tasks = TaskGroup("debug console", on_crash=lambda exc: None)
        self._closed = False

    @property
    def connect_command(self) -> str:
        """The shell command that connects to this console."""
        if self.path is not None:
            return f"socat READLINE UNIX-CONNECT:{self.path}"
        return f"socat READLINE TCP:127.0.0.1:{self.port}"

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Start a :meth:`session` for a new connection; the console owns its task."""
        if self._closed:  # accepted while closing: nobody would end its session
            writer.transport.abort()
            return
        peer = _peer_uid(writer)
        if peer is not None and peer not in {os.geteuid(), 0}:
            # The socket's 0600 mode keeps others out on Linux; this is the second guard, for
            # systems that honour a socket's mode less.
            LOG.warning("Debug console refused a connection from uid %d", peer)
            writer.transport.abort()
            return
        task = self._tasks.create_task(self.session(reader, writer), name="session")
        self._sessions[task] = writer
        task.add_done_callback(self._sessions.pop)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: an asyncio-aware Python console over the stream."""
        from aioconsole import AsynchronousConsole  # noqa: PLC0415 - opt-in

        try:
            console = AsynchronousConsole(streams=(reader, writer), locals=self.namespace)
            await console.interact(banner=BANNER, stop=False, handle_sigint=False)
        finally:
            writer.close()

    async def close(self) -> None:
        """Stop listening, end every open session and remove the Unix socket."""
        self._closed = True
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        if self.path is not None and self._inode is not None:
            _remove_socket(self.path, self._inode)
            self._inode = None
        sessions = dict(self._sessions)
        await self._tasks.aclose()
        for writer in sessions.values():  # a session cancelled before it began closed nothing
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def start_console(
    spec: str, namespace: dict[str, typing.Any], *, host: str = "127.0.0.1"
) -> Console:
    """Start the console on TCP, the first free port of ``spec``; return it (``.port`` is bound).

    Raises ``ValueError`` for a non-loopback ``host`` or a malformed ``spec``, and ``OSError``
    when every port of the range is taken.
    """
    _require_loopback(host)
    require("aioconsole", feature="the debug console (backdoor_port)")  # sessions import it
    first, last = parse_port_range(spec)
    console = Console(namespace)
    for port in range(first, last + 1):
        try:
            console.server = await asyncio.start_server(console.accept, host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port < last:
                continue
            raise
        console.port = int(console.server.sockets[0].getsockname()[1])
        LOG.warning(
            "Debug console listening on %s:%d, which every local user can reach (backdoor_socket "
            "serves it to this user only); connect with: %s",
            host,
            console.port,
            console.connect_command,
        )
        return console
    raise OSError(errno.EADDRINUSE, f"no free port in {spec!r}")  # pragma: no cover - loop raises


async def start_unix_console(
    path: str | os.PathLike[str], namespace: dict[str, typing.Any]
) -> Console:
    """Start the console on a Unix socket at ``path`` that only this user may use; return it.

    Raises ``ValueError`` for a path too long for a socket, ``PermissionError`` for a directory
    others may write to or a socket of someone else's, ``FileExistsError`` for a live console, a
    symlink or another file at ``path``; see the module docstring.
    """
    require("aioconsole", feature="the debug console (backdoor_socket)")  # sessions import it
    listener, target, inode = await asyncio.to_thread(_listen_owner_only, Path(path))
    console = Console(namespace)
    console.path, console._inode = target, inode  # noqa: SLF001 - its own module
    try:
        console.server = await asyncio.start_unix_server(console.accept, sock=listener)
    except BaseException:
        listener.close()
        await console.close()
        raise
    LOG.info(
        "Debug console listening on %s (this user only); connect with: %s",
        target,
        console.connect_command,
    )
    return console


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """Return the uid of a Unix-socket peer (Linux's SO_PEERCRED), or None where not known."""
    sock = writer.get_extra_info("socket")
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or peercred is None or sock.family != socket.AF_UNIX:
        return None
    credentials = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def _prepare_directory(directory: Path) -> None:
    """Create ``directory`` 0700 if missing; refuse one that others may write to, or a symlink.

    A symlink is refused because whoever may write where it lives could point it elsewhere
    later, and clients following the configured path would reach their socket, not ours.
    """
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    found = directory.lstat()
    if stat.S_ISLNK(found.st_mode):
        raise PermissionError(
            f"backdoor_socket's directory {str(directory)!r} is a symlink; give its real path"
        )
    if not stat.S_ISDIR(found.st_mode):
        raise NotADirectoryError(f"backdoor_socket's directory {str(directory)!r} is not one")
    writable_by_others = found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky = found.st_mode & stat.S_ISVTX
    if found.st_uid not in {os.geteuid(), 0} or (writable_by_others and not sticky):
        raise PermissionError(
            f"backdoor_socket's directory {str(directory)!r} may be written by other users "
            f"(owner uid {found.st_uid}, mode {stat.S_IMODE(found.st_mode):o}), who could put "
            "their own socket there; choose a directory only you (or root) may write, such as "
            "$XDG_RUNTIME_DIR"
        )


def _clear_stale_socket(target: Path) -> None:
    """Remove a dead socket of ours at ``target``; refuse anything else found there."""
    try:
        found = target.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(found.st_mode) or not stat.S_ISSOCK(found.st_mode):
        raise FileExistsError(
            f"backdoor_socket {str(target)!r} exists and is not a socket (a symlink or a file); "
            "remove it or choose another path"
        )
    if found.st_uid != os.geteuid():
        raise PermissionError(
            f"backdoor_socket {str(target)!r} is a socket of another user (uid {found.st_uid}); "
            "choose another path"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        code = probe.connect_ex(str(target))
    if code in {errno.ECONNREFUSED, errno.ENOENT}:
        target.unlink(missing_ok=True)  # left by a process that died
        LOG.info("Removed the stale debug console socket %s", target)
        return
    raise FileExistsError(
        f"backdoor_socket {str(target)!r} is served by a running process; stop it or choose "
        "another path (a '{pid}' in backdoor_socket makes one per process)"
    )


def _listen_owner_only(path: Path) -> tuple[socket.socket, Path, tuple[int, int]]:
    """Check the place, then listen at ``path``; return the socket, its path and (dev, inode)."""
    target = path.absolute()
    if len(os.fsencode(target)) > _MAX_SOCKET_PATH:
        raise ValueError(
            f"backdoor_socket {str(target)!r} is longer than a Unix socket path may be "
            f"({_MAX_SOCKET_PATH} bytes); choose a shorter one"
        )
    _prepare_directory(target.parent)
    _clear_stale_socket(target)
    listener = _bind_owner_only(target)
    found = target.lstat()
    return listener, target, (found.st_dev, found.st_ino)


def _remove_socket(path: Path, inode: tuple[int, int]) -> None:
    """Remove the socket at ``path`` if it is still the one with ``inode`` (not a later one)."""
    with contextlib.suppress(FileNotFoundError):
        found = path.lstat()
        if (found.st_dev, found.st_ino) == inode:
            path.unlink()


def _bind_owner_only(target: Path) -> socket.socket:
    """Return a listening socket at ``target`` that was never reachable with a mode but 0600.

    Bound in a private (0700) directory, made 0600 there, then hard-linked to ``target``: the
    link fails if anything took ``target`` meanwhile, instead of replacing it.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private = Path(tempfile.mkdtemp(prefix=".steward-console-", dir=target.parent))
    try:
        bound = private / "console"
        listener.bind(str(bound))
        bound.chmod(0o600)
        listener.listen()
        listener.setblocking(False)
        os.link(bound, target)
    except BaseException:
        listener.close()
        raise
    finally:
        (private / "console").unlink(missing_ok=True)
        private.rmdir()
    return listener
