"""The REST API: FastAPI routes over :class:`~pocketcloud.api.cloud.Cloud`, and its errors.

Routes live under ``/v1``; ``/docs`` and ``/openapi.json`` describe them. Every error is JSON of
the shape ``{"error": {"code", "type", "message", "request_id"}}``: pocketcloud's errors with
their own status (400, 404, 409, 503), a body that is not JSON or does not fit the schema as 400,
a body over ``api_max_body_size`` as 413 (see :mod:`~pocketcloud.api.body_limit`), an unknown
path as 404, a method the path does not take as 405 (its ``Allow`` header names those
it does), a service that did not answer in time as 503, and anything unexpected as 500 without
internals (the log has the traceback, under the request id). Each response carries
its request id in ``X-OpenStack-Request-ID``.

With tokens (:mod:`~pocketcloud.api.tokens`), every route but the API's description
(``/openapi.json``, ``/docs``) needs a known ``X-Auth-Token`` (else 401), and the request's
context carries the token's user, project and admin flag to every service it reaches. Without
tokens every request is an admin's (the API then listens on a loopback address only).
"""

from __future__ import annotations

import logging
import typing

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from pocketcloud.api.body_limit import BodyLimit, BodyTooLarge
from pocketcloud.api.cloud import Cloud
from pocketcloud.api.schemas import (
    ConsoleView,
    ErrorBody,
    ErrorDetail,
    NetworkCreate,
    NetworkView,
    ServerCreate,
    ServerView,
    ServiceView,
    VolumeAttach,
    VolumeCreate,
    VolumeView,
)
from pocketcloud.api.tokens import AUTH_HEADER, Identity, Tokens
from pocketcloud.errors import PocketcloudError
from steward.context import RequestContext, bind, generate_request_id
from steward.errors import MessageUndeliverable, MessagingTimeout
from steward.redact import shorten

__all__ = ["REQUEST_ID_HEADER", "create_app"]

LOG = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-OpenStack-Request-ID"

# The API's description is public: it holds no data, and clients read it before they have a token.
_PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

# What every operation may answer besides success. "4XX" says that any other client error (405
# for a method the path does not take) has the same body, and keeps FastAPI from documenting its
# 422 HTTPValidationError, which this API never sends: a request that does not fit is a 400.
_ERRORS: dict[int | str, dict[str, typing.Any]] = {
    400: {
        "model": ErrorBody,
        "description": "The request can never succeed as sent (not JSON, not fitting the "
        "schema, a size over the limit, an unknown id in the body); the message says what to "
        "change.",
    },
    401: {
        "model": ErrorBody,
        "description": "No token, or an unknown one, in `X-Auth-Token` (when the API has tokens).",
    },
    403: {"model": ErrorBody, "description": "The token may not do this (not an admin's)."},
    404: {
        "model": ErrorBody,
        "description": "No resource of the token's project has the id in the path.",
    },
    409: {
        "model": ErrorBody,
        "description": "The resource's state does not allow the action, or what it needs is "
        "taken (no host with room, no free address, an overlapping network).",
    },
    413: {
        "model": ErrorBody,
        "description": "The request body is larger than the API reads (`api_max_body_size`).",
    },
    "4XX": {"model": ErrorBody, "description": "Any other client error."},
    503: {"model": ErrorBody, "description": "A service did not answer in time."},
}


