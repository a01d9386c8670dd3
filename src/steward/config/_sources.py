"""Where settings come from, and the flat (oslo) names of the transports' sectioned options.

A transport's options live in a section of their own (``settings.rabbit.quorum_queue``), but each
source also accepts the flat name oslo.messaging gives them (``rabbit_quorum_queue``). Every
source's values are brought to the sectioned shape *before* the sources are merged, so
precedence (command line > environment > file > defaults) holds whichever spelling each used.
Within one source the sectioned spelling wins over the flat one.

In the environment the sectioned spelling is ``STEWARD_RABBIT__QUORUM_QUEUE`` (pydantic-settings'
``env_nested_delimiter``, two underscores) and the flat one ``STEWARD_RABBIT_QUORUM_QUEUE``.

The config files (TOML, or oslo.config INI) are read by :mod:`steward.config._files`.
"""

from __future__ import annotations

import functools
import os
import typing

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)

from steward.config._option import flat_name

__all__ = [
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "FlatEnvironmentSource",
    "NestedSource",
    "dotted",
    "environment_names",
    "flat_aliases",
    "nest",
    "sections",
]

ENV_PREFIX = "STEWARD_"
ENV_NESTED_DELIMITER = "__"


@functools.cache
def sections(settings_cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Return the sectioned options of ``settings_cls``: field name -> its model (rabbit, nats)."""
    found: dict[str, type[BaseModel]] = {}
    for name, field in settings_cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found[name] = annotation
    return found


@functools.cache
def flat_aliases(settings_cls: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """Return flat name -> (section, option), for every option of every section."""
    aliases: dict[str, tuple[str, str]] = {}
    for section, model in sections(settings_cls).items():
        for name in model.model_fields:
            flat = flat_name(model, name)
            if flat is not None:
                aliases[flat] = (section, name)
    return aliases


def nest(settings_cls: type[BaseModel], values: typing.Mapping[str, object]) -> dict[str, object]:
    """Return ``values`` with every flat name moved into its section (sectioned spelling wins).

    A dotted name (``rabbit.quorum_queue``, as ``steward config show`` lists it) is moved too.
    """
    aliases = flat_aliases(settings_cls)
    section_names = sections(settings_cls)
    nested: dict[str, object] = {}
    moved: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        section, dot, name = key.partition(".")
        if key in aliases:
            section, name = aliases[key]
            moved.setdefault(section, {})[name] = value
        elif dot and section in section_names:
            moved.setdefault(section, {})[name] = value
        elif key in section_names and isinstance(value, BaseModel):
            # A section given as a model: its options set one by one, as any source's.
            nested[key] = value.model_dump(exclude_unset=True)
        else:
            nested[key] = value
    for section, options in moved.items():
        given = nested.get(section)
        if isinstance(given, typing.Mapping):
            nested[section] = {**options, **given}
        elif given is None:
            nested[section] = options
        # Anything else is a bad value for the section: validation names it.
    return nested


def dotted(settings_cls: type[BaseModel], values: typing.Mapping[str, object]) -> list[str]:
    """Return the option names ``values`` sets, a section's as ``section.option``."""
    names: list[str] = []
    section_names = sections(settings_cls)
    for key, value in nest(settings_cls, values).items():
        if key in section_names and isinstance(value, typing.Mapping):
            names.extend(f"{key}.{name}" for name in value)
        else:
            names.append(key)
    return names


def environment_names(settings_cls: type[BaseModel]) -> dict[str, str]:
    """Return option name (dotted for a section's) -> the environment variable that set it."""
    environ = {name.upper(): name for name in os.environ}
    found: dict[str, str] = {}
    for flat, (section, name) in flat_aliases(settings_cls).items():
        variable = f"{ENV_PREFIX}{flat}".upper()
        if variable in environ:
            found[f"{section}.{name}"] = environ[variable]
    for name in settings_cls.model_fields:
        if name in sections(settings_cls):
            prefix = f"{ENV_PREFIX}{name}{ENV_NESTED_DELIMITER}".upper()
            for variable, original in environ.items():
                if variable.startswith(prefix):
                    option = variable.removeprefix(prefix).lower()
                    found[f"{name}.{option}"] = original
            continue
        variable = f"{ENV_PREFIX}{name}".upper()
        if variable in environ:
            found[name] = environ[variable]
    return found


class NestedSource(PydanticBaseSettingsSource):
    """A source whose flat names are moved into their sections (:func:`nest`)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[typing.Any, str, bool]:
        """Unused: :meth:`__call__` returns the inner source's values, nested."""
        return None, field_name, False

    def __call__(self) -> dict[str, typing.Any]:
        """Return the inner source's values with flat names moved into their sections."""
        return typing.cast("dict[str, typing.Any]", nest(self.settings_cls, self.inner()))

    def __repr__(self) -> str:
        return f"NestedSource({self.inner!r})"


class FlatEnvironmentSource(PydanticBaseSettingsSource):
    """The environment's flat names of sectioned options: ``STEWARD_RABBIT_QUORUM_QUEUE``.

    Case-insensitive, as pydantic-settings' own environment source. Ranks just below it, so
    ``STEWARD_RABBIT__QUORUM_QUEUE`` wins when both are set.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[typing.Any, str, bool]:
        """Unused: :meth:`__call__` reads every flat name at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, typing.Any]:
        """Return the flat names set in the environment, in their sections."""
        environ = {name.upper(): value for name, value in os.environ.items()}
        found = {
            flat: environ[f"{ENV_PREFIX}{flat}".upper()]
            for flat in flat_aliases(self.settings_cls)
            if f"{ENV_PREFIX}{flat}".upper() in environ
        }
        return typing.cast("dict[str, typing.Any]", nest(self.settings_cls, found))


def environment_values(settings_cls: type[BaseSettings]) -> dict[str, typing.Any]:
    """Return the environment's values (sectioned and flat spellings), in their sections."""
    flat = FlatEnvironmentSource(settings_cls)()
    sectioned = EnvSettingsSource(settings_cls)()
    merged: dict[str, typing.Any] = dict(flat)
    for key, value in sectioned.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
