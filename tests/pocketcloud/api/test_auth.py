"""Token authentication: a project per token, resources scoped to it, admin-only services."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.pocketcloud.flows import CloudFactory, client_for, wait_for_status

from pocketcloud.allinone import AllInOne
from pocketcloud.api.app import REQUEST_ID_HEADER
from pocketcloud.api.tokens import load_tokens
from steward import ConfigError
from steward.context import RequestContext, get_current

ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"

TOKEN_FILE = f"""
[[token]]
token = "{ADMIN}"
user = "root"
project = "ops"
admin = true

[[token]]
token = "{ALICE}"
user = "alice"
project = "project-a"

[[token]]
token = "{BOB}"
user = "bob"
project = "project-b"
"""


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKEN_FILE)
    path.chmod(0o600)
    return path


@pytest.fixture
async def guarded(cloud_factory: CloudFactory, token_file: Path) -> AsyncIterator[AllInOne]:
    async with cloud_factory(api_token_file=token_file) as cloud:
        yield cloud


def _as(cloud: AllInOne, token: str | None) -> httpx.AsyncClient:
    client = client_for(cloud)
    if token is not None:
        client.headers["X-Auth-Token"] = token
    return client


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    assert error["request_id"] == response.headers[REQUEST_ID_HEADER]
    return error


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(None, "this API needs a token: send it in the X-Auth-Token header", id="none"),
        pytest.param(
            "not-a-known-token-at-all",
            "the token sent in X-Auth-Token is not valid",
            id="unknown",
        ),
    ],
)
async def test_a_request_without_a_valid_token_is_a_401_in_one_line(
    guarded: AllInOne, token: str | None, expected: str
) -> None:
    async with _as(guarded, token) as client:
        for method, path in (("GET", "/v1/servers"), ("POST", "/v1/volumes")):
            response = await client.request(method, path, json={})
            error = _error(response, 401)
            assert error == error | {"type": "Unauthorized", "message": expected}
            # RFC 9110: a 401 names the way to authenticate.
            assert response.headers["www-authenticate"] == 'X-Auth-Token realm="pocketcloud"'
        assert (await client.get("/openapi.json")).status_code == 200


async def test_the_services_are_for_admins_only(guarded: AllInOne) -> None:
    async with _as(guarded, ALICE) as alice, _as(guarded, ADMIN) as admin:
        error = _error(await alice.get("/v1/services"), 403)
        assert error["type"] == "Forbidden"
        assert "admin" in error["message"]
        response = await admin.get("/v1/services")
        assert response.status_code == 200
        assert response.json()


async def test_a_project_sees_and_deletes_only_its_own_resources(guarded: AllInOne) -> None:
    async with _as(guarded, ALICE) as alice, _as(guarded, BOB) as bob, _as(guarded, ADMIN) as admin:
        network = await alice.post("/v1/networks", json={"name": "a", "cidr": "10.5.0.0/24"})
        assert network.status_code == 201, network.text
        volume = (await alice.post("/v1/volumes", json={"name": "v", "size_gb": 1})).json()
        server = (await alice.post("/v1/servers", json={"name": "vm", "ram_mb": 256})).json()
        assert server["project_id"] == "project-a"
        await wait_for_status(alice, server["id"], "ACTIVE")
        ids = {"servers": server["id"], "volumes": volume["id"], "networks": network.json()["id"]}

        for kind, resource_id in ids.items():
            assert (await bob.get(f"/v1/{kind}")).json() == []
            _error(await bob.get(f"/v1/{kind}/{resource_id}"), 404)
            assert [item["id"] for item in (await alice.get(f"/v1/{kind}")).json()] == [resource_id]
            assert [item["id"] for item in (await admin.get(f"/v1/{kind}")).json()] == [resource_id]
        _error(await bob.delete(f"/v1/servers/{server['id']}"), 404)
        _error(await bob.delete(f"/v1/volumes/{volume['id']}"), 404)
        _error(await bob.post(f"/v1/servers/{server['id']}/reboot"), 404)
        response = await bob.post(
            "/v1/servers", json={"name": "b", "network_id": network.json()["id"]}
        )
        assert _error(response, 400)["message"].endswith("does not exist")
        response = await bob.post(f"/v1/volumes/{volume['id']}/attach", json={"server_id": "x"})
        _error(response, 404)
        assert (await alice.get(f"/v1/servers/{server['id']}")).status_code == 200
        assert (await alice.get(f"/v1/volumes/{volume['id']}")).status_code == 200


async def test_the_context_carries_the_tokens_user_and_project_to_the_service(
    guarded: AllInOne, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[RequestContext | None] = []

    def remember(record: logging.LogRecord) -> bool:
        if record.name == "pocketcloud.volume.manager":
            seen.append(get_current())
        return True

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(remember)
    async with _as(guarded, ALICE) as alice:
        response = await alice.post("/v1/volumes", json={"name": "v", "size_gb": 1})
    assert response.status_code == 201, response.text
    assert response.json()["project_id"] == "project-a"
    contexts = [context for context in seen if context is not None]
    assert contexts, "the volume service logged nothing inside the request"
    assert {(c.user_id, c.project_id, c.is_admin) for c in contexts} == {
        ("alice", "project-a", False)
    }
    assert all(c.auth_token is None for c in contexts)  # the token itself never travels


async def test_without_a_token_file_the_api_is_open_and_says_so(
    cloud_factory: CloudFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with cloud_factory() as cloud, client_for(cloud) as client:
        assert (await client.get("/v1/services")).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no api_token_file" in line and "admin" in line for line in warnings), warnings


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("[[token]]\ntoken = 'short'\nuser = 'a'\nproject = 'p'\n", "16", id="short"),
        pytest.param("[[token]]\nuser = 'a'\nproject = 'p'\n", "`token.0.token`", id="missing"),
        pytest.param("token = [", "not valid TOML", id="toml"),
        pytest.param("", "`token`: Field required", id="empty"),
        pytest.param(
            f"[[token]]\ntoken = '{ALICE}'\nuser = 'a'\nproject = 'p'\n"
            f"[[token]]\ntoken = '{ALICE}'\nuser = 'b'\nproject = 'q'\n",
            "repeats the token",
            id="duplicate",
        ),
    ],
)
def test_a_bad_token_file_is_a_config_error_that_never_shows_a_token(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_tokens(path)
    assert expected in str(raised.value)
    assert ALICE not in str(raised.value)
    assert "short'" not in str(raised.value)


def test_a_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_tokens(tmp_path / "nope.toml")


async def test_an_overlapping_network_does_not_name_another_projects(guarded: AllInOne) -> None:
    async with _as(guarded, ALICE) as alice, _as(guarded, BOB) as bob:
        body = {"name": "alices-secret-net", "cidr": "10.6.0.0/24"}
        assert (await alice.post("/v1/networks", json=body)).status_code == 201
        error = _error(
            await bob.post("/v1/networks", json={"name": "b", "cidr": "10.6.0.0/25"}), 409
        )
        assert "alices-secret-net" not in error["message"]
        assert "overlaps a network of another project" in error["message"]


def test_a_token_file_others_may_read_is_warned_about(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert len(load_tokens(token_file)) == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"The API's token file {str(token_file)!r} may be read by other users (mode 0o644); "
        "`chmod 600` it"
    ]
    caplog.clear()
    token_file.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        load_tokens(token_file)
    assert caplog.records == []


def test_a_short_token_is_refused_without_showing_it_even_in_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text("[[token]]\ntoken = 'hunter2'\nuser = 'a'\nproject = 'p'\n")
    with pytest.raises(ConfigError) as raised:
        load_tokens(path)
    assert "`token.0.token` must have 16 characters at least, got 7" in str(raised.value)
    shown = "".join(traceback.format_exception(raised.value))
    assert "hunter2" not in shown
