"""The config files: TOML or oslo.config INI (an existing deployment's nova.conf), in order.

:func:`file_values` tells the two apart (:func:`is_ini`) and brings each to the sectioned shape
of the other sources (:func:`~steward.config._sources.nest`), noting where each option was set;
an INI file's oslo names become steward's here (:func:`oslo_values`; the lines themselves are
read by :mod:`steward.config._ini`). Several files are read in order, a later one winning option
by option: oslo.config's repeated ``--config-file`` and its ``--config-dir``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import re
import string
import tomllib
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from steward.config._ini import DEFAULT_SECTION, read_ini
from steward.config._sources import dotted, flat_aliases, nest, sections
from steward.errors import ConfigError
from steward.redact import mask_text

__all__ = [
    "NOTIFICATIONS_SECTION",
    "RABBIT_SECTION",
    "FileSource",
    "FileValues",
    "config_files",
    "file_values",
    "files_values",
    "is_ini",
    "oslo_values",
]

LOG = logging.getLogger(__name__)

# The config files of the load in progress, later winning. Pydantic-settings builds its sources
# in a classmethod, so the paths travel to it here rather than through the constructor.
config_files: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar(
    "steward_config_files", default=()
)


@dataclasses.dataclass(frozen=True, slots=True)
class FileValues:
    """What one config file sets: the values (flat names in their sections) and where each is.

    ``locations`` maps each option it sets (dotted in a section, as :func:`dotted` names them) to
    where: the file's path, and for an INI file the section it was read from
    (``/etc/nova/nova.conf [oslo_messaging_rabbit]``).
    """

    values: dict[str, typing.Any]
    locations: dict[str, str]


def is_ini(path: Path) -> bool:
    """Return whether ``path`` is an oslo.config INI file rather than TOML.

    By its name (``.conf``, ``.ini``: INI; ``.toml``: TOML), else by its content: a
    ``[DEFAULT]`` or ``[oslo_...]`` section, or text TOML cannot read, is INI.
    """
    suffix = path.suffix.lower()
    if suffix in {".conf", ".ini"}:
        return True
    if suffix == ".toml":
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # the TOML reader says what is wrong with it
    if _OSLO_SECTION.search(text):
        return True
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return True
    return False


_OSLO_SECTION = re.compile(r"^\[(DEFAULT|oslo_[A-Za-z_]+)\]\s*$", re.MULTILINE | re.IGNORECASE)


def file_values(settings_cls: type[BaseModel], path: Path) -> FileValues:
    """Return the values of one config file, TOML or oslo INI (:func:`is_ini`), in sections."""
    if is_ini(path):
        return oslo_values(settings_cls, path)
    try:
        with path.open("rb") as stream:
            raw = tomllib.load(stream)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    values = nest(settings_cls, raw)
    return FileValues(values, dict.fromkeys(dotted(settings_cls, values), str(path)))


def files_values(settings_cls: type[BaseModel], paths: typing.Iterable[Path]) -> FileValues:
    """Return the values of several config files, a later file winning option by option."""
    values: dict[str, typing.Any] = {}
    locations: dict[str, str] = {}
    for path in paths:
        read = file_values(settings_cls, path)
        for key, value in read.values.items():
            given = values.get(key)
            if isinstance(value, dict) and isinstance(given, dict):
                values[key] = {**given, **value}
            else:
                values[key] = value
        locations.update(read.locations)
    return FileValues(values, locations)


class FileSource(PydanticBaseSettingsSource):
    """The config files of the load in progress (:data:`config_files`), a later one winning."""

    def __init__(self, settings_cls: type[BaseSettings], paths: tuple[Path, ...]) -> None:
        super().__init__(settings_cls)
        self.paths = paths

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[typing.Any, str, bool]:
        """Unused: :meth:`__call__` reads the files at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, typing.Any]:
        """Return the files' values, in their sections."""
        return files_values(self.settings_cls, self.paths).values

    def __repr__(self) -> str:
        return f"FileSource({[str(path) for path in self.paths]!r})"


# --- oslo.config INI files -------------------------------------------------------------------

NOTIFICATIONS_SECTION = "oslo_messaging_notifications"
RABBIT_SECTION = "oslo_messaging_rabbit"

# [oslo_messaging_notifications]: oslo's name -> steward's option.
_NOTIFICATION_OPTIONS = {
    "driver": "notification_driver",
    "topics": "notification_topics",
    "transport_url": "notification_transport_url",
}

# oslo.config's types.Boolean, case-insensitive.
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def _oslo_names(settings_cls: type[BaseModel], section: str) -> dict[str, str] | None:
    """Return oslo name -> steward option (dotted) for an INI ``section``; None: steward's not."""
    if section == DEFAULT_SECTION:
        return {
            name: name for name in settings_cls.model_fields if name not in sections(settings_cls)
        }
    if section == RABBIT_SECTION:
        return {
            flat: f"{where}.{name}"
            for flat, (where, name) in flat_aliases(settings_cls).items()
            if where == "rabbit"
        }
    if section == NOTIFICATIONS_SECTION:
        return {
            key: name
            for key, name in _NOTIFICATION_OPTIONS.items()
            if name in settings_cls.model_fields
        }
    return None


