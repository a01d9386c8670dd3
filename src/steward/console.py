"""The opt-in debug console (the seed's ``backdoor_port``), loopback only.

Off unless the ``backdoor_port`` setting is given: a port ``"N"``, ``"0"`` for any free port, or a
range ``"A:B"`` (the first free port in it; oslo's forms). It listens on 127.0.0.1 and refuses to
bind anything but a loopback address, so the console is reachable only from the host itself.
Connect with ``nc 127.0.0.1 PORT`` (or ``python -m aioconsole``'s client) to get an asyncio-aware
Python console — ``await`` works at the prompt — with the service, its manager and the settings in
scope. The console itself is aioconsole's.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import typing

__all__ = ["Console", "parse_port_range", "start_console"]

LOG = logging.getLogger(__name__)

BANNER = (
    "steward debug console: `service`, `manager` and `settings` are in scope; "
    "`await` works here. Ctrl-D leaves (the service keeps running)."
)


def parse_port_range(spec: str) -> tuple[int, int]:
    """Return ``(first, last)`` for ``"N"`` or ``"A:B"``; raise ``ValueError`` otherwise."""
    first_text, sep, last_text = spec.partition(":")
    try:
        first = int(first_text)
        last = int(last_text) if sep else first
    except ValueError as exc:
        raise ValueError(f"backdoor_port must be 'N', '0' or 'A:B', got {spec!r}") from exc
    if not 0 <= first <= last <= 65535:
        raise ValueError(f"backdoor_port range must be within 0-65535 with A <= B, got {spec!r}")
    return first, last


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
    """A running console server and its sessions; :meth:`close` ends them all."""

    def __init__(self, namespace: dict[str, typing.Any]) -> None:
        self.namespace = namespace
        self.server: asyncio.Server | None = None
        self.port = 0
        self._sessions: set[asyncio.Task[None]] = set()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: an asyncio-aware Python console over the stream."""
        from aioconsole import AsynchronousConsole  # noqa: PLC0415 - opt-in

        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            console = AsynchronousConsole(streams=(reader, writer), locals=self.namespace)
            await console.interact(banner=BANNER, stop=False, handle_sigint=False)
        finally:
            writer.close()
            if task is not None:
                self._sessions.discard(task)

    async def close(self) -> None:
        """Stop listening and end every open session."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)


async def start_console(
    spec: str, namespace: dict[str, typing.Any], *, host: str = "127.0.0.1"
) -> Console:
    """Start the console on the first free port of ``spec``; return it (``.port`` is bound).

    Raises ``ValueError`` for a non-loopback ``host`` or a malformed ``spec``, and ``OSError``
    when every port of the range is taken.
    """
    _require_loopback(host)
    first, last = parse_port_range(spec)
    console = Console(namespace)
    for port in range(first, last + 1):
        try:
            console.server = await asyncio.start_server(console.session, host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port < last:
                continue
            raise
        console.port = int(console.server.sockets[0].getsockname()[1])
        LOG.info("Debug console listening on %s:%d", host, console.port)
        return console
    raise OSError(errno.EADDRINUSE, f"no free port in {spec!r}")  # pragma: no cover - loop raises
