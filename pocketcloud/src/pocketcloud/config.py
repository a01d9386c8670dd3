"""pocketcloud's own settings, beside steward's.

steward's :class:`~steward.Settings` say how services talk and where the database is; these say
what the cloud looks like: where its files live, which drivers and which network manager run,
what a compute host offers and how the scheduler weighs hosts. Sources, later wins: defaults,
the environment (``POCKETCLOUD_<NAME>``), then the values a command line passes to
:func:`load_cloud_settings`.

Driver names come from here (the operator), never from a message: they are entry-point names of
the groups ``steward.drivers.compute``, ``steward.drivers.volume`` and ``steward.drivers.network``.
"""

from __future__ import annotations

import ipaddress
import typing
from pathlib import Path

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from steward import ConfigError

__all__ = ["ENV_PREFIX", "FILTER_NAMES", "CloudSettings", "load_cloud_settings"]

ENV_PREFIX = "POCKETCLOUD_"

FILTER_NAMES = ("ComputeFilter", "AvailabilityZoneFilter", "RamFilter", "DiskFilter")
"""The scheduler filters pocketcloud ships, in nova's names."""


class CloudSettings(BaseSettings):
    """Every pocketcloud option, with its default. Frozen: build a new one to change it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(
        Path("pocketcloud-data"),
        description="Where the database, instance consoles and volume files live.",
    )
    api_token_file: Path | None = Field(
        None,
        description="TOML file of the REST API's tokens ([[token]]: token, user, project, admin);"
        " None: the API is open, every request an admin's.",
    )
    api_host: str = Field(
        "127.0.0.1",
        description="Address of the REST API: a loopback address only, unless api_token_file.",
    )
    api_port: int = Field(
        8774, ge=0, le=65535, description="Port of the REST API; 0 picks a free one."
    )
    api_max_body_size: int = Field(
        1024 * 1024,
        ge=1,
        description="Largest request body the REST API reads, in bytes; a larger one is a 413.",
    )
    compute_driver: str = Field("fake", min_length=1, description="Compute driver: fake, process.")
    volume_driver: str = Field("fake", min_length=1, description="Volume driver: fake, file.")
    network_driver: str = Field(
        "fake", min_length=1, description="Network driver: fake, linux (ip, in a namespace)."
    )
    network_manager: typing.Literal["flat", "vlan"] = Field(
        "flat", description="FlatManager (one shared bridge) or VlanManager (a VLAN per network)."
    )
    flat_network_bridge: str = Field(
        "br100", min_length=1, max_length=15, description="The bridge every flat network uses."
    )
    flat_interface: str | None = Field(
        None, description="Interface the flat bridge is attached to (None: a bridge alone)."
    )
    vlan_interface: str = Field(
        "eth0", min_length=1, max_length=15, description="Parent interface of VLAN interfaces."
    )
    network_namespace: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Namespace the linux network driver builds in (None: pocketcloud-<host>).",
    )
    vlan_start: int = Field(100, ge=1, le=4094, description="First VLAN id VlanManager hands out.")
    availability_zone: str = Field(
        "nova", min_length=1, description="Availability zone of the compute hosts started here."
    )
    compute_memory_mb: int | None = Field(
        None, ge=1, description="RAM a compute host offers (None: the driver's own figure)."
    )
    compute_disk_gb: int | None = Field(
        None, ge=1, description="Disk a compute host offers (None: the driver's own figure)."
    )
    scheduler_enabled_filters: typing.Annotated[list[str], NoDecode] = Field(
        list(FILTER_NAMES), description="Scheduler filters, in order (comma-separated)."
    )
    ram_weight_multiplier: float = Field(
        1.0, description="RAM weigher: positive spreads servers over hosts, negative stacks them."
    )
    server_max_ram_mb: int = Field(65536, ge=1, description="Largest RAM a server may ask for.")
    server_max_disk_gb: int = Field(2048, ge=1, description="Largest disk a server may ask for.")
    volume_max_size_gb: int = Field(1024, ge=1, description="Largest volume, in GiB.")
    build_timeout: float = Field(
        600.0, ge=0, description="Seconds a server may stay BUILDING before it is ERROR; 0: never."
    )
    guest_boot_seconds: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Seconds an instance takes to boot (a slow image; 0: as fast as it can).",
    )
    resume_guests_state_on_host_boot: bool = Field(
        True, description="Restart the instances that were running when a compute host stopped."
    )

    @field_validator("api_host")
    @classmethod
    def _loopback_only(cls, value: str, info: ValidationInfo) -> str:
        if value == "localhost":
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError("expected an IP address such as 127.0.0.1") from exc
        # An open API makes every request an admin's: it stays on this machine. With tokens
        # (declared before this field, so validated first) it may listen anywhere.
        if not address.is_loopback and info.data.get("api_token_file") is None:
            raise ValueError(
                "without api_token_file the REST API listens on a loopback address only "
                "(127.0.0.1, ::1); set api_token_file to serve beyond this machine"
            )
        return value

    @field_validator("scheduler_enabled_filters", mode="before")
    @classmethod
    def _split_filters(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("scheduler_enabled_filters")
    @classmethod
    def _known_filters(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FILTER_NAMES]
        if unknown:
            raise ValueError(f"unknown filters {unknown}; known: {', '.join(FILTER_NAMES)}")
        return value

    @property
    def database_url(self) -> str:
        """The embedded database: a SQLite file in :attr:`data_dir`."""
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'pocketcloud.db'}"


def load_cloud_settings(overrides: typing.Mapping[str, object] | None = None) -> CloudSettings:
    """Read defaults, the environment and ``overrides`` (later wins).

    Raises :class:`steward.ConfigError` naming each bad option, the value and what is allowed.
    """
    try:
        return CloudSettings(**dict(overrides or {}))  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"option `{name}`: {message}, got {error.get('input')!r}")
        raise ConfigError("invalid pocketcloud settings: " + "; ".join(problems)) from exc
