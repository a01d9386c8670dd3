"""A property-based test of the REST API against its own OpenAPI schema (schemathesis).

schemathesis sends every operation requests drawn from the schema, valid and invalid, to a live
all-in-one cloud: no answer may be a 5xx, invalid requests must be refused with a 4xx, and every
answer must be one the schema documents, shaped as documented. The cloud then still boots a
server.

schemathesis' tests are synchronous and send real HTTP, while the cloud's services live on an
asyncio loop. So the cloud runs on a loop of its own in a background thread for the whole module,
serving REST on a free loopback port; the tests talk to it over the socket only. Its clock is a
fake one that never moves: periodic work stays still, while RPC between the services
(``memory://``) runs as usual.

The schema is taken from the application at import, as pytest collects one test per operation
from it; a test checks that the live API serves that same schema.
"""

from __future__ import annotations

import asyncio
import os
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.pocketcloud.flows import (
    DEADLINE,
    boot,
    make_cloud_settings,
    make_steward_settings,
    wait_for_status,
)

from pocketcloud import config as cloud_config
from pocketcloud.allinone import AllInOne
from pocketcloud.api.app import create_app
from pocketcloud.api.cloud import Cloud
from pocketcloud.config import load_cloud_settings
from steward import config
from steward.testing import FakeClock

if typing.TYPE_CHECKING:
    # A type alias schemathesis defines for type checkers only.
    from schemathesis.specs.openapi.schemas import OpenApiCase

MAX_EXAMPLES = 30
"""Generated requests per operation, on top of schemathesis' coverage cases: ~15 s in all."""

# The schema does not depend on the cloud behind the routes: this app only describes itself.
_APP = create_app(typing.cast("Cloud", None), max_body_size=load_cloud_settings().api_max_body_size)
schema = schemathesis.openapi.from_dict(_APP.openapi())


class _CloudThread:
    """An all-in-one cloud serving REST on a free port, on the event loop of a thread it owns.

    ``with`` it to get the API's base URL; leaving stops the services and joins the thread, and
    an error of the cloud's (at start or stop) is raised in the caller's thread.
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="pocketcloud", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(DEADLINE):
            raise AssertionError(f"the cloud did not start within {DEADLINE} s")
        if self._error is not None:
            raise self._error
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), f"the cloud did not stop within {DEADLINE} s"
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        clock = FakeClock(start=1000.0)
        # The steward_settings fixture's settings (that fixture is function-scoped).
        settings = make_steward_settings(self.data)
        # The notifier and the RPC servers read the process's settings as they start.
        config.set_settings(settings)
        # Hosts with room for every server the property run boots (up to 64 GiB each), so that
        # the one booted after it still finds a host.
        cloud_settings = make_cloud_settings(
            self.data, api_host="127.0.0.1", compute_memory_mb=2**24, compute_disk_gb=2**20
        )
        cloud = AllInOne(
            cloud_settings,
            settings=settings,
            compute_hosts=("compute1", "compute2"),
            clock=clock,
            serve_rest=True,
        )
        async with cloud:
            self.url = cloud.api_url
            self._ready.set()
            await self._stop.wait()
            # As the cloud_factory fixture: let the services' heartbeats park before they stop.
            async with asyncio.timeout(DEADLINE):
                await clock.wait_for_sleepers(len(cloud.services))


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the cloud served for this module's tests (see the module docstring)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The autouse fixtures that do this are function-scoped: they run after this one.
        for name in list(os.environ):
            if name.startswith((config.ENV_PREFIX, cloud_config.ENV_PREFIX)):
                monkeypatch.delenv(name)
        with _CloudThread(tmp_path_factory.mktemp("openapi")) as url:
            yield url


async def test_the_live_api_serves_the_schema_under_test(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        served = (await client.get("/openapi.json")).json()
    assert served == _APP.openapi()


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run, so CI never fails by chance
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    api_url: str, case: OpenApiCase
) -> None:
    # Every check schemathesis has (no 5xx, invalid data refused with a 4xx, documented status,
    # content type, body and headers, a 405 naming the allowed methods...) but one: the schema
    # cannot say which ids exist, how big a server may be (a setting) or which CIDRs are free,
    # so a schema-valid request may well get a 400 that names the problem.
    case.call_and_validate(base_url=api_url, excluded_checks=[positive_data_acceptance])


async def test_the_cloud_keeps_working_after_the_property_run(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        volume = await client.post("/v1/volumes", json={"name": "after", "size_gb": 1})
        assert volume.status_code == 201, volume.text
        server = await boot(client, "after")
        assert (await wait_for_status(client, server["id"], "ACTIVE"))["host"] is not None
        listed = (await client.get("/v1/servers")).json()
        assert server["id"] in {each["id"] for each in listed}
