from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from tests.pocketcloud.flows import DEADLINE, CloudFactory
from typer.testing import CliRunner, Result

from pocketcloud import commands
from pocketcloud.allinone import AllInOne
from pocketcloud.cli import app
from pocketcloud.client import ApiError, CloudClient, CloudClientError, UnexpectedResponse

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def served(cloud_factory: CloudFactory) -> AsyncIterator[AllInOne]:
    """A running cloud serving its REST API on a free loopback port."""
    async with cloud_factory(serve_rest=True) as cloud:
        yield cloud


async def _run(url: str, *arguments: str, env: dict[str, str] | None = None) -> Result:
    """Run ``pocketcloud ARGUMENTS`` against ``url`` (POCKETCLOUD_URL) in a worker thread.

    The CLI's httpx client blocks; the cloud it talks to serves from this test's event loop.
    """

    def invoke() -> Result:
        # 80 columns, as a pipe gets: tables print whole all the same.
        environment = {"POCKETCLOUD_URL": url, "COLUMNS": "80", **(env or {})}
        return CliRunner().invoke(app, list(arguments), env=environment)

    async with asyncio.timeout(DEADLINE):
        return await asyncio.to_thread(invoke)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return result.stdout


def _json(result: Result) -> Any:
    return orjson.loads(_ok(result))