def oslo_values(settings_cls: type[BaseModel], path: Path) -> FileValues:
    """Return what an oslo.config INI file (nova.conf) sets of steward's options, in sections.

    ``[DEFAULT]`` gives the options of the same name (``transport_url``, ``host``,
    ``rpc_response_timeout``...); ``[oslo_messaging_rabbit]`` the RabbitMQ section's, by their
    oslo names (the flat aliases of :mod:`steward.config.rabbit`);
    ``[oslo_messaging_notifications]`` ``driver``, ``topics`` and ``transport_url``. Other
    sections, and keys steward does not know in these, are ignored (logged at debug): a
    nova.conf has hundreds of options steward has not.
    Values are converted as oslo.config converts them (booleans, comma-separated lists, the
    last of a key assigned twice); an empty value leaves an option that cannot be empty unset.
    """
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    flat: dict[str, object] = {}
    locations: dict[str, str] = {}
    parsed = read_ini(path)
    for section, options in parsed.items():
        names = _oslo_names(settings_cls, section)
        if names is None:
            LOG.debug("%s: section [%s] is not steward's; ignored", path, section)
            continue
        for key, assigned in options.items():
            name = names.get(key)
            if name is None:
                LOG.debug("%s [%s]: option %s is not steward's; ignored", path, section, key)
                continue
            where = f"{path} [{section}]"
            references = _References(parsed, name, where)
            # Only the values used: oslo's multi-valued driver takes all, the others the last.
            used = assigned if name == "notification_driver" else assigned[-1:]
            substituted = [references.substitute(value) for value in used]
            value = _oslo_value(settings_cls, name, key, substituted, where)
            if value is _UNSET:
                LOG.debug("%s: %s is empty; left unset", where, key)
                continue
            flat[name] = value
            locations[name] = where
    return FileValues(nest(settings_cls, flat), locations)


_UNSET = object()


class _Template(string.Template):
    # oslo.config's references: $name or ${name} in [DEFAULT], ${group.name} in a group.
    idpattern = r"[_a-z][._a-z0-9]*"


class _References(typing.Mapping[str, str]):
    """The values ``$name`` and ``${group.name}`` refer to in an INI file, as oslo.config's.

    oslo.config replaces them in every value (``$$`` is a ``$``; a ``$`` not followed by a name
    stays). Here a name refers to the value the same file gives it; one the file does not set
    is an error (oslo.config would take the default of an option steward does not know).
    """

    def __init__(self, parsed: dict[str, dict[str, list[str]]], name: str, where: str) -> None:
        self.parsed = parsed
        self.name = name
        self.where = where
        self.resolving: list[str] = []

    def substitute(self, value: str) -> str:
        return _Template(value).safe_substitute(self) if "$" in value else value

    def __getitem__(self, reference: str) -> str:
        group, _, key = reference.rpartition(".")
        section = group.lower() if group and group != DEFAULT_SECTION else DEFAULT_SECTION
        values = self.parsed.get(section, {}).get(key)
        if not values or reference in self.resolving:
            problem = "which refers back to it" if values else "which the file does not set"
            raise ConfigError(
                f"invalid settings: option `{self.name}` (from file: {self.where}) refers to "
                f"${{{reference}}}, {problem}; write $$ for a literal $"
            )
        self.resolving.append(reference)
        try:
            return self.substitute(values[-1])
        finally:
            self.resolving.pop()

    def __iter__(self) -> typing.Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _oslo_value(
    settings_cls: type[BaseModel], name: str, key: str, assigned: list[str], where: str
) -> object:
    """Convert the values assigned to ``key`` as oslo.config would, for steward's ``name``."""
    if name == "notification_driver":
        return _notification_driver(assigned, where)
    section, _, option_name = name.rpartition(".")
    model = sections(settings_cls)[section] if section else settings_cls
    annotation = model.model_fields[option_name].annotation
    value = assigned[-1]
    if typing.get_origin(annotation) is list:
        # oslo.config's ListOpt: comma-separated, each item stripped, empty items kept.
        return [item.strip() for item in value.split(",")] if value.strip() else []
    kinds = set(typing.get_args(annotation)) if _is_union(annotation) else {annotation}
    if value == "" and (type(None) in kinds or str not in kinds):
        # oslo.config reads an empty value as None ('' for a string): steward's "not set".
        return None if type(None) in kinds else _UNSET
    if bool in kinds:
        folded = value.strip().lower()
        if folded in _TRUE | _FALSE:
            return folded in _TRUE
        raise ConfigError(
            f"invalid settings: option `{name}` (from file: {where}, as {key}): expected a "
            f"boolean (true/false, yes/no, on/off, 1/0), got {mask_text(repr(value))}"
        )
    return value


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in {typing.Union, types.UnionType}


def _notification_driver(assigned: list[str], where: str) -> str:
    """Return the one driver of oslo's multi-valued ``driver`` option (none: noop)."""
    drivers: list[str] = []
    for value in assigned:
        driver = "messaging" if value.strip() == "messagingv2" else value.strip()
        if driver not in {"", "noop"} and driver not in drivers:
            drivers.append(driver)
    if len(drivers) > 1:
        raise ConfigError(
            f"invalid settings: option `notification_driver` (from file: {where}, as driver): "
            f"steward sends notifications through one driver, got {', '.join(drivers)}; keep one"
        )
    return drivers[0] if drivers else "noop"
