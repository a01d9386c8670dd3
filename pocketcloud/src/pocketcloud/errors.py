"""Every exception pocketcloud raises on purpose, in one hierarchy.

::

    PocketcloudError                      (HTTP 500)
    ├── NotFound (LookupError)            (HTTP 404)
    │   ├── ServerNotFound
    │   ├── VolumeNotFound
    │   └── NetworkNotFound
    ├── Conflict                          (HTTP 409) the resource is not in a state that allows it
    │   ├── InvalidServerState
    │   ├── InvalidVolumeState
    │   └── NetworkConflict               a CIDR or VLAN already taken
    ├── InvalidInput (ValueError)         (HTTP 400) a request that can never succeed as sent
    ├── Forbidden (PermissionError)       (HTTP 403) the caller's token may not do that
    ├── NoValidHost                       (HTTP 409) no compute host passes the scheduler's filters
    ├── NoMoreAddresses                   (HTTP 409) a network has no free fixed IP left
    └── ServiceUnavailable                (HTTP 503) the service that should answer did not

Client errors (4xx) are ``rpc_expected``: the service raising one logs a line, not a traceback.
These travel over RPC: a manager raises one, and the caller's RPC API class re-raises it as the
same class, because pocketcloud's clients list this module in ``allowed_remote_exmods``. Each takes
only its message, so it can be re-created from what travels (``cls(*args)``).
"""

from __future__ import annotations

import typing

from steward.errors import RemoteError

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "InvalidServerState",
    "InvalidVolumeState",
    "NetworkConflict",
    "NetworkNotFound",
    "NetworkSetupFailed",
    "NoMoreAddresses",
    "NoValidHost",
    "NotFound",
    "PocketcloudError",
    "ServerNotFound",
    "ServiceUnavailable",
    "VolumeNotFound",
    "describe_fault",
]


class PocketcloudError(Exception):
    """The root of pocketcloud's errors; ``http_status`` is what the REST API answers with."""

    http_status: typing.ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def rpc_expected(self) -> bool:
        """True for a client error (4xx): steward's RPC server logs it in one line, no traceback."""
        return self.http_status < 500  # noqa: PLR2004 - 5xx: the server's fault


class NotFound(PocketcloudError, LookupError):
    """The resource named does not exist (or was deleted)."""

    http_status = 404


class ServerNotFound(NotFound):
    """No server has that id."""


class VolumeNotFound(NotFound):
    """No volume has that id."""


class NetworkNotFound(NotFound):
    """No network has that id."""


class Conflict(PocketcloudError):
    """The resource exists but its state does not allow what was asked."""

    http_status = 409


class InvalidServerState(Conflict):
    """The server's status does not allow the action (reboot while BUILDING...)."""


class InvalidVolumeState(Conflict):
    """The volume's status does not allow the action (delete while attached...)."""


class NetworkConflict(Conflict):
    """A network with that CIDR or VLAN exists already."""


class InvalidInput(PocketcloudError, ValueError):
    """The request can never succeed as sent; the message says what to change."""

    http_status = 400


class Forbidden(PocketcloudError, PermissionError):
    """The request's token may not do this (a project member asking for the services)."""

    http_status = 403


class NoValidHost(PocketcloudError):
    """No compute host passes the scheduler's filters; the message says which filter failed."""

    http_status = 409


class NoMoreAddresses(PocketcloudError):
    """The network has no free fixed IP address left."""

    http_status = 409


class NetworkSetupFailed(PocketcloudError):
    """The network driver could not build a network on the host; nothing of it was kept."""

    http_status = 500


class ServiceUnavailable(PocketcloudError):
    """The service that should have answered did not (down, or too slow)."""

    http_status = 503


def describe_fault(exc: BaseException) -> str:
    """Return what a server's fault says of ``exc``: the message, with the class if not ours."""
    if isinstance(exc, PocketcloudError):
        return str(exc)
    if isinstance(exc, RemoteError):
        return f"{exc.exc_type}: {exc.value}"
    return f"{type(exc).__name__}: {exc}"
