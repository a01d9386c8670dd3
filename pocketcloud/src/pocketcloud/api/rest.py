"""RestServer: serves the REST API with uvicorn inside a running service.

The api manager starts it once its RPC consumers run and stops it in ``cleanup_host``. The
listening socket is bound before anything else (so a port in use fails start-up with a clear
error, and port 0 gets its real number at once), and uvicorn's own signal handling is left out:
the steward launcher owns SIGINT and SIGTERM and stops the services, which stops this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import typing
from collections.abc import Iterator

import uvicorn

from steward._aio import TaskGroup

if typing.TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["RestServer"]

LOG = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The launcher handles signals; uvicorn would re-raise them after its own shutdown.
        yield


class RestServer:
    """Serves ``app`` on ``host``:``port`` (port 0: a free one; see :attr:`port`)."""

    def __init__(
        self, app: ASGIApp, *, host: str, port: int, graceful_shutdown_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.port: int | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        # uvicorn's serve() runs in the server's group; if it dies, the group logs it at once
        # and `failure` keeps it (a failure while starting is raised by start() instead).
        self.failure: BaseException | None = None
        self._tasks = TaskGroup("rest api", on_crash=self._crashed)

    def _crashed(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc

    @property
    def url(self) -> str:
        """The base URL clients use, once started."""
        if self.port is None:
            raise RuntimeError("the REST server has not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the socket and start serving; raises ``OSError`` if the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.requested_port), family=family)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(self.graceful_shutdown_timeout)),
        )
        self._server = _Server(config)
        self._task = self._tasks.create_task(self._server.serve(sockets=[sock]), name="uvicorn")
        await asyncio.sleep(0)  # let uvicorn set up: a failure shows below
        if self._task.done() and self.failure is not None:
            failure, self.failure = self.failure, None
            self._server = self._task = None
            raise failure
        LOG.info("REST API listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish, and wait for uvicorn to end."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._task = None
        await self._tasks.wait()  # uvicorn ends by itself once it should exit
        await self._tasks.aclose()
        LOG.info("REST API on %s stopped", self.url)
