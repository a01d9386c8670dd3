from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.pocketcloud.flows import CloudFactory, client_for

from pocketcloud.api.app import REQUEST_ID_HEADER
from pocketcloud.config import load_cloud_settings

LIMIT = 64 * 1024
CHUNK = 8 * 1024


class _Body:
    """A streamed request body of ``total`` bytes that counts what the server pulled from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            chunk = b" " * min(CHUNK, self.total - self.sent)
            self.sent += len(chunk)
            yield chunk


def _too_large(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == 413
    assert error["type"] == "RequestTooLarge"
    assert error["request_id"] == response.headers[REQUEST_ID_HEADER]
    return error


@pytest.mark.parametrize("path", ["/v1/servers", "/v1/volumes", "/v1/networks"])
async def test_a_body_declared_over_the_limit_is_a_413_before_a_byte_is_read(
    cloud_factory: CloudFactory, path: str
) -> None:
    body = _Body(300 * 1024 * 1024)
    async with cloud_factory(api_max_body_size=LIMIT) as cloud, client_for(cloud) as client:
        response = await client.post(
            path,
            content=body,
            headers={"content-type": "application/json", "content-length": str(body.total)},
        )
        error = _too_large(response)
        assert error["message"] == (
            f"the request body must be at most {LIMIT} bytes, got {body.total} "
            "(its Content-Length); send less"
        )
        assert body.sent == 0
        assert (await client.get("/v1/servers")).json() == []


async def test_a_chunked_body_over_the_limit_is_cut_off_after_the_limit(
    cloud_factory: CloudFactory,
) -> None:
    # No Content-Length: the bytes are counted as they come, and reading stops past the limit,
    # so the server holds at most the limit and one chunk, never the 300 MiB sent.
    body = _Body(300 * 1024 * 1024)
    async with cloud_factory(api_max_body_size=LIMIT) as cloud, client_for(cloud) as client:
        response = await client.post(
            "/v1/servers", content=body, headers={"content-type": "application/json"}
        )
        error = _too_large(response)
        assert error["message"] == (
            f"the request body must be at most {LIMIT} bytes, got more; send less"
        )
        assert LIMIT < body.sent <= LIMIT + CHUNK


async def test_a_body_within_the_limit_is_served(cloud_factory: CloudFactory) -> None:
    async with cloud_factory(api_max_body_size=LIMIT) as cloud, client_for(cloud) as client:
        padding = " " * (LIMIT - 100)
        content = f'{{"name": "v", "size_gb": 1{padding}}}'.encode()
        assert len(content) <= LIMIT
        response = await client.post(
            "/v1/volumes", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text


async def test_the_limit_holds_on_the_served_socket(cloud_factory: CloudFactory) -> None:
    async with (
        cloud_factory(api_max_body_size=LIMIT, serve_rest=True) as cloud,
        httpx.AsyncClient(base_url=cloud.api_url) as client,
    ):
        response = await client.post(
            "/v1/volumes",
            content=b" " * (LIMIT + 1),
            headers={"content-type": "application/json"},
        )
        _too_large(response)
        assert (await client.get("/v1/volumes")).status_code == 200


def test_the_default_limit_is_one_mebibyte() -> None:
    assert load_cloud_settings().api_max_body_size == 1024 * 1024
