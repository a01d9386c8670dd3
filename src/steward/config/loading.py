"""load_settings: read the sources, and say exactly what is wrong when a value is bad."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from steward.config import _files, _sources
from steward.config._sources import ENV_PREFIX
from steward.config.settings import Settings
from steward.errors import ConfigError
from steward.redact import mask_text

__all__ = ["load_settings"]


def load_settings(
    *,
    config_file: str | Path | Sequence[str | Path] | None = None,
    config_dir: str | Path | None = None,
    overrides: typing.Mapping[str, object] | None = None,
) -> Settings:
    """Read settings from defaults, the config files, the environment and ``overrides``.

    ``config_file`` is one file or several (a later one wins, as oslo.config's repeated
    ``--config-file``), each TOML or an oslo.config INI file such as nova.conf (``.conf`` and
    ``.ini`` are INI; other names are told by their content). ``config_dir``'s ``*.conf`` files
    are read after them, in name order (oslo's ``--config-dir``). ``overrides`` are the command
    line's values (strings are converted as the environment's are); a transport's option is
    given by its flat name (``rabbit_quorum_queue``) or in its section (``{"rabbit":
    {"quorum_queue": True}}``). Raises :class:`ConfigError` for an unreadable file, an unknown
    option or a bad value. The settings remember the files and the overrides:
    :meth:`Settings.reread` reads them again (SIGHUP).
    """
    paths = _config_files(config_file, config_dir)
    given = dict(overrides or {})
    origins, locations = _origins(paths, given)
    token = _files.config_files.set(paths)
    try:
        settings = Settings(**typing.cast("dict[str, typing.Any]", given))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, locations)) from exc
    finally:
        _files.config_files.reset(token)
    settings._origins = origins  # noqa: SLF001 - set once by its own package
    settings._locations = locations  # noqa: SLF001 - set once by its own package
    settings._read_from = (paths, given)  # noqa: SLF001 - set once by its own package
    return settings


def _config_files(
    config_file: str | Path | Sequence[str | Path] | None, config_dir: str | Path | None
) -> tuple[Path, ...]:
    if config_file is None:
        files: list[Path] = []
    elif isinstance(config_file, str | Path):
        files = [Path(config_file)]
    else:
        files = [Path(item) for item in config_file]
    for path in files:
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
    if config_dir is not None:
        directory = Path(config_dir)
        if not directory.is_dir():
            raise ConfigError(f"config directory {str(directory)!r} is not a directory")
        files.extend(sorted(directory.glob("*.conf")))
    return tuple(files)


def _origins(
    paths: tuple[Path, ...], overrides: dict[str, object]
) -> tuple[dict[str, str], dict[str, str]]:
    """Name the source of each option's value (a section's dotted), and where in it.

    Returns option -> source (file, environment, command line) and option -> where: the file
    and its INI section, or the environment variable.
    """
    origins: dict[str, str] = {}
    locations: dict[str, str] = {}
    read = _files.files_values(Settings, paths)
    origins.update(dict.fromkeys(read.locations, "file"))
    locations.update(read.locations)
    environment = _sources.environment_values(Settings)
    variables = _sources.environment_names(Settings)
    for name in _sources.dotted(Settings, environment):
        origins[name] = "environment"
        locations.pop(name, None)
        if name in variables:
            locations[name] = variables[name]
    for name in _sources.dotted(Settings, overrides):
        origins[name] = "command line"
        locations.pop(name, None)
    return origins, locations


def _describe(exc: ValidationError, origins: dict[str, str], locations: dict[str, str]) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) if error["loc"] else "?"
        origin = origins.get(name, "default")
        if origin == "environment":
            variable = locations.get(name, f"{ENV_PREFIX}{name.upper()}")
            where = f" (from {origin}: {variable})"
        elif name in locations:
            where = f" (from {origin}: {locations[name]})"
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
