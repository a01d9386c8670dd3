r"""steward: nova's service architecture as a typed asyncio framework.

*Smart managers, dumb data.* A :class:`Manager` owns one part of a system and is the only code
that changes it; services expose its public methods over RPC, run its :func:`periodic_task`\\ s and
heartbeat into a registry. Everything public is re-exported here and listed in ``__all__``.
"""

from __future__ import annotations

from importlib import metadata

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

__version__ = metadata.version("steward-rpc")  # the distribution; docs/decisions/0009

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
