"""Imports point one way: the contracts in pyproject.toml's [tool.importlinter] hold."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_the_ones_the_architecture_states() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {
        contract["id"]: (contract["source_modules"], contract["forbidden_modules"])
        for contract in config["contracts"]
    }
    assert contracts == {
        "framework-below-pocketcloud": (["steward"], ["pocketcloud"]),
        "transports-below-service": (
            ["steward.rpc.transports"],
            ["steward.service", "steward.launcher", "steward.cli"],
        ),
        "manager-without-rpc": (["steward.manager"], ["steward.rpc"]),
    }


def test_lint_imports_finds_every_contract_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(  # noqa: S603 - the virtualenv's own tool
        [lint_imports, "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_importing_the_manager_loads_nothing_of_rpc() -> None:
    # The contracts read imports statically; this is the same rule at run time (a package's
    # __init__ runs too, and the notify package keeps its listener, which uses RPC, lazy).
    probe = (
        "import sys, steward.manager, steward.notify; "
        "print(sorted(m for m in sys.modules if m.startswith('steward.rpc')))"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
