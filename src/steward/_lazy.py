"""Lazy module imports: a module that loads on its first attribute access.

The command-line programs (``steward``, ``pocketcloud``) reach SQLAlchemy, the transports and
the launcher only in the commands that use them; ``--help`` and a mistyped option should not pay
for them. A module imported with :func:`lazy_import` is named at the top of the importing module,
where a reader looks for imports, and loads when the code first uses it::

    if typing.TYPE_CHECKING:
        from steward import launcher
    else:
        launcher = lazy_import("steward.launcher")

The ``TYPE_CHECKING`` branch gives mypy the real module (every attribute typed); the other is
what runs. Only whole modules are lazy: a name imported from a module (``from m import X``) must
exist at once, so the call site says ``launcher.ServiceLauncher``.

Why a proxy that calls :func:`importlib.import_module`, not :class:`importlib.util.LazyLoader`:
``LazyLoader`` imports the module's parent packages at once (a package's ``__init__`` may be the
heavy part), puts a module that has not run into :data:`sys.modules` (so "is it loaded?" has no
plain answer), and loads without a lock before Python 3.12 (cpython gh-114763). The proxy holds
no module until used, and the import system's own locks guard the load. pocketcloud's commands
use it too; docs/decisions/0011 records the choice.
"""

from __future__ import annotations

import importlib
import types

__all__ = ["lazy_import"]


class _LazyModule(types.ModuleType):
    """Stands for the module ``__name__`` and imports it when an attribute is first read."""

    def __getattr__(self, attribute: str) -> object:
        # Only called for what the proxy itself lacks (its own __name__, __doc__... are there):
        # every other read goes to the module, so a later rebinding (a test's monkeypatch) shows.
        return getattr(importlib.import_module(self.__name__), attribute)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy_import(name: str) -> types.ModuleType:
    """Return a stand-in for the module ``name`` (absolute) that imports it on first use.

    Nothing is imported now, not even the parent packages, so a wrong name raises
    :class:`ModuleNotFoundError` at the first use, from :func:`importlib.import_module`.
    """
    if name.startswith("."):
        raise ValueError(f"lazy_import needs an absolute module name, got {name!r}")
    return _LazyModule(name)
