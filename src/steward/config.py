"""Typed settings: defaults, a TOML file, the environment and the command line.

Sources, later wins: the defaults below < the TOML file given as ``--config-file`` < environment
variables ``STEWARD_<NAME>`` < command-line overrides. :func:`load_settings` reads them all and
reports a bad value as a :class:`~steward.errors.ConfigError` that names the option, the value,
where it came from and what is allowed.

Option names and defaults follow nova and oslo where they have one (``report_interval``,
``service_down_time``, ``rpc_response_timeout``...). Options marked *mutable* may change on
SIGHUP without a restart; the others need one.

Credentials inside ``transport_url`` and ``database_url`` are masked whenever settings are shown:
in ``repr``/``str``, in :meth:`Settings.masked` and so in logs, reports and ``steward config show``.
:func:`mask_url` (defined in :mod:`steward.redact`, re-exported here) says what is kept and what
is replaced.
"""

from __future__ import annotations

import contextvars
import re
import socket
import tomllib
import typing
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from steward.errors import ConfigError
from steward.redact import mask_text, mask_url

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "get_settings",
    "load_settings",
    "mask_url",
    "set_settings",
]

ENV_PREFIX = "STEWARD_"

# The TOML file of the load in progress. Pydantic-settings builds its sources in a classmethod,
# so the path travels to it here rather than through the constructor.
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "steward_config_file", default=None
)


