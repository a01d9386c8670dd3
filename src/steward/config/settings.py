"""The :class:`Settings` model: every core option, and one section per transport.

Options marked *mutable* may change on SIGHUP without a restart; the others need one. Options
marked *secret* hold credentials, masked whenever the settings are shown. A transport's options
are a section of their own (:class:`~steward.config.rabbit.RabbitSettings` as ``rabbit``,
:class:`~steward.config.nats.NatsSettings` as ``nats``): a new transport adds its section here
and nothing else.
"""

from __future__ import annotations

import re
import socket
import typing
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from steward.config import _files, _sources
from steward.config._option import flag, option
from steward.config._sources import ENV_NESTED_DELIMITER, ENV_PREFIX
from steward.config.nats import NatsSettings
from steward.config.rabbit import RabbitSettings
from steward.redact import mask_url

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every steward option, with its default. Frozen: a reload makes a new object.

    Construct it with :func:`~steward.config.load_settings` to read config files and get
    :class:`~steward.errors.ConfigError`s; ``Settings()`` alone reads the defaults and the
    environment. A transport's options are a section of their own (:attr:`rabbit`,
    :attr:`nats`); their flat oslo names are accepted as input too (see :mod:`steward.config`).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = option(
        socket.gethostname(),
        "Name of this host; RPC topic.host and the registry use it.",
        min_length=1,
    )
    transport_url: str = option(
        "memory://",
        "Where RPC and notifications travel: memory://, amqp://user:pass@host:5672/vhost, "
        "nats://host:4222.",
        secret=True,
        min_length=1,
    )
    database_url: str = option(
        "sqlite+aiosqlite:///./steward.db",
        "SQLAlchemy URL of the registry and managers' data.",
        secret=True,
        min_length=1,
    )
    control_exchange: str = option(
        "openstack",
        "Default RabbitMQ exchange of RPC topics (oslo.messaging's name).",
        min_length=1,
    )
    rpc_response_timeout: float = option(
        60.0, "Seconds a call waits for its reply.", mutable=True, gt=0
    )
    executor_thread_pool_size: int = option(
        64, "Threads running plain-def RPC methods and periodic tasks.", ge=1
    )
    report_interval: float = option(
        10.0, "Seconds between a service's heartbeats.", mutable=True, gt=0
    )
    service_down_time: float = option(
        60.0,
        "Seconds since the last heartbeat after which a service is down.",
        mutable=True,
        gt=0,
    )
    periodic_enable: bool = option(True, "Run the manager's periodic tasks.")
    periodic_interval_max: float = option(
        60.0, "Longest sleep of the periodic-task loop between passes.", mutable=True, gt=0
    )
    periodic_fuzzy_delay: float = option(
        60.0,
        "Upper bound of the random delay before the first periodic pass.",
        mutable=True,
        ge=0,
    )
    run_external_periodic_tasks: bool = option(
        True,
        "Run tasks marked external_process_ok; turn off where another process runs them.",
        mutable=True,
    )
    graceful_shutdown_timeout: float = option(
        60.0, "Seconds in-flight work may take to finish on stop.", mutable=True, ge=0
    )
    allowed_remote_exmods: typing.Annotated[list[str], NoDecode] = option(
        [],
        "Modules whose exceptions a caller may re-raise by class (comma-separated or JSON).",
        mutable=True,
    )
    tracing_enabled: bool = option(
        False, "Wrap manager methods and RPC hops in OpenTelemetry spans.", mutable=True
    )
    tracing_exporter: typing.Literal["none", "console", "otlp"] = option(
        "none",
        "Where spans go: none (the process's OpenTelemetry provider, if any), console, or otlp "
        "(configured by the standard OTEL_EXPORTER_OTLP_* environment variables).",
    )
    notification_driver: str = option(
        "noop",
        "How notifications are emitted, a driver chosen by name: noop (none, oslo's default), "
        "messaging or messagingv2 (over the transport, oslo's messagingv2 format), log, test "
        "(kept in memory), one another package registers under steward.drivers.notification, "
        "or module:Class. An unknown name fails the service's construction (DriverNotFound).",
    )
    notification_topics: typing.Annotated[list[str], NoDecode] = option(
        ["notifications"], "Topics notifications are sent to (comma-separated or JSON)."
    )
    notification_transport_url: str | None = option(
        None,
        "Where notifications travel, if not over transport_url (oslo's "
        "[oslo_messaging_notifications] transport_url). Unset: transport_url.",
        secret=True,
        min_length=1,
    )
    report_directory: str | None = option(
        None, "Directory SIGUSR2 writes service reports to; unset: the log.", mutable=True
    )
    metrics_host: str = option(
        "127.0.0.1", "Address of the metrics and health endpoint (with metrics_port)."
    )
    backdoor_port: str | None = option(
        None,
        "Debug console on TCP 127.0.0.1, which every local user can reach: 'N', '0' (any free "
        "port) or a range 'A:B'. Off if unset; backdoor_socket wins if both are set.",
    )
    backdoor_socket: str | None = option(
        None,
        "Debug console on a Unix socket only this user may use (mode 0600), at this path; "
        "'{pid}' and '{binary}' in it are replaced. Off if unset.",
        min_length=1,
    )
    metrics_port: int | None = option(
        None, "Port of the Prometheus and health endpoint. Off if unset.", ge=0, le=65535
    )
    max_message_size: int = option(
        16 * 1024 * 1024, "Largest RPC message, in bytes, accepted or sent.", mutable=True, gt=0
    )
    rabbit: RabbitSettings = Field(
        default_factory=RabbitSettings,
        description="RabbitMQ transport (amqp://): see steward.config.rabbit.",
    )
    nats: NatsSettings = Field(
        default_factory=NatsSettings,
        description="NATS transport (nats://): see steward.config.nats.",
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _locations: dict[str, str] = PrivateAttr(default_factory=dict)
    _read_from: tuple[tuple[Path, ...], dict[str, object]] = PrivateAttr(default=((), {}))

    @field_validator("allowed_remote_exmods", "notification_topics", mode="before")
    @classmethod
    def _split_module_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return _json_list(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("backdoor_port")
    @classmethod
    def _check_backdoor_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", value)
        if match is None:
            raise ValueError("expected a port 'N', '0' for any free port, or a range 'A:B'")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if not 0 <= start <= end <= 65535:  # noqa: PLR2004 - the TCP port range
            raise ValueError("ports must be 0-65535 and a range 'A:B' needs A <= B")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: command line (init) > environment > config files > defaults.

        Each source's flat oslo names go into their sections before the sources are merged.
        """
        ordered: list[PydanticBaseSettingsSource] = [
            _sources.NestedSource(settings_cls, init_settings),
            env_settings,
            _sources.FlatEnvironmentSource(settings_cls),
        ]
        paths = _files.config_files.get()
        if paths:
            ordered.append(_files.FileSource(settings_cls, paths))
        return tuple(ordered)

    @classmethod
    def option_names(cls) -> list[str]:
        """Every option's name, a section's as ``section.option`` (``rabbit.quorum_queue``)."""
        names: list[str] = []
        section_models = _sources.sections(cls)
        for name in cls.model_fields:
            if name in section_models:
                names.extend(f"{name}.{option}" for option in section_models[name].model_fields)
            else:
                names.append(name)
        return names

    @classmethod
    def mutable_options(cls) -> frozenset[str]:
        """Names of the options a SIGHUP reload may change without a restart (``section.name``)."""
        return frozenset(name for name in cls.option_names() if _option_flag(cls, name, "mutable"))

    @classmethod
    def secret_options(cls) -> frozenset[str]:
        """Names of the options whose credentials are masked when shown (dotted in sections)."""
        return frozenset(name for name in cls.option_names() if _option_flag(cls, name, "secret"))

    def origin(self, name: str) -> str:
        """Where option ``name`` got its value: default, file, environment or command line.

        ``name`` is an option's name, a section's option as ``rabbit.quorum_queue`` or by its
        flat name ``rabbit_quorum_queue``, or a section (``rabbit``: the source that set one of
        its options, the command line first; default if none did).
        """
        cls = type(self)
        aliases = _sources.flat_aliases(cls)
        if name in aliases:
            name = ".".join(aliases[name])
        if name in _sources.sections(cls):
            found = {
                origin for option, origin in self._origins.items() if option.startswith(f"{name}.")
            }
            return next((origin for origin in _PRECEDENCE if origin in found), "default")
        if name not in cls.option_names():
            raise KeyError(name)
        return self._origins.get(name, "default")

    def location(self, name: str) -> str | None:
        """Where in its source option ``name`` was set; None for a default or the command line.

        The file, and for an oslo INI file its section (``/etc/nova/nova.conf [DEFAULT]``), or
        the environment variable. ``name`` is spelled as for :meth:`origin` (a section's option
        only, not a whole section).
        """
        aliases = _sources.flat_aliases(type(self))
        if name in aliases:
            name = ".".join(aliases[name])
        if name not in type(self).option_names():
            raise KeyError(name)
        return self._locations.get(name)

    def reread(self) -> Settings:
        """Return new settings read from the same sources: the file, the environment, overrides.

        What a SIGHUP reload reads. Settings made by :func:`~steward.config.load_settings`
        remember its file and overrides; others read the defaults and the environment.
        """
        from steward.config.loading import load_settings  # noqa: PLC0415 - loading imports us

        paths, overrides = self._read_from
        return load_settings(config_file=paths, overrides=overrides)

    def masked(self, *, dotted: bool = False) -> dict[str, object]:
        """Return the options as a dict, with credentials replaced by ``***`` (:func:`mask_url`).

        Every string is masked, not only the secret options': a URL in any option is shown safe.
        A section is a dict of its options, or, with ``dotted``, each of its options is a key of
        its own (``"rabbit.quorum_queue"``), as ``steward config show`` lists them.
        """
        values = {name: _masked(value) for name, value in self.model_dump().items()}
        if not dotted:
            return values
        flat: dict[str, object] = {}
        for name, value in values.items():
            if name in _sources.sections(type(self)) and isinstance(value, dict):
                flat.update({f"{name}.{option}": item for option, item in value.items()})
            else:
                flat[name] = value
        return flat

    def __repr_args__(self) -> typing.Iterable[tuple[str | None, typing.Any]]:
        return list(self.masked().items())


_PRECEDENCE = ("command line", "environment", "file")


def _masked(value: object) -> object:
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


def _option_flag(cls: type[Settings], name: str, which: str) -> bool:
    section, _, option_name = name.rpartition(".")
    model = _sources.sections(cls)[section] if section else cls
    return flag(model, option_name, which)


def _json_list(text: str) -> object:
    import orjson  # noqa: PLC0415 - only settings given as JSON need it

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list: {exc}") from exc
