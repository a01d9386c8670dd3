"""No accepted request is lost: real worker processes on the real RabbitMQ, cut off mid-work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from steward.config import load_settings
from steward.context import RequestContext
from steward.rpc import RPCClient, Target, get_transport

GUARD = 120.0

TARGET = '''
import asyncio
import logging

import steward

LOG = logging.getLogger("slow_target")


class Slow(steward.Manager):
    """Each request takes a while, so that a stop finds many in flight."""

    def __init__(self, host=None):
        super().__init__(host, service_name="slow")

    async def work(self, context, n: int) -> dict:
        LOG.info("working on %d", n)
        await asyncio.sleep(0.5)
        return {"n": n, "host": self.host}
'''


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.changed = asyncio.Condition()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            async with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self.changed.notify_all()

    async def wait_for(self, pattern: str) -> None:
        regex = re.compile(pattern)
        async with asyncio.timeout(GUARD), self.changed:
            await self.changed.wait_for(lambda: any(regex.search(line) for line in self.lines))


StartWorker = Callable[[str], Awaitable[Worker]]


@pytest.fixture
async def start_worker(tmp_path: Path, rabbit_url: str) -> AsyncIterator[StartWorker]:
    (tmp_path / "slow_target.py").write_text(textwrap.dedent(TARGET))
    topic = f"reliability_{uuid.uuid4().hex[:8]}"
    workers: list[Worker] = []

    async def start(host: str) -> Worker:
        environment = {
            **os.environ,
            "STEWARD_TRANSPORT_URL": rabbit_url,
            "STEWARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
            "STEWARD_PERIODIC_FUZZY_DELAY": "0",
            "STEWARD_GRACEFUL_SHUTDOWN_TIMEOUT": "0.2",
            "STEWARD_HOST": host,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "steward", "run", "slow_target:Slow", "--topic", topic,
            cwd=tmp_path, env=environment, start_new_session=True,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = Worker(process)
        workers.append(worker)
        await worker.wait_for(r"steward-" + topic + r" on \S+ started")
        return worker

    start.topic = topic  # type: ignore[attr-defined]
    yield start
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        await worker.process.wait()
        worker.reader.cancel()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_no_call_is_lost_when_a_worker_stops_mid_flight(
    start_worker: StartWorker, rabbit_url: str, stop_signal: signal.Signals
) -> None:
    first = await start_worker("worker-a")
    second = await start_worker("worker-b")
    topic = start_worker.topic  # type: ignore[attr-defined]
    transport = get_transport(rabbit_url, settings=load_settings())
    try:
        client = RPCClient(transport, Target(topic), timeout=GUARD)
        calls = [
            asyncio.create_task(client.call(RequestContext(), "work", n=n)) for n in range(100)
        ]
        # Cut the first worker off while it is working on its share.
        await first.wait_for(r"working on \d+")
        first.process.send_signal(stop_signal)
        async with asyncio.timeout(GUARD):
            results = await asyncio.gather(*calls)
    finally:
        await transport.close()
    assert sorted(result["n"] for result in results) == list(range(100))
    hosts = {result["host"] for result in results}
    assert "worker-b" in hosts
    exit_code = await first.process.wait()
    assert exit_code == (0 if stop_signal == signal.SIGTERM else -signal.SIGKILL)
    if stop_signal == signal.SIGTERM:
        await first.wait_for("requests still running after")  # some were cut off and requeued
    assert second.process.returncode is None