def _failed(result: Result) -> str:
    """Assert the command failed as one line on stderr, stdout empty; return that line."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _row_of(output: str, text: str) -> str:
    rows = [line for line in output.splitlines() if text in line]
    assert len(rows) == 1, output
    return rows[0]


async def test_network_create_then_list_shows_it_as_a_table_and_as_json(served: AllInOne) -> None:
    url = served.api_url
    created = _json(await _run(url, "network", "create", "net1", "10.0.0.0/24", "--json"))
    assert created["name"] == "net1"
    assert created["cidr"] == "10.0.0.0/24"

    row = _row_of(_ok(await _run(url, "network", "list")), created["id"])
    assert "net1" in row
    assert "10.0.0.0/24" in row
    assert "10.0.0.1" in row
    assert "br100" in row

    listed = _json(await _run(url, "network", "list", "--json"))
    assert listed == [created]
    shown = _ok(await _run(url, "network", "show", created["id"]))
    assert _row_of(shown, "cidr").split() == ["cidr", "10.0.0.0/24"]


async def test_server_create_wait_list_show_reboot_and_delete_wait(served: AllInOne) -> None:
    url = served.api_url
    _ok(await _run(url, "network", "create", "net1", "10.0.0.0/24"))
    server = _json(
        await _run(
            url,
            *("server", "create", "web", "--ram-mb", "256", "--disk-gb", "2"),
            *("--network", "net1", "--wait", "--json"),
        )
    )
    assert server["status"] == "ACTIVE"
    assert server["address"] == "10.0.0.2"
    assert (server["ram_mb"], server["disk_gb"]) == (256, 2)

    row = _row_of(_ok(await _run(url, "server", "list")), server["id"])
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        server["id"],
        "web",
        "ACTIVE",
        server["host"],
        "10.0.0.2",
        "256 MiB",
        "2 GiB",
    ]
    shown = _ok(await _run(url, "server", "show", server["id"]))
    assert _row_of(shown, "status").split() == ["status", "ACTIVE"]
    assert _row_of(shown, "fault").split() == ["fault", "-"]

    rebooted = _json(await _run(url, "server", "reboot", server["id"], "--json"))
    assert rebooted["status"] == "REBOOTING"
    settled = _json(await _run(url, "server", "create", "db", "--wait", "--json"))
    assert settled["status"] == "ACTIVE"

    deleted = await _run(url, "server", "delete", server["id"], "--wait")
    assert _ok(deleted) == f"Server {server['id']} deleted.\n"
    assert [s["id"] for s in _json(await _run(url, "server", "list", "--json"))] == [settled["id"]]
    assert _ok(await _run(url, "server", "delete", settled["id"], "--wait", "--json")) == ""
    assert _ok(await _run(url, "server", "list")) == "No servers.\n"


async def test_server_create_wait_exits_1_with_the_fault_when_the_server_goes_error(
    served: AllInOne,
) -> None:
    result = await _run(served.api_url, "server", "create", "huge", "--ram-mb", "50000", "--wait")
    assert result.exit_code == 1
    assert _row_of(result.stdout, "status").split() == ["status", "ERROR"]
    assert result.stderr.startswith("error: server ")
    assert " is ERROR: " in result.stderr


async def test_volume_create_attach_detach_delete(served: AllInOne) -> None:
    url = served.api_url
    server = _json(await _run(url, "server", "create", "vm", "--wait", "--json"))
    volume = _json(await _run(url, "volume", "create", "data", "--size-gb", "2", "--json"))
    assert (volume["name"], volume["size_gb"], volume["status"]) == ("data", 2, "available")

    attached = _ok(await _run(url, "volume", "attach", volume["id"], server["id"]))
    assert _row_of(attached, "status").split() == ["status", "in-use"]
    assert _row_of(attached, "server_id").split() == ["server_id", server["id"]]
    row = _row_of(_ok(await _run(url, "volume", "list")), volume["id"])
    assert "data" in row
    assert "2 GiB" in row
    assert "in-use" in row
    assert server["id"] in row

    refused = _failed(await _run(url, "volume", "delete", volume["id"]))
    assert refused.startswith("error: 409 ")

    detached = _json(await _run(url, "volume", "detach", volume["id"], "--json"))
    assert (detached["status"], detached["server_id"]) == ("available", None)
    assert _ok(await _run(url, "volume", "delete", volume["id"])) == (
        f"Volume {volume['id']} deleted.\n"
    )
    assert _json(await _run(url, "volume", "list", "--json")) == []


async def test_host_list_shows_every_service_up(served: AllInOne) -> None:
    output = _ok(await _run(served.api_url, "host", "list"))
    for host, binary in [
        ("compute1", "pocketcloud-compute"),
        ("compute2", "pocketcloud-compute"),
        (served.api.host, "pocketcloud-api"),
        (served.api.host, "pocketcloud-scheduler"),
    ]:
        row = _row_of(output, binary if binary != "pocketcloud-compute" else host)
        assert host in row
        assert " up " in row
        assert " enabled " in row
    services = _json(await _run(served.api_url, "host", "list", "--json"))
    assert len(services) == 6
    assert {service["state"] for service in services} == {"up"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            ("server", "show", MISSING), f"server '{MISSING}' does not exist", id="server-show"
        ),
        pytest.param(
            ("server", "delete", MISSING, "--wait"),
            f"server '{MISSING}' does not exist",
            id="server-delete",
        ),
        pytest.param(("volume", "detach", MISSING), MISSING, id="volume-detach"),
        # One path segment, never a climb to GET /v1/servers (which would answer 200).
        pytest.param(("network", "show", "../servers"), "Not Found", id="not-a-path"),
    ],
)
async def test_an_unknown_id_is_the_apis_404_on_stderr_and_nothing_on_stdout(
    served: AllInOne, arguments: tuple[str, ...], message: str
) -> None:
    line = _failed(await _run(served.api_url, *arguments, "--json"))
    assert line.startswith("error: 404 ")
    assert message in line


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            ("volume", "create", "v", "--size-gb", "0"),
            "error: 400 `size_gb`: Input should be greater than or equal to 1, got 0",
            id="size-zero",
        ),
        pytest.param(
            ("volume", "create", "v", "--size-gb", "100000"),
            "error: 400 `size_gb` must be at most",
            id="size-too-large",
        ),
        pytest.param(
            ("server", "create", "no spaces"),
            "error: 400 `name`: String should match pattern",
            id="bad-name",
        ),
        pytest.param(
            ("server", "create", "vm", "--network", "nowhere"),
            "error: 400 network 'nowhere' does not exist",
            id="unknown-network",
        ),
        pytest.param(
            ("network", "create", "n", "10.1.0.0/24", "--vlan", "5"),
            "error: 400 ",
            id="vlan-under-flat",
        ),
    ],
)
async def test_bad_input_is_the_apis_4xx_message(
    served: AllInOne, arguments: tuple[str, ...], message: str
) -> None:
    assert _failed(await _run(served.api_url, *arguments)).startswith(message)


async def test_a_url_ending_in_v1_as_up_shows_it_works(served: AllInOne) -> None:
    result = await _run("http://unused.invalid", "host", "list", "--url", f"{served.api_url}/v1/")
    assert "pocketcloud-api" in _ok(result)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_api_is_one_line_with_a_hint() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    line = _failed(await _run(url, "server", "list"))
    assert line == (
        f"error: the pocketcloud API at {url} is not reachable (is `pocketcloud up` running?)"
    )


async def test_a_url_that_is_not_http_is_one_line() -> None:
    line = _failed(await _run("ftp://127.0.0.1", "server", "list"))
    assert line == "error: the API's URL must be http://HOST:PORT, got 'ftp://127.0.0.1'"


class _NotTheApi(http.server.BaseHTTPRequestHandler):
    """Answers like something else at the URL: a proxy's 502 page, or a web page."""

    def do_GET(self) -> None:
        status = 502 if self.path.startswith("/v1/servers") else 200
        body = b"<html><body>nope</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _not_the_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotTheApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


