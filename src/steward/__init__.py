r"""steward: nova's service architecture as a typed asyncio framework.

*Smart managers, dumb data.* A :class:`Manager` owns one part of a system and is the only code
that changes it; services expose its public methods over RPC, run its :func:`periodic_task`\\ s and
heartbeat into a registry. Everything public is re-exported here and listed in ``__all__``.

The names load on first use (PEP 562), so ``import steward.redact`` or ``steward --help`` does not
pay for pydantic, the settings and the manager; to a type checker they are plain imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import typing

if typing.TYPE_CHECKING:
    from steward._aio import TaskStatus, start
    from steward.clock import Clock, SystemClock
    from steward.config import Settings, get_settings, load_settings
    from steward.context import RequestContext, get_admin_context, get_current
    from steward.drivers import available_drivers, load_driver
    from steward.errors import (
        BindingError,
        ConfigError,
        DriverLoadError,
        DriverNotFound,
        InvalidPeriodicTaskArg,
        PeriodicTaskError,
        StewardError,
    )
    from steward.manager import Manager, ManagerBindings
    from steward.periodic import PeriodicScheduler, periodic_task

    __version__: str

__all__ = [
    "BindingError",
    "Clock",
    "ConfigError",
    "DriverLoadError",
    "DriverNotFound",
    "InvalidPeriodicTaskArg",
    "Manager",
    "ManagerBindings",
    "PeriodicScheduler",
    "PeriodicTaskError",
    "RequestContext",
    "Settings",
    "StewardError",
    "SystemClock",
    "TaskStatus",
    "__version__",
    "available_drivers",
    "get_admin_context",
    "get_current",
    "get_settings",
    "load_driver",
    "load_settings",
    "periodic_task",
    "start",
]

_HOMES = {
    "TaskStatus": "steward._aio",
    "start": "steward._aio",
    "Clock": "steward.clock",
    "SystemClock": "steward.clock",
    "Settings": "steward.config",
    "get_settings": "steward.config",
    "load_settings": "steward.config",
    "RequestContext": "steward.context",
    "get_admin_context": "steward.context",
    "get_current": "steward.context",
    "available_drivers": "steward.drivers",
    "load_driver": "steward.drivers",
    "BindingError": "steward.errors",
    "ConfigError": "steward.errors",
    "DriverLoadError": "steward.errors",
    "DriverNotFound": "steward.errors",
    "InvalidPeriodicTaskArg": "steward.errors",
    "PeriodicTaskError": "steward.errors",
    "StewardError": "steward.errors",
    "Manager": "steward.manager",
    "ManagerBindings": "steward.manager",
    "PeriodicScheduler": "steward.periodic",
    "periodic_task": "steward.periodic",
}
"""The module each public name lives in."""

if not typing.TYPE_CHECKING:  # a type checker sees the imports above, and no catch-all

    def __getattr__(name: str) -> object:
        if name == "__version__":
            from importlib import metadata  # noqa: PLC0415 - only a version check needs it

            value: object = metadata.version("steward-rpc")  # the distribution; decisions/0009
        elif name in _HOMES:
            value = getattr(importlib.import_module(_HOMES[name]), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"steward.{name}") is not None:
            # ``import steward`` then ``steward.config.X``: the submodule loads as it used to.
            value = importlib.import_module(f"steward.{name}")
        else:
            raise AttributeError(f"module 'steward' has no attribute {name!r}")
        globals()[name] = value  # once: the next read finds it
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))
