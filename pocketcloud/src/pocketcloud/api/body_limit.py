"""BodyLimit: the REST API reads at most ``max_size`` bytes of a request body.

A body whose ``Content-Length`` says more is refused before a byte of it is read; a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the limit. Either
way the refusal is a 413 in the API's error shape, and the server never holds more than the limit
and one chunk of it: the application only ever reads the body through this middleware.

FastAPI's own ``max_body_size`` (0.12x and later) answers in plain text or in its
``{"detail": ...}`` shape, without saying the limit; this one answers in the API's error shape,
naming the limit and what came.
"""

from __future__ import annotations

import typing

from fastapi.exceptions import HTTPException

if typing.TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """A request body over the limit: the API answers 413 with this message."""

    def __init__(self, max_size: int, got: str) -> None:
        super().__init__(
            413, detail=f"the request body must be at most {max_size} bytes, got {got}; send less"
        )


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_size`` bytes (see the module docstring).

    The refusal is raised from the application's ``receive`` as a :class:`BodyTooLarge` (a
    FastAPI ``HTTPException``, which FastAPI re-raises from its body reading instead of calling
    it a bad body), so the application's own exception handlers answer it, with the request id,
    and the route never runs.
    """

    def __init__(self, app: ASGIApp, *, max_size: int) -> None:
        self.app = app
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``, handing the application a ``receive`` that counts the body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_size:
                raise BodyTooLarge(self.max_size, f"{declared} (its Content-Length)")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_size:
                    raise BodyTooLarge(self.max_size, "more")
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one before it gets here
    return None
