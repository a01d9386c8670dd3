"""CloudClient: pocketcloud's REST API from Python, one method per user action (sync httpx).

The ``pocketcloud server|volume|network|host`` commands speak to the API through it, and the
demo reads its answers with :func:`read_json`. Methods return the API's JSON as decoded (dicts and
lists) and raise one of these, each carrying a message to show as it is::

    CloudClientError
    ├── ApiError               the API answered with an error status: ``status``, ``message``
    ├── ApiUnreachable         no answer: nothing listens at the URL, or it did not answer in time
    └── UnexpectedResponse     an answer that is not the API's JSON (something else at the URL?)
"""

from __future__ import annotations

import typing
import urllib.parse

import httpx

from steward.redact import shorten

__all__ = [
    "AUTH_HEADER",
    "JSON",
    "ApiError",
    "ApiUnreachable",
    "CloudClient",
    "CloudClientError",
    "UnexpectedResponse",
    "read_json",
    "unreachable",
]

JSON = dict[str, typing.Any]
"""One resource as the API shows it."""

_MESSAGE_LIMIT = 200
AUTH_HEADER = "X-Auth-Token"
"""Where a request carries its token (OpenStack's header; the API reads the same)."""


class CloudClientError(Exception):
    """The root of the client's errors; ``str()`` is one line to show the user."""


class ApiError(CloudClientError):
    """The API answered ``status`` (4xx or 5xx); ``message`` is what its error body says.

    ``kind`` is the error's name in the body (``ServerNotFound``) and ``request_id`` the request's
    id, for the services' logs; both are None when the answer was not the API's error JSON.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.kind = kind
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


class ApiUnreachable(CloudClientError, ConnectionError):
    """No answer from the API at ``url``: refused, unknown host, timed out or cut off."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the pocketcloud API at {url} {reason}")
        self.url = url


class UnexpectedResponse(CloudClientError):
    """An answer that is not the API's JSON, such as a web page from another server."""


def unreachable(exc: httpx.HTTPError, url: str, *, timeout: float) -> CloudClientError:
    """Return the one-line error for ``exc``, raised by httpx asking the API at ``url``.

    A timeout says how long it waited (httpx's own message is empty), anything else its kind.
    """
    if isinstance(exc, httpx.ConnectError):
        return ApiUnreachable(url, "is not reachable (is `pocketcloud up` running?)")
    if isinstance(exc, httpx.TimeoutException):
        return ApiUnreachable(url, f"did not answer within {timeout:g} s ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return ApiUnreachable(url, f"broke off: {str(exc) or type(exc).__name__}")
    return UnexpectedResponse(
        f"the pocketcloud API at {url} answered what httpx cannot read: "
        f"{type(exc).__name__}: {shorten(str(exc)) or 'no detail'}"
    )


def read_json(response: httpx.Response) -> typing.Any:  # noqa: ANN401 - JSON from the API
    """Return the response's JSON, or None for an empty body (204).

    Raises :class:`ApiError` for a 4xx or 5xx status, with the message of the API's error body
    (``{"error": {"code", "type", "message", "request_id"}}``) or, for a body of another shape,
    the start of its text or the reason phrase. Raises :class:`UnexpectedResponse` for a success
    whose body is not JSON.
    """
    if response.is_error:
        raise _error_of(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        kind = response.headers.get("content-type", "no content type")
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url} answered {response.status_code} "
            f"with {kind}, not JSON: is it the pocketcloud API?"
        ) from exc


def _error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return ApiError(
            response.status_code,
            detail["message"],
            kind=detail.get("type"),
            request_id=detail.get("request_id"),
        )
    if isinstance(body, dict) and isinstance(body.get("detail"), str):  # starlette's own errors
        return ApiError(response.status_code, body["detail"])
    text = " ".join(response.text.split())
    if text and response.headers.get("content-type", "").startswith("text/plain"):
        if len(text) > _MESSAGE_LIMIT:
            text = text[: _MESSAGE_LIMIT - 3] + "..."
        return ApiError(response.status_code, text)
    return ApiError(response.status_code, response.reason_phrase or "error")


