"""What the REST API accepts and returns: pydantic models, and so its OpenAPI schema.

Requests are strict (``"512"`` is not a number) and forbid unknown fields, so a typo is an error
rather than silently ignored. Names are letters, digits, ``.``, ``_`` and ``-``. Responses carry
what the owning services report, with times in UTC (the database keeps them naive; a response
says ``Z``, as RFC 3339 and the schema's ``date-time`` want); errors always have the shape of
:class:`ErrorBody`.
"""

from __future__ import annotations

import datetime
import typing

import pydantic

from pocketcloud.objects import NetworkRecord, PowerState, ServerStatus, VolumeRecord

__all__ = [
    "ConsoleView",
    "ErrorBody",
    "ErrorDetail",
    "FaultView",
    "Name",
    "NetworkCreate",
    "NetworkView",
    "ServerCreate",
    "ServerView",
    "ServiceView",
    "VolumeAttach",
    "VolumeCreate",
    "VolumeView",
]

Name = typing.Annotated[
    str,
    pydantic.StringConstraints(
        min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    ),
]
"""A resource name: 1-63 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit."""

Identifier = typing.Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]


def _as_utc(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


UtcDatetime = typing.Annotated[datetime.datetime, pydantic.AfterValidator(_as_utc)]
"""A time in UTC: naive values (as the database columns store them) are taken as UTC."""


class _Request(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="forbid", frozen=True)


class ServerCreate(_Request):
    """A server to boot: its size, and optionally its zone and network."""

    name: Name
    ram_mb: int = pydantic.Field(512, ge=1, description="RAM in MiB.")
    disk_gb: int = pydantic.Field(1, ge=0, description="Disk in GiB.")
    availability_zone: Name | None = pydantic.Field(
        None, description="Only hosts of this zone (any zone if left out)."
    )
    network_id: Identifier | None = pydantic.Field(
        None, description="Network for its fixed IP (the first network if left out)."
    )


class VolumeCreate(_Request):
    """A volume to create."""

    name: Name
    size_gb: int = pydantic.Field(ge=1, description="Size in GiB.")


class VolumeAttach(_Request):
    """The server to attach a volume to."""

    server_id: Identifier


class NetworkCreate(_Request):
    """A network to create: an IPv4 CIDR, and for VlanManager optionally its VLAN."""

    name: Name
    cidr: str = pydantic.Field(max_length=43, examples=["10.0.0.0/24"])
    vlan: int | None = pydantic.Field(None, ge=1, le=4094)


class FaultView(pydantic.BaseModel):
    """Why a server is in ERROR."""

    message: str
    created_at: UtcDatetime | None


class ServerView(pydantic.BaseModel):
    """A server as its owner, the api service, records it."""

    id: str
    name: str
    status: ServerStatus
    host: str | None
    ram_mb: int
    disk_gb: int
    availability_zone: str | None
    network_id: str | None
    project_id: str | None = pydantic.Field(description="The project that asked for it.")
    address: str | None
    power_state: PowerState
    fault: FaultView | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    launched_at: UtcDatetime | None


class VolumeView(VolumeRecord):
    """A volume as the volume service reports it."""

    created_at: UtcDatetime
    attached_at: UtcDatetime | None


class NetworkView(NetworkRecord):
    """A network as the network service reports it."""

    created_at: UtcDatetime


class ServiceView(pydantic.BaseModel):
    """A service of the registry and whether it is up (nova's liveness rule)."""

    host: str
    binary: str
    topic: str
    state: typing.Literal["up", "down"]
    status: typing.Literal["enabled", "disabled"]
    disabled_reason: str | None
    last_seen_up: UtcDatetime | None


class ConsoleView(pydantic.BaseModel):
    """The end of a server's console."""

    output: str


class ErrorDetail(pydantic.BaseModel):
    """What went wrong: the HTTP status, the error's name and a message saying what to do."""

    code: int
    type: str
    message: str
    request_id: str | None = None


class ErrorBody(pydantic.BaseModel):
    """Every error response's body."""

    error: ErrorDetail
