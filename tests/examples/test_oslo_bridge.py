from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from examples.oslo_bridge import EXPECTED, main
from examples.oslo_bridge.crossings import Crossing

ROOT = Path(__file__).parents[2]
GUARD = 120.0  # the example's own process: imports, two frameworks, a broker (a loaded machine)


def matching(crossings: list[Crossing], route: str, kind: str, what: str) -> list[Crossing]:
    return [c for c in crossings if (c.route, c.kind) == (route, kind) and c.what.startswith(what)]


async def test_oslo_and_steward_services_call_and_notify_each_other(
    fresh_rabbit_url: str,
) -> None:
    crossings = await main(fresh_rabbit_url)
    for expected in EXPECTED:
        assert len(matching(crossings, *expected)) == 1, expected
    # One request, one id, from the oslo caller through compute to the scheduler and back, in
    # every call, cast, result and notification it caused.
    [boot] = matching(
        crossings, "oslo -> steward", "call", "compute.boot_instance(instance_id='vm-1'"
    )
    assert boot.request_id is not None
    assert boot.request_id.startswith("req-")
    caused = [c for c in crossings if c.what.split(" ")[0] != "compute.capacity"]
    assert {c.request_id for c in caused} == {boot.request_id}
    # The periodic task's notification has a context of its own.
    [capacity] = matching(crossings, "steward -> oslo", "notification", "compute.capacity")
    assert capacity.request_id not in {None, boot.request_id}
    # The scheduler's answer is the host compute booted on, as the oslo caller was told.
    [selected] = matching(crossings, "oslo -> steward", "result", "select_host -> ")
    host = selected.what.removeprefix("select_host -> ").strip("'")
    [booted] = matching(crossings, "steward -> oslo", "result", "boot_instance -> ")
    assert f"'host': '{host}'" in booted.what


async def test_python_m_runs_it_and_exits_0(fresh_rabbit_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.oslo_bridge",
        "--url",
        fresh_rabbit_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(GUARD):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("oslo.messaging and steward on amqp://guest:***@127.0.0.1:5672/")
    assert lines[-1] == f"{len(EXPECTED)} crossings, 2 request ids; done."
    assert sum(line.startswith("  oslo -> steward ") for line in lines) == sum(
        route == "oslo -> steward" for route, _, _ in EXPECTED
    )
