"""A 5,000-character id, name or header echoed back: every error and log line shows a prefix."""

from __future__ import annotations

import logging

import httpx
import pytest
from tests.pocketcloud.flows import create_network

from pocketcloud.allinone import AllInOne

LONG = "x" * 5000
SHOWN = "(5000 characters)"
LINE = 400
"""The longest message or log line a 5,000-character input may cause."""


def _short_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    message: str = response.json()["error"]["message"]
    assert len(message) < LINE, message[:300]
    assert LONG not in message
    return message


def _short_logs(caplog: pytest.LogCaptureFixture) -> None:
    served = [r for r in caplog.records if r.name != "httpx"]  # httpx: the test's own client
    long_lines = [r.getMessage()[:200] for r in served if len(r.getMessage()) >= LINE]
    assert long_lines == []
    assert not [r for r in served if r.exc_text and LONG in r.exc_text]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/servers/{LONG}"),
        ("DELETE", f"/v1/servers/{LONG}"),
        ("POST", f"/v1/servers/{LONG}/reboot"),
        ("GET", f"/v1/servers/{LONG}/console"),
        ("GET", f"/v1/volumes/{LONG}"),
        ("DELETE", f"/v1/volumes/{LONG}"),
        ("POST", f"/v1/volumes/{LONG}/detach"),
        ("GET", f"/v1/networks/{LONG}"),
    ],
    ids=lambda value: value if len(value) < 10 else value.replace(LONG, "LONG"),
)
async def test_a_long_id_in_the_path_is_a_404_showing_a_prefix_and_its_length(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    caplog.set_level(logging.INFO)
    message = _short_error(await client.request(method, path), 404)
    assert SHOWN in message
    _short_logs(caplog)


async def test_a_long_id_in_the_body_shows_a_prefix_and_its_length(
    cloud: AllInOne, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post("/v1/servers", json={"name": "vm", "network_id": LONG})
    assert SHOWN in _short_error(response, 400)
    network = await create_network(client)
    volume = (await client.post("/v1/volumes", json={"name": "v", "size_gb": 1})).json()
    response = await client.post(f"/v1/volumes/{volume['id']}/attach", json={"server_id": LONG})
    assert SHOWN in _short_error(response, 400)
    response = await client.post("/v1/networks", json={"name": LONG, "cidr": "10.9.0.0/24"})
    assert SHOWN in _short_error(response, 400)
    assert network["id"]
    _short_logs(caplog)


async def test_a_long_field_name_or_content_type_shows_a_prefix_and_its_length(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post("/v1/servers", json={"name": "vm", LONG: 1})
    assert SHOWN in _short_error(response, 400)
    response = await client.post(
        "/v1/servers", content=b'{"name": "vm"}', headers={"content-type": f"text/{LONG}"}
    )
    assert "(5005 characters)" in _short_error(response, 400)
    _short_logs(caplog)
