"""load_manager_class: import the manager class an operator names as ``module:Class``."""

from __future__ import annotations

import importlib
import os
import sys

from steward.manager import Manager

__all__ = ["load_manager_class"]


def load_manager_class(path: str) -> type[Manager]:
    """Import ``"module:Class"`` and check it is a :class:`Manager` subclass.

    The path comes from the operator's command line, never from a message. As uvicorn does, the
    current directory is importable, so ``steward run myapp:MyManager`` works from a checkout.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"expected a manager as 'module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} of {path!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Manager)):
        raise TypeError(f"{path!r} is {cls!r}, not a steward.Manager subclass")
    return cls