def _option(
    default: typing.Any,  # noqa: ANN401 - each option has its own type
    description: str,
    *,
    mutable: bool = False,
    secret: bool = False,
    **constraints: typing.Any,  # noqa: ANN401 - pydantic Field constraints
) -> typing.Any:  # noqa: ANN401 - pydantic's Field() is typed this way too
    extra: dict[str, bool] = {"mutable": mutable, "secret": secret}
    return Field(default, description=description, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


class Settings(BaseSettings):
    """Every steward option, with its default. Frozen: a reload makes a new object.

    Construct it with :func:`load_settings` to read a TOML file and get :class:`ConfigError`s;
    ``Settings()`` alone reads the defaults and the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = _option(
        socket.gethostname(),
        "Name of this host; RPC topic.host and the registry use it.",
        min_length=1,
    )
    transport_url: str = _option(
        "memory://",
        "Where RPC and notifications travel: memory://, amqp://user:pass@host:5672/vhost, "
        "nats://host:4222.",
        secret=True,
        min_length=1,
    )
    database_url: str = _option(
        "sqlite+aiosqlite:///./steward.db",
        "SQLAlchemy URL of the registry and managers' data.",
        secret=True,
        min_length=1,
    )
    control_exchange: str = _option(
        "openstack",
        "Default RabbitMQ exchange of RPC topics (oslo.messaging's name).",
        min_length=1,
    )
    rpc_response_timeout: float = _option(
        60.0, "Seconds a call waits for its reply.", mutable=True, gt=0
    )
    executor_thread_pool_size: int = _option(
        64, "Threads running plain-def RPC methods and periodic tasks.", ge=1
    )
    report_interval: float = _option(
        10.0, "Seconds between a service's heartbeats.", mutable=True, gt=0
    )
    service_down_time: float = _option(
        60.0,
        "Seconds since the last heartbeat after which a service is down.",
        mutable=True,
        gt=0,
    )
    periodic_enable: bool = _option(True, "Run the manager's periodic tasks.")
    periodic_interval_max: float = _option(
        60.0, "Longest sleep of the periodic-task loop between passes.", mutable=True, gt=0
    )
    periodic_fuzzy_delay: float = _option(
        60.0,
        "Upper bound of the random delay before the first periodic pass.",
        mutable=True,
        ge=0,
    )
    run_external_periodic_tasks: bool = _option(
        True,
        "Run tasks marked external_process_ok; turn off where another process runs them.",
        mutable=True,
    )
    graceful_shutdown_timeout: float = _option(
        60.0, "Seconds in-flight work may take to finish on stop.", mutable=True, ge=0
    )
    allowed_remote_exmods: typing.Annotated[list[str], NoDecode] = _option(
        [],
        "Modules whose exceptions a caller may re-raise by class (comma-separated or JSON).",
        mutable=True,
    )
    tracing_enabled: bool = _option(
        False, "Wrap manager methods and RPC hops in OpenTelemetry spans.", mutable=True
    )
    tracing_exporter: typing.Literal["none", "console", "otlp"] = _option(
        "none",
        "Where spans go: none (the process's OpenTelemetry provider, if any), console, or otlp "
        "(configured by the standard OTEL_EXPORTER_OTLP_* environment variables).",
    )
    notification_driver: typing.Literal["noop", "messaging", "log", "test"] = _option(
        "noop",
        "How notifications are emitted: noop (none, oslo's default), messaging (over the "
        "transport, oslo's messagingv2 format), log, or test (kept in memory).",
    )
    notification_topics: typing.Annotated[list[str], NoDecode] = _option(
        ["notifications"], "Topics notifications are sent to (comma-separated or JSON)."
    )
    report_directory: str | None = _option(
        None, "Directory SIGUSR2 writes service reports to; unset: the log.", mutable=True
    )
    metrics_host: str = _option(
        "127.0.0.1", "Address of the metrics and health endpoint (with metrics_port)."
    )
    backdoor_port: str | None = _option(
        None,
        "Debug console on TCP 127.0.0.1, which every local user can reach: 'N', '0' (any free "
        "port) or a range 'A:B'. Off if unset; backdoor_socket wins if both are set.",
    )
    backdoor_socket: str | None = _option(
        None,
        "Debug console on a Unix socket only this user may use (mode 0600), at this path; "
        "'{pid}' and '{binary}' in it are replaced. Off if unset.",
        min_length=1,
    )
    metrics_port: int | None = _option(
        None, "Port of the Prometheus and health endpoint. Off if unset.", ge=0, le=65535
    )
    max_message_size: int = _option(
        16 * 1024 * 1024, "Largest RPC message, in bytes, accepted or sent.", mutable=True, gt=0
    )
    amqp_durable_queues: bool = _option(
        False, "RabbitMQ: durable topic exchange and topic queues (oslo.messaging's name)."
    )
    amqp_auto_delete: bool = _option(
        False, "RabbitMQ: auto-delete the topic exchange and topic queues when unused."
    )
    rabbit_quorum_queue: bool = _option(
        False, "RabbitMQ: topic queues are quorum queues (x-queue-type: quorum), hence durable."
    )
    rabbit_transient_queues_ttl: int = _option(
        1800,
        "RabbitMQ: seconds an unused reply or fanout queue lives (x-expires); 0 keeps it forever.",
        ge=0,
    )
    rabbit_qos_prefetch_count: int = _option(
        0,
        "RabbitMQ: unacknowledged messages per consumer; 0: the RPC server's own prefetch.",
        ge=0,
    )
    heartbeat_timeout_threshold: int = _option(
        60, "RabbitMQ: AMQP heartbeat timeout in seconds; 0 disables heartbeats.", ge=0
    )
    rabbit_retry_interval: float = _option(
        1.0, "RabbitMQ: seconds before the first reconnection attempt.", gt=0
    )
    rabbit_retry_backoff: float = _option(
        2.0, "RabbitMQ: seconds added to the wait after each failed reconnection.", ge=0
    )
    rabbit_interval_max: float = _option(
        30.0, "RabbitMQ: longest wait between reconnection attempts, in seconds.", gt=0
    )
    nats_jetstream: bool = _option(
        False,
        "NATS: casts and notifications through JetStream, at-least-once (off: core NATS, "
        "at-most-once). A transport URL's ?jetstream= overrides it.",
    )
    nats_stream_storage: typing.Literal["file", "memory"] = _option(
        "file", "NATS JetStream: where the stream keeps messages (memory: lost on restart)."
    )
    nats_stream_replicas: int = _option(
        1, "NATS JetStream: copies of the stream in a cluster.", ge=1, le=5
    )
    nats_stream_max_age: float = _option(
        0.0, "NATS JetStream: seconds a message may wait in the stream; 0: no limit.", ge=0
    )
    nats_ack_wait: float = _option(
        30.0,
        "NATS JetStream: seconds after which the unsettled messages of a consumer that died or "
        "lost its connection are redelivered to another.",
        gt=0,
    )
    nats_reconnect_wait: float = _option(
        2.0, "NATS: seconds between reconnection attempts to a server.", gt=0
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

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
        if not 0 <= start <= end <= 65535:
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
        """Order the sources: command line (init) > environment > TOML file > defaults."""
        path = _config_file.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @classmethod
    def mutable_options(cls) -> frozenset[str]:
        """Names of the options a SIGHUP reload may change without a restart."""
        return frozenset(name for name in cls.model_fields if _flag(name, "mutable"))

    @classmethod
    def secret_options(cls) -> frozenset[str]:
        """Names of the options whose credentials are masked when shown."""
        return frozenset(name for name in cls.model_fields if _flag(name, "secret"))

    def origin(self, name: str) -> str:
        """Where option ``name`` got its value: default, file, environment or command line."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        return self._origins.get(name, "default")

    def masked(self) -> dict[str, object]:
        """Return the options as a dict, with credentials replaced by ``***`` (:func:`mask_url`).

        Every string is masked, not only the secret options': a URL in any option is shown safe.
        """
        return {name: _masked(value) for name, value in self.model_dump().items()}

    def __repr_args__(self) -> typing.Iterable[tuple[str | None, typing.Any]]:
        return list(self.masked().items())


def _masked(value: object) -> object:
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _flag(name: str, flag: str) -> bool:
    extra = Settings.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and extra.get(flag) is True


def _json_list(text: str) -> object:
    import orjson  # noqa: PLC0415 - only settings given as JSON need it

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list: {exc}") from exc


def load_settings(
    *,
    config_file: str | Path | None = None,
    overrides: typing.Mapping[str, object] | None = None,
) -> Settings:
    """Read settings from defaults, ``config_file``, the environment and ``overrides``.

    ``overrides`` are the command line's values (strings are converted as the environment's are).
    Raises :class:`ConfigError` for an unreadable file, an unknown option or a bad value.
    """
    path = _check_config_file(config_file)
    given = dict(overrides or {})
    origins = _origins(path, given)
    token = _config_file.set(path)
    try:
        settings = Settings(**typing.cast("dict[str, typing.Any]", given))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins)) from exc
    finally:
        _config_file.reset(token)
    settings._origins = origins  # noqa: SLF001 - set once by its own module
    return settings


