from __future__ import annotations

import importlib
import pkgutil

import pytest

import steward


def test_all_is_sorted_and_lists_every_public_name() -> None:
    for name in steward.__all__:  # each loads on first use (PEP 562): every one must
        assert getattr(steward, name) is not None, name
    # "@py_builtins", "@pytest_ar": pytest rewrites the asserts of a pytest11 plugin's whole
    # distribution, steward's included (steward.testing.plugin).
    public = {name for name in vars(steward) if not name.startswith(("_", "@"))}
    public -= {"annotations", "importlib", "typing"}
    public -= {
        name
        for name, value in vars(steward).items()
        if getattr(value, "__name__", None) == f"steward.{name}"  # submodules
    }
    assert steward.__all__ == sorted(steward.__all__)
    assert set(steward.__all__) - {"__version__"} == public


@pytest.mark.parametrize(
    "module_name",
    [module.name for module in pkgutil.walk_packages(steward.__path__, "steward.")],
)
def test_every_module_declares_all_of_names_it_defines(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ lists missing {name!r}"
    assert module.__doc__, f"{module_name} has no docstring"