async def test_answers_that_are_not_the_apis_json_are_one_line() -> None:
    with _not_the_api() as url:
        bad_gateway = _failed(await _run(url, "server", "list"))
        web_page = _failed(await _run(url, "volume", "list"))
    assert bad_gateway == "error: 502 Bad Gateway"
    assert web_page == (
        f"error: GET {url}/v1/volumes answered 200 with text/html, not JSON: "
        "is it the pocketcloud API?"
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            httpx.Response(
                409,
                json={
                    "error": {"code": 409, "type": "Conflict", "message": "m", "request_id": "r"}
                },
            ),
            ApiError(409, "m", kind="Conflict", request_id="r"),
            id="api-error",
        ),
        pytest.param(
            httpx.Response(404, json={"detail": "Not Found"}),
            ApiError(404, "Not Found"),
            id="starlette-detail",
        ),
        pytest.param(
            httpx.Response(500, text="upstream\n  exploded"),
            ApiError(500, "upstream exploded"),
            id="plain-text",
        ),
        pytest.param(
            httpx.Response(503, html="<h1>down</h1>"),
            ApiError(503, "Service Unavailable"),
            id="html",
        ),
    ],
)
def test_the_client_raises_api_error_with_the_bodys_message(
    response: httpx.Response, expected: ApiError
) -> None:
    transport = httpx.MockTransport(lambda request: response)
    with (
        CloudClient("http://api", transport=transport) as client,
        pytest.raises(ApiError) as raised,
    ):
        client.list_servers()
    assert (raised.value.status, raised.value.message) == (expected.status, expected.message)
    assert (raised.value.kind, raised.value.request_id) == (expected.kind, expected.request_id)


def test_the_client_quotes_ids_and_omits_options_left_out() -> None:
    seen: list[tuple[str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.raw_path.decode(), request.content))
        return httpx.Response(200, json={"id": "x"})

    with CloudClient("http://api/v1", transport=httpx.MockTransport(answer)) as client:
        client.get_server("a/b c")
        client.get_server("..")  # never GET /v1
        client.get_server("v1.2")
        client.create_server("vm", ram_mb=256)
    assert seen == [
        ("/v1/servers/a%2Fb%20c", b""),
        ("/v1/servers/%2E%2E", b""),
        ("/v1/servers/v1.2", b""),
        ("/v1/servers", b'{"name":"vm","ram_mb":256}'),
    ]


def test_the_client_rejects_a_list_where_an_object_belongs() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    with (
        CloudClient("http://api", transport=transport) as client,
        pytest.raises(UnexpectedResponse, match="not a JSON object"),
    ):
        client.get_volume("v")