def _base_url(url: str) -> str:
    """Return ``url`` without a trailing ``/`` or ``/v1`` (``pocketcloud up`` shows ``.../v1``)."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise CloudClientError(f"the API's URL must be http://HOST:PORT, got {shorten(url)!r}")
    path = parsed.path.rstrip("/")
    path = path.removesuffix("/v1")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def _segment(identifier: str) -> str:
    # An id is one path segment, whatever a user typed ("../volumes" must not climb; a bare
    # "." or ".." is a dot segment to URL resolution, so its dots are escaped too).
    quoted = urllib.parse.quote(identifier, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


class CloudClient:
    """A client of the REST API at ``url`` (``http://127.0.0.1:8774``; a ``/v1`` is optional).

    ``timeout`` bounds each request in seconds; ``token`` is sent in ``X-Auth-Token`` (an API
    with tokens answers 401 without one). Use it as ``with CloudClient(url) as client:``.
    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``). Raises
    :class:`CloudClientError` at once for a URL that is not ``http(s)://``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _base_url(url)
        self.timeout = timeout
        headers = {AUTH_HEADER: token} if token else {}
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers=headers, transport=transport
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> typing.Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, path: str, *, body: JSON | None = None) -> typing.Any:  # noqa: ANN401 - JSON from the API
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise unreachable(exc, self.url, timeout=self.timeout) from exc
        return read_json(response)

    def _one(self, method: str, path: str, *, body: JSON | None = None) -> JSON:
        found = self._request(method, path, body=body)
        if not isinstance(found, dict):
            raise UnexpectedResponse(
                f"{method} {shorten(path)} answered {shorten(repr(found))}, not a JSON object"
            )
        return found

    def _many(self, path: str) -> list[JSON]:
        found = self._request("GET", path)
        if not isinstance(found, list):
            raise UnexpectedResponse(
                f"GET {shorten(path)} answered {shorten(repr(found))}, not a JSON list"
            )
        return found

    # --- servers -------------------------------------------------------------------------------

    def list_servers(self) -> list[JSON]:
        """Return every server, oldest first."""
        return self._many("/v1/servers")

    def get_server(self, server_id: str) -> JSON:
        """Return one server; :class:`ApiError` 404 once it is gone."""
        return self._one("GET", f"/v1/servers/{_segment(server_id)}")

    def create_server(
        self,
        name: str,
        *,
        ram_mb: int | None = None,
        disk_gb: int | None = None,
        availability_zone: str | None = None,
        network_id: str | None = None,
    ) -> JSON:
        """Ask for a server and return it BUILDING; options left None take the API's defaults."""
        body: JSON = {"name": name}
        options = {
            "ram_mb": ram_mb,
            "disk_gb": disk_gb,
            "availability_zone": availability_zone,
            "network_id": network_id,
        }
        body |= {field: value for field, value in options.items() if value is not None}
        return self._one("POST", "/v1/servers", body=body)

    def delete_server(self, server_id: str) -> None:
        """Ask for the server's deletion: it is DELETING until its host removed it."""
        self._request("DELETE", f"/v1/servers/{_segment(server_id)}")

    def reboot_server(self, server_id: str) -> JSON:
        """Reboot an ACTIVE or SHUTOFF server and return it REBOOTING."""
        return self._one("POST", f"/v1/servers/{_segment(server_id)}/reboot")

    # --- volumes -------------------------------------------------------------------------------

    def list_volumes(self) -> list[JSON]:
        """Return every volume."""
        return self._many("/v1/volumes")

    def get_volume(self, volume_id: str) -> JSON:
        """Return one volume."""
        return self._one("GET", f"/v1/volumes/{_segment(volume_id)}")

    def create_volume(self, name: str, *, size_gb: int) -> JSON:
        """Create a volume of ``size_gb`` GiB and return it."""
        return self._one("POST", "/v1/volumes", body={"name": name, "size_gb": size_gb})

    def delete_volume(self, volume_id: str) -> None:
        """Delete an available (not attached) volume."""
        self._request("DELETE", f"/v1/volumes/{_segment(volume_id)}")

    def attach_volume(self, volume_id: str, server_id: str) -> JSON:
        """Attach the volume to an ACTIVE or SHUTOFF server and return the volume."""
        path = f"/v1/volumes/{_segment(volume_id)}/attach"
        return self._one("POST", path, body={"server_id": server_id})

    def detach_volume(self, volume_id: str) -> JSON:
        """Detach the volume from its server and return the volume."""
        return self._one("POST", f"/v1/volumes/{_segment(volume_id)}/detach")

    # --- networks and services -----------------------------------------------------------------

    def list_networks(self) -> list[JSON]:
        """Return every network."""
        return self._many("/v1/networks")

    def get_network(self, network_id: str) -> JSON:
        """Return one network."""
        return self._one("GET", f"/v1/networks/{_segment(network_id)}")

    def create_network(self, name: str, cidr: str, *, vlan: int | None = None) -> JSON:
        """Create a network on ``cidr`` (under VlanManager, on ``vlan`` or a free one)."""
        body: JSON = {"name": name, "cidr": cidr}
        if vlan is not None:
            body["vlan"] = vlan
        return self._one("POST", "/v1/networks", body=body)

    def list_services(self) -> list[JSON]:
        """Return every service of the registry with its ``state``, ``up`` or ``down``."""
        return self._many("/v1/services")