def _check_config_file(config_file: str | Path | None) -> Path | None:
    if config_file is None:
        return None
    path = Path(config_file)
    try:
        with path.open("rb") as stream:
            tomllib.load(stream)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    return path


def _origins(path: Path | None, overrides: dict[str, object]) -> dict[str, str]:
    """Name the source each option's value comes from, in precedence order."""
    origins: dict[str, str] = {}
    if path is not None:
        origins.update(dict.fromkeys(TomlConfigSettingsSource(Settings, path)(), "file"))
    origins.update(dict.fromkeys(EnvSettingsSource(Settings)(), "environment"))
    origins.update(dict.fromkeys(overrides, "command line"))
    return origins


def _describe(exc: ValidationError, origins: dict[str, str]) -> str:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        origin = origins.get(name, "default")
        where = (
            f" (from {origin}: {ENV_PREFIX}{name.upper()})"
            if origin == "environment"
            else (f" (from {origin})")
        )
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(Settings.model_fields))
            problems.append(f"unknown option `{name}`{where}; known options: {known}")
            continue
        shown = mask_text(repr(error.get("input")))
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"option `{name}`{where}: {message}, got {shown}")
    return "invalid settings: " + "; ".join(problems)


_current: Settings | None = None


def get_settings() -> Settings:
    """Return the process's settings, loading defaults and the environment on first use.

    The launcher installs the settings it loaded with :func:`set_settings`; library code (such as
    :class:`~steward.Manager` falling back to ``settings.host``) reads them here.
    """
    global _current  # noqa: PLW0603 - the process-wide settings, as oslo's CONF
    if _current is None:
        _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Install ``settings`` as the process's settings (None: reload from the environment)."""
    global _current  # noqa: PLW0603 - the process-wide settings, as oslo's CONF
    _current = settings
