"""Every public exception steward raises, in one hierarchy.

::

    StewardError
    ├── ConfigError (ValueError)           a setting is missing, malformed or out of range
    ├── DriverNotFound (LookupError)       no driver of that kind has that name
    ├── DriverLoadError (ImportError)      a driver was found but could not be loaded or built
    └── PeriodicTaskError                  a periodic task was declared wrongly
        └── InvalidPeriodicTaskArg (ValueError, TypeError)

Later capabilities (RPC, services, the registry) add their branches here, keeping the names
oslo.messaging users know (``MessagingTimeout``, ``RemoteError``, ``UnsupportedVersion``...).
Each exception that mixes in a stdlib type does so where it is one, so ``except ValueError``
keeps working for callers that do not know steward.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DriverLoadError",
    "DriverNotFound",
    "InvalidPeriodicTaskArg",
    "PeriodicTaskError",
    "StewardError",
]


class StewardError(Exception):
    """The root of every exception steward raises on purpose."""


class ConfigError(StewardError, ValueError):
    """A setting has a value steward cannot use.

    Raised by :func:`steward.config.load_settings` (and so by every command that loads settings).
    The message names the option, the value that came and where it came from, and what is allowed.
    """


class DriverNotFound(StewardError, LookupError):
    """No driver of the requested kind is registered under the requested name.

    Raised by :func:`steward.drivers.load_driver`; :attr:`available` lists the names that exist.
    """

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = available
        listed = ", ".join(available) if available else "none are installed"
        super().__init__(
            f"no {kind!r} driver named {name!r}; available {kind!r} drivers: {listed} "
            f"(or give a 'module:Class' path)"
        )


class DriverLoadError(StewardError, ImportError):
    """A driver's module or class could not be imported, or is not the kind asked for.

    Raised by :func:`steward.drivers.load_driver`, chained to the original error.
    """


class PeriodicTaskError(StewardError):
    """A periodic task is declared in a way steward cannot schedule."""


class InvalidPeriodicTaskArg(PeriodicTaskError, ValueError, TypeError):
    """An argument of :func:`steward.periodic_task` has the wrong type or value.

    The name follows oslo.service's ``InvalidPeriodicTaskArg``; it is both a ``ValueError`` and a
    ``TypeError`` so either ``except`` clause catches it.
    """
