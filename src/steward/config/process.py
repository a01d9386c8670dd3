"""The process's settings: installed by an entry point, read by the defaults that need them.

Only entry points (the ``steward`` and ``pocketcloud`` commands) install settings, with
:func:`set_settings`, after building them once and passing them down. Below them nothing reads
the process's settings, except the defaults of the public constructors a user calls directly:
:class:`~steward.Manager` (its host, as nova's ``CONF.host``), :func:`~steward.rpc.get_transport`
and :class:`~steward.service.Service` (and ``Service.create``) given neither settings nor a
transport.
``tests/steward/test_settings_flow.py`` holds that list.
"""

from __future__ import annotations

from steward.config.loading import load_settings
from steward.config.settings import Settings

__all__ = ["get_settings", "set_settings"]

_current: Settings | None = None


def get_settings() -> Settings:
    """Return the process's settings, loading defaults and the environment on first use."""
    global _current  # noqa: PLW0603 - the process-wide settings, as oslo's CONF
    if _current is None:
        _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Install ``settings`` as the process's settings (None: reload from the environment)."""
    global _current  # noqa: PLW0603 - the process-wide settings, as oslo's CONF
    _current = settings
