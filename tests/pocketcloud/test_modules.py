from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import pocketcloud

MODULES = [module.name for module in pkgutil.walk_packages(pocketcloud.__path__, "pocketcloud.")]
SOURCE = Path(pocketcloud.__file__).parent


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_has_a_docstring_and_all_of_names_it_defines(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no docstring"
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ lists missing {name!r}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    "path", sorted(SOURCE.rglob("*.py")), ids=lambda path: str(path.relative_to(SOURCE))
)
def test_a_service_touches_only_its_own_tables(path: Path) -> None:
    # Smart managers, dumb data: a service reads another's data through its RPC API. The one
    # exception is nova's: the scheduler reads the compute hosts' resource reports.
    service = path.relative_to(SOURCE).parts[0]
    allowed = {f"pocketcloud.{service}.tables"}
    if service == "scheduler":
        allowed.add("pocketcloud.compute.tables")
    if service in {"tables.py", "migrations"}:
        return
    table_modules = {name for name in _imports(path) if name.endswith(".tables")}
    assert table_modules <= allowed, f"{path.name} imports {table_modules - allowed}"


def test_the_guest_program_imports_nothing_of_pocketcloud_or_steward() -> None:
    imports = _imports(SOURCE / "compute" / "guest.py")
    assert not {name for name in imports if name.split(".")[0] in {"pocketcloud", "steward"}}
