"""Drivers: one manager, many implementations, chosen by name.

A network manager drives Linux bridges or a Cisco switch through the same interface; which one is
a setting. :func:`load_driver` finds the implementation by its entry-point name in the group
``steward.drivers.<kind>`` (what installed packages register in their ``pyproject.toml``)::

    [project.entry-points."steward.drivers.network"]
    linux = "pocketcloud.network.linux:LinuxNetworkDriver"

or, for code not packaged with entry points, by a ``"module:Class"`` path. The names come from
local configuration, never from a remote message.
"""

from __future__ import annotations

import importlib
import typing
from importlib import metadata

from steward.errors import DriverLoadError, DriverNotFound

__all__ = ["ENTRY_POINT_GROUP_PREFIX", "available_drivers", "load_driver", "load_driver_class"]

ENTRY_POINT_GROUP_PREFIX = "steward.drivers."

T = typing.TypeVar("T")


def _group(kind: str) -> str:
    if not kind or not kind.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"`kind` must be a name such as 'network' or 'volume', got {kind!r}")
    return ENTRY_POINT_GROUP_PREFIX + kind


def available_drivers(kind: str) -> list[str]:
    """Return the sorted names of the drivers installed for ``kind``."""
    return sorted({ep.name for ep in metadata.entry_points(group=_group(kind))})


def load_driver_class(kind: str, name_or_path: str) -> type:
    """Return the driver class named ``name_or_path`` (entry-point name or ``module:Class``).

    Raises :class:`DriverNotFound` (listing the available names) when no such entry point exists,
    and :class:`DriverLoadError` when the module or class cannot be imported or is not a class.
    """
    group = _group(kind)
    if ":" in name_or_path:
        module_name, _, attr = name_or_path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise DriverLoadError(
                f"cannot import module {module_name!r} of {kind!r} driver {name_or_path!r}: {exc}"
            ) from exc
        target: object = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError as exc:
                raise DriverLoadError(
                    f"module {module_name!r} has no {attr!r} for {kind!r} driver {name_or_path!r}"
                ) from exc
    else:
        matches = [ep for ep in metadata.entry_points(group=group) if ep.name == name_or_path]
        if not matches:
            raise DriverNotFound(kind, name_or_path, available_drivers(kind))
        try:
            target = matches[0].load()
        except (ImportError, AttributeError) as exc:
            raise DriverLoadError(
                f"{kind!r} driver {name_or_path!r} ({matches[0].value}) cannot be loaded: {exc}"
            ) from exc
    if not isinstance(target, type):
        raise DriverLoadError(f"{kind!r} driver {name_or_path!r} is {target!r}, not a class")
    return target


@typing.overload
def load_driver(kind: str, name_or_path: str, expected: type[T], /, **kwargs: object) -> T: ...


@typing.overload
def load_driver(kind: str, name_or_path: str, /, **kwargs: object) -> object: ...


def load_driver(
    kind: str, name_or_path: str, expected: type[T] | None = None, /, **kwargs: object
) -> object:
    """Find driver ``name_or_path`` of ``kind`` and return an instance built with ``kwargs``.

    With ``expected`` (a base class or runtime-checkable Protocol, passed third), a driver that
    is not one raises :class:`DriverLoadError`, and the result is typed as ``expected``.
    """
    cls = load_driver_class(kind, name_or_path)
    driver: object = cls(**kwargs)
    if expected is not None and not isinstance(driver, expected):
        raise DriverLoadError(
            f"{kind!r} driver {name_or_path!r} ({cls.__module__}.{cls.__qualname__}) "
            f"is not a {expected.__qualname__}"
        )
    return driver
