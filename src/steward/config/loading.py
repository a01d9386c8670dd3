"""load_settings: read the sources, and say exactly what is wrong when a value is bad."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path

from pydantic import ValidationError

from steward.config import _sources
from steward.config._sources import ENV_PREFIX
from steward.config.settings import Settings
from steward.errors import ConfigError
from steward.redact import mask_text

__all__ = ["load_settings"]


def load_settings(
    *,
    config_file: str | Path | None = None,
    overrides: typing.Mapping[str, object] | None = None,
) -> Settings:
    """Read settings from defaults, ``config_file``, the environment and ``overrides``.

    ``overrides`` are the command line's values (strings are converted as the environment's are);
    a transport's option is given by its flat name (``rabbit_quorum_queue``) or in its section
    (``{"rabbit": {"quorum_queue": True}}``). Raises :class:`ConfigError` for an unreadable
    file, an unknown option or a bad value. The settings remember the file and the overrides:
    :meth:`Settings.reread` reads them again (SIGHUP).
    """
    path = _check_config_file(config_file)
    given = dict(overrides or {})
    origins = _origins(path, given)
    token = _sources.config_file.set(path)
    try:
        settings = Settings(**typing.cast("dict[str, typing.Any]", given))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins)) from exc
    finally:
        _sources.config_file.reset(token)
    settings._origins = origins  # noqa: SLF001 - set once by its own package
    settings._read_from = (path, given)  # noqa: SLF001 - set once by its own package
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
    """Name the source each option's value comes from (a section's dotted), in precedence order."""
    origins: dict[str, str] = {}
    if path is not None:
        origins.update(
            dict.fromkeys(_sources.dotted(Settings, _sources.file_values(Settings, path)), "file")
        )
    environment = _sources.environment_values(Settings)
    origins.update(dict.fromkeys(_sources.dotted(Settings, environment), "environment"))
    origins.update(dict.fromkeys(_sources.dotted(Settings, overrides), "command line"))
    return origins


def _describe(exc: ValidationError, origins: dict[str, str]) -> str:
    problems = []
    variables = _sources.environment_names(Settings)
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) if error["loc"] else "?"
        origin = origins.get(name, "default")
        if origin == "environment":
            variable = variables.get(name, f"{ENV_PREFIX}{name.upper()}")
            where = f" (from {origin}: {variable})"
        else:
            where = f" (from {origin})"
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(Settings.option_names()))
            problems.append(f"unknown option `{name}`{where}; known options: {known}")
            continue
        shown = mask_text(repr(error.get("input")))
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"option `{name}`{where}: {message}, got {shown}")
    return "invalid settings: " + "; ".join(problems)
