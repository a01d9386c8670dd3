"""The values pocketcloud's services send each other (nova's ``objects``, as pydantic models).

A manager method takes these as arguments (the RPC dispatcher builds them from their JSON form,
from the method's type hints) and returns them as ``model.model_dump(mode="json")``; each RPC API
class turns a result back into its model. They carry data, never behaviour: the manager that owns
a record is the only code that changes it.
"""

from __future__ import annotations

import datetime
import enum
import typing

import pydantic

__all__ = [
    "ConnectionInfo",
    "Destination",
    "InstanceSpec",
    "NetworkInfo",
    "NetworkRecord",
    "PowerState",
    "RequestSpec",
    "ServerChanges",
    "ServerStatus",
    "VolumeRecord",
    "VolumeStatus",
    "wire",
]


def wire(model: pydantic.BaseModel) -> dict[str, typing.Any]:
    """Return ``model`` as the JSON-ready dict that travels in an RPC message."""
    return model.model_dump(mode="json")


class ServerStatus(enum.StrEnum):
    """A server's status, as the REST API shows it."""

    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    REBOOTING = "REBOOTING"
    SHUTOFF = "SHUTOFF"
    DELETING = "DELETING"
    ERROR = "ERROR"


class PowerState(enum.StrEnum):
    """What a compute driver says of an instance."""

    RUNNING = "running"
    SHUTDOWN = "shutdown"
    NOSTATE = "nostate"


class VolumeStatus(enum.StrEnum):
    """A volume's status."""

    AVAILABLE = "available"
    IN_USE = "in-use"
    ERROR = "error"


class _Value(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class RequestSpec(_Value):
    """What the scheduler needs to choose a host for one server."""

    server_id: str
    ram_mb: int = pydantic.Field(ge=1)
    disk_gb: int = pydantic.Field(ge=0)
    availability_zone: str | None = None


class InstanceSpec(_Value):
    """What a compute host needs to build one server."""

    server_id: str
    name: str
    ram_mb: int = pydantic.Field(ge=1)
    disk_gb: int = pydantic.Field(ge=0)
    network_id: str | None = None


class Destination(_Value):
    """A host the scheduler chose (nova's ``Selection``); its resources are claimed for it."""

    host: str
    availability_zone: str


class NetworkInfo(_Value):
    """A server's place on a network: its fixed IP and what it is plugged into."""

    network_id: str
    network_name: str
    address: str
    cidr: str
    gateway: str
    bridge: str
    vlan: int | None = None
    mac: str


class ConnectionInfo(_Value):
    """How a compute host reaches a volume: the volume driver's name and its data."""

    driver: str
    volume_id: str
    data: dict[str, str] = pydantic.Field(default_factory=dict)


class NetworkRecord(_Value):
    """A network, as the network service reports it."""

    id: str
    name: str
    cidr: str
    gateway: str
    bridge: str
    vlan: int | None
    manager: str
    created_at: datetime.datetime
    project_id: str | None = None
    """The project that made it (None: shared by every project)."""


class VolumeRecord(_Value):
    """A volume, as the volume service reports it."""

    id: str
    name: str
    size_gb: int
    host: str
    status: VolumeStatus
    server_id: str | None
    attached_host: str | None
    created_at: datetime.datetime
    attached_at: datetime.datetime | None
    project_id: str | None = None
    """The project that made it (the request context's)."""


class ServerChanges(_Value):
    """A change to a server's record, reported to its owner (the api service).

    Fields left None are left alone. ``expected_status`` guards the change, as nova's
    ``expected_task_state``: the change applies only while the server is in one of those
    statuses (empty: in any status but deleted).
    """

    status: ServerStatus | None = None
    host: str | None = None
    power_state: PowerState | None = None
    address: str | None = None
    fault: str | None = None
    launched: bool = False
    expected_status: tuple[ServerStatus, ...] = ()