def _error(
    code: int,
    kind: str,
    message: str,
    request: Request,
    *,
    headers: typing.Mapping[str, str] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = ErrorBody(
        error=ErrorDetail(code=code, type=kind, message=message, request_id=request_id)
    )
    sent = dict(headers or {})
    if request_id:
        sent[REQUEST_ID_HEADER] = request_id
    return JSONResponse(body.model_dump(), status_code=code, headers=sent)


def _allowed_methods(request: Request) -> str:
    """Return the methods of every route at the request's path, for a 405's ``Allow``.

    Starlette's 405 names only the first route whose path matched (``GET`` alone for
    ``/v1/servers``, which also takes ``POST``); RFC 9110 wants all the resource's methods.
    """
    methods = {
        method
        for route in request.app.router.routes
        if isinstance(route, Route) and route.methods
        if route.matches(request.scope)[0] is not Match.NONE
        for method in route.methods
    }
    return ", ".join(sorted(methods))


def _describe_validation(exc: RequestValidationError, request: Request) -> str:
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            problems.append(f"the request body is not valid JSON ({detail})")
            continue
        if tuple(error.get("loc", ())) == ("body",):
            # FastAPI hands the model no body at all, or the raw bytes of one that is not
            # declared JSON: say what to send rather than what the model saw.
            if error.get("type") == "missing":
                problems.append("the request needs a JSON body")
                continue
            if isinstance(error.get("input"), bytes):
                sent = request.headers.get("content-type")
                problems.append(
                    "the request body must be JSON, sent with `Content-Type: application/json`, "
                    f"got {shorten(sent) if sent is not None else None!r}"
                )
                continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        # A field's name and value are the sender's: a prefix of each, with its length.
        value = error.get("input")
        shown = repr(shorten(value)) if isinstance(value, str) else shorten(repr(value))
        problems.append(f"`{shorten(where)}`: {error.get('msg')}, got {shown}")
    return "; ".join(problems) or "the request does not fit the schema"


def create_app(cloud: Cloud, *, max_body_size: int, tokens: Tokens | None = None) -> FastAPI:
    """Return the REST application serving ``cloud``, reading bodies of ``max_body_size`` bytes.

    ``tokens`` None leaves the API open: every request is an admin's.
    """
    app = FastAPI(
        title="pocketcloud",
        version="1",
        description="A small cloud on steward: servers, volumes, networks and services.",
        responses=_ERRORS,
    )
    # Added before the request-context middleware, so it runs inside it: that one reads the body
    # in a task group, which would wrap the refusal in an ExceptionGroup.
    app.add_middleware(BodyLimit, max_size=max_body_size)
    _install_error_handlers(app, tokens)
    _install_server_routes(app, cloud)
    _install_resource_routes(app, cloud)
    return app


def _ctx(request: Request) -> RequestContext:
    context: RequestContext = request.state.context
    return context


def _context_for(identity: Identity | None) -> RequestContext:
    """Return the context of a request by ``identity`` (None: the open API's admin)."""
    if identity is None:
        return RequestContext(is_admin=True, roles=["admin"])
    return RequestContext(
        user_id=identity.user,
        project_id=identity.project,
        is_admin=identity.admin,
        roles=["admin", "member"] if identity.admin else ["member"],
    )


def _install_error_handlers(app: FastAPI, tokens: Tokens | None) -> None:
    @app.middleware("http")
    async def request_context(
        request: Request, call_next: typing.Callable[[Request], typing.Awaitable[Response]]
    ) -> Response:
        identity = None
        if tokens is not None and request.url.path not in _PUBLIC_PATHS:
            presented = request.headers.get(AUTH_HEADER)
            identity = tokens.identify(presented)
            if identity is None:
                request.state.request_id = generate_request_id()
                message = (
                    f"this API needs a token: send it in the {AUTH_HEADER} header"
                    if not presented
                    else f"the token sent in {AUTH_HEADER} is not valid"
                )
                LOG.info(
                    "%s %s refused: %s",
                    request.method,
                    shorten(request.url.path),
                    "no token" if not presented else "unknown token",
                )
                # RFC 9110: a 401 names how to authenticate.
                challenge = {"WWW-Authenticate": f'{AUTH_HEADER} realm="pocketcloud"'}
                return _error(401, "Unauthorized", message, request, headers=challenge)
        context = _context_for(identity)
        request.state.context = context
        request.state.request_id = context.request_id
        with bind(context):  # the log lines below carry the request id too
            try:
                response = await call_next(request)
            except Exception:
                LOG.exception(
                    "Unexpected error serving %s %s", request.method, shorten(request.url.path)
                )
                return _error(
                    500, "InternalError", "internal error; see the api service's log", request
                )
        response.headers[REQUEST_ID_HEADER] = context.request_id
        return response

    @app.exception_handler(PocketcloudError)
    async def cloud_error(request: Request, exc: PocketcloudError) -> JSONResponse:
        return _error(exc.http_status, type(exc).__name__, str(exc), request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "BadRequest", _describe_validation(exc, request), request)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return _error(exc.status_code, "RequestTooLarge", str(exc.detail), request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, "HTTPError", str(exc.detail), request, headers=headers)

    @app.exception_handler(MessageUndeliverable)
    async def undeliverable(request: Request, exc: MessageUndeliverable) -> JSONResponse:
        LOG.warning("%s %s: %s", request.method, shorten(request.url.path), exc)
        return _error(503, "ServiceUnavailable", f"a service is not running: {exc}", request)

    @app.exception_handler(MessagingTimeout)
    async def timeout(request: Request, exc: MessagingTimeout) -> JSONResponse:
        LOG.warning(
            "%s %s: a service did not answer in time: %s",
            request.method,
            shorten(request.url.path),
            exc,
        )
        return _error(
            503, "ServiceUnavailable", f"a service did not answer in time: {exc}", request
        )


def _install_server_routes(app: FastAPI, cloud: Cloud) -> None:
    @app.get("/v1/servers", tags=["servers"])
    async def list_servers(request: Request) -> list[ServerView]:
        """List servers."""
        return await cloud.list_servers(_ctx(request))

    @app.post("/v1/servers", status_code=status.HTTP_202_ACCEPTED, tags=["servers"])
    async def create_server(request: Request, body: ServerCreate) -> ServerView:
        """Boot a server: it is BUILDING until its host reports it ACTIVE (or ERROR)."""
        return await cloud.create_server(_ctx(request), body)

    @app.get("/v1/servers/{server_id}", tags=["servers"])
    async def show_server(request: Request, server_id: str) -> ServerView:
        """Show a server."""
        return await cloud.get_server(_ctx(request), server_id)

    @app.delete("/v1/servers/{server_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["servers"])
    async def delete_server(request: Request, server_id: str) -> None:
        """Delete a server: it is DELETING until its host has removed it."""
        await cloud.delete_server(_ctx(request), server_id)

    @app.post(
        "/v1/servers/{server_id}/reboot", status_code=status.HTTP_202_ACCEPTED, tags=["servers"]
    )
    async def reboot_server(request: Request, server_id: str) -> ServerView:
        """Reboot an ACTIVE or SHUTOFF server: it is REBOOTING until its host restarted it."""
        return await cloud.reboot_server(_ctx(request), server_id)

    @app.get("/v1/servers/{server_id}/console", tags=["servers"])
    async def server_console(request: Request, server_id: str) -> ConsoleView:
        """Show the end of a server's console."""
        return ConsoleView(output=await cloud.get_console_output(_ctx(request), server_id))


def _install_resource_routes(app: FastAPI, cloud: Cloud) -> None:
    @app.get("/v1/volumes", tags=["volumes"])
    async def list_volumes(request: Request) -> list[VolumeView]:
        """List volumes."""
        return await cloud.list_volumes(_ctx(request))

    @app.post("/v1/volumes", status_code=status.HTTP_201_CREATED, tags=["volumes"])
    async def create_volume(request: Request, body: VolumeCreate) -> VolumeView:
        """Create a volume."""
        return await cloud.create_volume(_ctx(request), body)

    @app.get("/v1/volumes/{volume_id}", tags=["volumes"])
    async def show_volume(request: Request, volume_id: str) -> VolumeView:
        """Show a volume."""
        return await cloud.get_volume(_ctx(request), volume_id)

    @app.delete("/v1/volumes/{volume_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["volumes"])
    async def delete_volume(request: Request, volume_id: str) -> None:
        """Delete an available volume."""
        await cloud.delete_volume(_ctx(request), volume_id)

    @app.post("/v1/volumes/{volume_id}/attach", tags=["volumes"])
    async def attach_volume(request: Request, volume_id: str, body: VolumeAttach) -> VolumeView:
        """Attach a volume to a server."""
        return await cloud.attach_volume(_ctx(request), volume_id, body.server_id)

    @app.post("/v1/volumes/{volume_id}/detach", tags=["volumes"])
    async def detach_volume(request: Request, volume_id: str) -> VolumeView:
        """Detach a volume from its server."""
        return await cloud.detach_volume(_ctx(request), volume_id)

    # --- networks and services -----------------------------------------------------------------

    @app.get("/v1/networks", tags=["networks"])
    async def list_networks(request: Request) -> list[NetworkView]:
        """List networks."""
        return await cloud.list_networks(_ctx(request))

    @app.post("/v1/networks", status_code=status.HTTP_201_CREATED, tags=["networks"])
    async def create_network(request: Request, body: NetworkCreate) -> NetworkView:
        """Create a network (a VLAN of its own under VlanManager)."""
        return await cloud.create_network(_ctx(request), body)

    @app.get("/v1/networks/{network_id}", tags=["networks"])
    async def show_network(request: Request, network_id: str) -> NetworkView:
        """Show a network."""
        return await cloud.get_network(_ctx(request), network_id)

    @app.get("/v1/services", tags=["services"])
    async def list_services(request: Request) -> list[ServiceView]:
        """List services with their up/down state."""
        return await cloud.list_services(_ctx(request))