def test_waiting_past_the_timeout_fails_in_one_line_saying_the_last_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    looks: list[str] = []

    def look() -> str:
        looks.append("BUILDING")
        return "BUILDING"

    with pytest.raises(typer.Exit) as exited:
        commands._poll("server s", look, timeout=0)
    assert exited.value.exit_code == 1
    assert looks == ["BUILDING"]
    assert capsys.readouterr().err == "error: server s: still BUILDING after 0 s\n"


def test_the_clients_errors_show_a_prefix_of_a_long_answer_or_id() -> None:
    long = "x" * 5000
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[long]))
    with (
        CloudClient("http://api", transport=transport) as client,
        pytest.raises(UnexpectedResponse) as raised,
    ):
        client.get_volume(long)
    assert len(str(raised.value)) < 400
    assert "characters)" in str(raised.value)
    with pytest.raises(CloudClientError) as bad_url:
        CloudClient(f"ftp://{long}")
    assert len(str(bad_url.value)) < 400
    assert "(5006 characters)" in str(bad_url.value)


@contextlib.contextmanager
def _silent_api() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung API)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


async def test_an_api_that_does_not_answer_is_one_line_naming_the_url_and_the_wait() -> None:
    with _silent_api() as url:
        line = _failed(await _run(url, "server", "list", "--timeout", "0.2"))
    assert line == (
        f"error: the pocketcloud API at {url} did not answer within 0.2 s (ReadTimeout)"
    )


async def test_the_demo_against_an_api_that_does_not_answer_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from pocketcloud import demo

    monkeypatch.setattr(demo, "REQUEST_TIMEOUT", 0.2)
    with _silent_api() as url, pytest.raises(demo.DemoError) as failed:
        await demo.run_demo(url, console=Console(file=io.StringIO()))
    assert str(failed.value) == (
        f"GET /v1/networks: the pocketcloud API at {url} did not answer within 0.2 s (ReadTimeout)"
    )


async def test_the_commands_send_the_token_of_the_option_or_the_environment(
    cloud_factory: CloudFactory, tmp_path: Path
) -> None:
    token = "alice-token-0123456789"
    path = tmp_path / "tokens.toml"
    path.write_text(f"[[token]]\ntoken = '{token}'\nuser = 'alice'\nproject = 'a'\n")
    async with cloud_factory(serve_rest=True, api_token_file=path) as cloud:
        url = cloud.api_url
        line = _failed(await _run(url, "server", "list"))
        assert line == (
            "error: 401 this API needs a token: send it in the X-Auth-Token header; "
            "give the token with --token or POCKETCLOUD_TOKEN"
        )
        assert _ok(await _run(url, "server", "list", "--token", token)) == "No servers.\n"
        result = await _run(
            url,
            "volume",
            "create",
            "v",
            "--size-gb",
            "1",
            "--json",
            env={"POCKETCLOUD_TOKEN": token},
        )
        assert _json(result)["project_id"] == "a"
        line = _failed(await _run(url, "host", "list", "--token", token))
        assert line.startswith("error: 403 only an admin may list the services")


async def test_the_demo_without_the_apis_token_fails_in_one_line_saying_how_to_give_it(
    cloud_factory: CloudFactory, tmp_path: Path
) -> None:
    from rich.console import Console

    from pocketcloud import demo

    path = tmp_path / "tokens.toml"
    path.write_text("[[token]]\ntoken = 'admin-token-0123456789'\nuser = 'r'\nproject = 'o'\n")
    async with cloud_factory(serve_rest=True, api_token_file=path) as cloud:
        url = cloud.api_url
        with pytest.raises(demo.DemoError) as failed:
            await demo.run_demo(url, console=Console(file=io.StringIO()))
    assert str(failed.value) == (
        f"GET {url}/v1/networks: 401 this API needs a token: send it in the "
        "X-Auth-Token header; give `pocketcloud up` the token with --token or POCKETCLOUD_TOKEN"
    )
