"""steward's extras: which optional library each belongs to, and the error when one is missing.

steward's own dependencies are what every service needs; a broker client, PostgreSQL's driver,
the tracing SDK, Prometheus' client and the debug console's library are extras
(docs/decisions/0009). Each is imported only by the module that uses it, when the feature is
first used; :func:`requiring` wraps that import and turns the ``ModuleNotFoundError`` of a missing
extra into a :class:`~steward.errors.MissingDependency` that says what to install.
"""

from __future__ import annotations

import contextlib
import importlib
import typing

from steward.errors import MissingDependency

if typing.TYPE_CHECKING:
    import types
    from collections.abc import Iterator

__all__ = ["DISTRIBUTION", "EXTRAS", "extra_for", "require", "requiring"]

DISTRIBUTION = "steward-rpc"
"""steward's distribution name on PyPI (the import name is ``steward``)."""

EXTRAS: dict[str, str] = {
    "aiormq": "amqp",
    "nats": "nats",
    "asyncpg": "postgres",
    "opentelemetry.sdk": "tracing",
    "opentelemetry.exporter": "tracing",
    "prometheus_client": "metrics",
    "aioconsole": "console",
}
"""Import name of an optional library (or a package of it) -> the extra that installs it."""


def extra_for(module: str | None) -> str | None:
    """Return the extra that installs ``module`` (or the package it is in), or None."""
    while module:
        if module in EXTRAS:
            return EXTRAS[module]
        module = module.rpartition(".")[0]
    return None


@contextlib.contextmanager
def requiring(feature: str) -> Iterator[None]:
    """Turn the import error of a missing extra inside the block into :class:`MissingDependency`.

    ``feature`` says what needed it (``"the amqp:// transport"``). Any other import error (a
    broken install, a missing library no extra provides) passes through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name)
        if extra is None:
            raise
        raise MissingDependency(
            f"{feature} needs {exc.name}, which is not installed; install steward's "
            f"{extra!r} extra: pip install '{DISTRIBUTION}[{extra}]'"
        ) from exc


def require(module: str, *, feature: str) -> types.ModuleType:
    """Import and return ``module`` of an extra, for ``feature``; see :func:`requiring`."""
    with requiring(feature):
        return importlib.import_module(module)
