from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from steward._lazy import lazy_import


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module on the path that nothing has imported yet."""
    (tmp_path / "lazy_probe.py").write_text("RUNS = 1\nVALUE = 'real'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    yield "lazy_probe"
    sys.modules.pop("lazy_probe", None)


def test_a_lazy_module_is_imported_on_first_use_and_only_then(probe: str) -> None:
    module = lazy_import(probe)
    assert probe not in sys.modules
    assert module.VALUE == "real"
    assert probe in sys.modules
    assert module.RUNS == 1
    assert repr(module) == "<lazy module 'lazy_probe'>"
    assert "VALUE" in dir(module)


def test_a_lazy_module_shows_what_is_rebound_after_its_first_use(
    probe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = lazy_import(probe)
    assert module.VALUE == "real"
    monkeypatch.setattr(sys.modules[probe], "VALUE", "patched")
    assert module.VALUE == "patched"


def test_a_missing_module_fails_at_first_use_not_before() -> None:
    module = lazy_import("steward_no_such_module")
    with pytest.raises(ModuleNotFoundError, match="steward_no_such_module"):
        _ = module.anything


def test_a_relative_name_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute module name"):
        lazy_import(".cli")
