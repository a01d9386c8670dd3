from __future__ import annotations

import datetime
import logging
from typing import Any

import httpx
import pytest
from tests.pocketcloud.flows import boot, create_network, wait_for_status

from pocketcloud.allinone import AllInOne
from pocketcloud.api.app import REQUEST_ID_HEADER
from steward.context import RequestContextFilter


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status
    error: dict[str, Any] = body["error"]
    assert error["request_id"] == response.headers[REQUEST_ID_HEADER]
    return error


async def test_a_body_that_is_not_json_is_a_400_naming_the_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/servers", content=b'{"name": "vm", ', headers={"content-type": "application/json"}
    )
    error = _error(response, 400)
    assert error["type"] == "BadRequest"
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    ("content_type", "content", "expected"),
    [
        pytest.param(
            "text/plain",
            b'{"name": "vm"}',
            "the request body must be JSON, sent with `Content-Type: application/json`, "
            "got 'text/plain'",
            id="not-declared-json",
        ),
        pytest.param("application/json", b"", "the request needs a JSON body", id="no-body"),
    ],
)
async def test_a_body_that_is_not_sent_as_json_is_a_400_saying_what_to_send(
    client: httpx.AsyncClient, content_type: str, content: bytes, expected: str
) -> None:
    response = await client.post(
        "/v1/servers", content=content, headers={"content-type": content_type}
    )
    assert _error(response, 400)["message"] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"name": "vm", "ram_mb": "lots"},
            "`ram_mb`: Input should be a valid integer",
            id="string-for-int",
        ),
        pytest.param(
            {"name": "vm", "ram_mb": "512"},
            "`ram_mb`: Input should be a valid integer",
            id="numeric-string",
        ),
        pytest.param(
            {"name": "vm", "ram_mb": 0},
            "`ram_mb`: Input should be greater than or equal to 1",
            id="zero-ram",
        ),
        pytest.param({"name": "no spaces"}, "`name`: String should match pattern", id="bad-name"),
        pytest.param({"ram_mb": 512}, "`name`: Field required", id="missing-name"),
        pytest.param(
            {"name": "vm", "flavor": "m1"},
            "`flavor`: Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(["vm"], "Input should be a valid dictionary", id="not-an-object"),
    ],
)
async def test_a_body_of_wrong_shape_is_a_400_naming_the_field(
    client: httpx.AsyncClient, body: object, expected: str
) -> None:
    error = _error(await client.post("/v1/servers", json=body), 400)
    assert expected in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        pytest.param(
            "/v1/servers",
            {"name": "vm", "ram_mb": 10**9},
            "`ram_mb` must be at most 65536",
            id="ram",
        ),
        pytest.param(
            "/v1/servers",
            {"name": "vm", "disk_gb": 10**6},
            "`disk_gb` must be at most 2048",
            id="disk",
        ),
        pytest.param(
            "/v1/volumes",
            {"name": "v", "size_gb": 10**6},
            "`size_gb` must be at most 1024",
            id="volume",
        ),
        pytest.param(
            "/v1/networks",
            {"name": "n", "cidr": "10.0.0.0/8"},
            "prefix between /16 and /29",
            id="network",
        ),
        pytest.param(
            "/v1/networks",
            {"name": "n", "cidr": "10.0.0.1/24"},
            "host bits zero",
            id="cidr-host-bits",
        ),
        pytest.param("/v1/networks", {"name": "n", "cidr": "fd00::/64"}, "only IPv4", id="ipv6"),
    ],
)
async def test_sizes_out_of_range_are_a_400_saying_the_limit(
    cloud: AllInOne, client: httpx.AsyncClient, path: str, body: object, expected: str
) -> None:
    error = _error(await client.post(path, json=body), 400)
    assert error["type"] == "InvalidInput"
    assert expected in error["message"]
    assert (await client.get("/v1/servers")).json() == []


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/v1/servers/nope", "ServerNotFound"),
        ("DELETE", "/v1/servers/nope", "ServerNotFound"),
        ("POST", "/v1/servers/nope/reboot", "ServerNotFound"),
        ("GET", "/v1/servers/nope/console", "ServerNotFound"),
        ("GET", "/v1/volumes/nope", "VolumeNotFound"),
        ("DELETE", "/v1/volumes/nope", "VolumeNotFound"),
        ("POST", "/v1/volumes/nope/detach", "VolumeNotFound"),
        ("GET", "/v1/networks/nope", "NetworkNotFound"),
        ("GET", "/v1/nothing-here", "HTTPError"),
    ],
)
async def test_unknown_ids_in_the_path_are_a_404(
    client: httpx.AsyncClient, method: str, path: str, kind: str
) -> None:
    error = _error(await client.request(method, path), 404)
    assert error["type"] == kind
    if kind != "HTTPError":
        assert "'nope' does not exist" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/servers", "GET, POST"),
        ("PUT", "/v1/servers/nope", "DELETE, GET"),
        ("GET", "/v1/volumes/nope/attach", "POST"),
        ("DELETE", "/v1/networks", "GET, POST"),
    ],
)
async def test_a_method_the_path_does_not_take_is_a_405_naming_every_allowed_one(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    # Starlette's own 405 named the first matching route's methods only (`Allow: GET`).
    response = await client.request(method, path)
    error = _error(response, 405)
    assert error["type"] == "HTTPError"
    assert error["message"] == "Method Not Allowed"
    assert response.headers["allow"] == allowed


async def test_unknown_ids_in_the_body_are_a_400(client: httpx.AsyncClient) -> None:
    error = _error(await client.post("/v1/servers", json={"name": "vm", "network_id": "x"}), 400)
    assert error["message"] == "network 'x' does not exist"
    volume = (await client.post("/v1/volumes", json={"name": "v", "size_gb": 1})).json()
    response = await client.post(f"/v1/volumes/{volume['id']}/attach", json={"server_id": "y"})
    assert _error(response, 400)["message"] == "server 'y' does not exist"


async def test_actions_a_state_does_not_allow_are_a_409(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    volume = (await client.post("/v1/volumes", json={"name": "v", "size_gb": 1})).json()
    error = _error(await client.post(f"/v1/volumes/{volume['id']}/detach"), 409)
    assert error["type"] == "InvalidVolumeState"
    assert "nothing to detach" in error["message"]
    await create_network(client)
    error = _error(
        await client.post("/v1/networks", json={"name": "b", "cidr": "10.0.0.128/25"}), 409
    )
    assert error["type"] == "NetworkConflict"
    assert "overlaps network 'net'" in error["message"]
    error = _error(
        await client.post("/v1/networks", json={"name": "c", "cidr": "10.1.0.0/24", "vlan": 5}), 400
    )
    assert "FlatManager does not use VLANs" in error["message"]


async def test_a_server_that_is_not_active_cannot_be_rebooted(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await boot(client, ram_mb=10**5 // 2)  # more than any host has: ERROR
    await wait_for_status(client, server["id"], "ERROR")
    error = _error(await client.post(f"/v1/servers/{server['id']}/reboot"), 409)
    assert error["type"] == "InvalidServerState"
    assert "is ERROR; only an ACTIVE or SHUTOFF server can be rebooted" in error["message"]


async def test_the_services_keep_working_after_bad_input(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    for body in (b"\xff\xfe", b"[]", b"{", b"null", b'{"name": 5}'):
        response = await client.post(
            "/v1/servers", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
    server = await boot(client)
    assert (await wait_for_status(client, server["id"], "ACTIVE"))["host"] is not None


async def test_the_openapi_schema_describes_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "pocketcloud"
    assert set(schema["paths"]) == {
        "/v1/servers",
        "/v1/servers/{server_id}",
        "/v1/servers/{server_id}/reboot",
        "/v1/servers/{server_id}/console",
        "/v1/volumes",
        "/v1/volumes/{volume_id}",
        "/v1/volumes/{volume_id}/attach",
        "/v1/volumes/{volume_id}/detach",
        "/v1/networks",
        "/v1/networks/{network_id}",
        "/v1/services",
    }
    create = schema["paths"]["/v1/servers"]["post"]
    assert "400" in create["responses"]
    assert "ErrorBody" in str(create["responses"]["400"])
    # A request that does not fit is a 400: FastAPI's 422 and its body are never sent.
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert "ErrorBody" in str(operation["responses"]["4XX"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]


async def test_times_in_responses_are_utc_and_say_so(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # The database keeps naive UTC times; a response without an offset is no RFC 3339
    # `date-time`, as the schema promises, and reads as local time.
    network = await create_network(client)
    volume = (await client.post("/v1/volumes", json={"name": "v", "size_gb": 1})).json()
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    services = (await client.get("/v1/services")).json()
    times = [
        network["created_at"],
        volume["created_at"],
        server["created_at"],
        server["updated_at"],
        server["launched_at"],
        *(service["last_seen_up"] for service in services),
    ]
    now = datetime.datetime.now(datetime.UTC)
    for value in times:
        assert value.endswith("Z"), value
        assert abs(datetime.datetime.fromisoformat(value) - now) < datetime.timedelta(minutes=5)


async def test_an_unexpected_error_is_a_500_without_internals(
    cloud: AllInOne, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    assert cloud.api.cloud is not None
    monkeypatch.setattr(cloud.api.cloud, "list_servers", broken)
    error = _error(await client.get("/v1/servers"), 500)
    assert error["type"] == "InternalError"
    assert "secret" not in error["message"]


def _records_since(caplog: pytest.LogCaptureFixture, start: int) -> list[logging.LogRecord]:
    return caplog.records[start:]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/v1/volumes/nope", None, 404, id="volume-404"),
        pytest.param("GET", "/v1/networks/nope", None, 404, id="network-404"),
        pytest.param("GET", "/v1/servers/nope", None, 404, id="server-404"),
        pytest.param(
            "POST", "/v1/networks", {"name": "n", "cidr": "10.0.0.0/8"}, 400, id="network-400"
        ),
        pytest.param(
            "POST", "/v1/servers", {"name": "vm", "network_id": "x"}, 400, id="server-400"
        ),
    ],
)
async def test_a_client_error_is_logged_in_one_line_without_a_traceback(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    start = len(caplog.records)
    response = await client.request(method, path, json=body)
    assert response.status_code == status
    records = _records_since(caplog, start)
    assert [r.getMessage() for r in records if r.exc_info or r.exc_text] == []
    assert all("\n" not in r.getMessage() for r in records)
    assert all(r.levelno <= logging.INFO for r in records)


async def test_a_409_from_another_service_is_logged_in_one_line_without_a_traceback(
    cloud: AllInOne, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await create_network(client)
    start = len(caplog.records)
    response = await client.post("/v1/networks", json={"name": "b", "cidr": "10.0.0.128/25"})
    assert response.status_code == 409
    records = _records_since(caplog, start)
    assert [r.getMessage() for r in records if r.exc_info or r.exc_text] == []
    failures = [r.getMessage() for r in records if "NetworkConflict" in r.getMessage()]
    assert len(failures) == 1, failures


async def test_an_unexpected_error_is_logged_with_its_traceback(
    cloud: AllInOne,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    assert cloud.api.cloud is not None
    monkeypatch.setattr(cloud.api.cloud, "list_volumes", broken)
    caplog.handler.addFilter(RequestContextFilter())
    response = await client.get("/v1/volumes")
    assert response.status_code == 500
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], RuntimeError)
    assert getattr(logged[0], "request_id", None) == response.headers[REQUEST_ID_HEADER]
