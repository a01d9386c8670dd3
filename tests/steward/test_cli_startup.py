"""The ``steward`` command starts without the parts only its commands need."""

from __future__ import annotations

import subprocess
import sys

import pytest

import steward

HEAVY = (
    "aio_pika", "aiormq", "alembic", "asyncpg", "fastapi", "httpx", "nats", "opentelemetry",
    "prometheus_client", "pydantic", "pydantic_settings", "sqlalchemy", "uvicorn",
    "steward.config", "steward.db", "steward.launcher", "steward.manager", "steward.rpc",
    "steward.service",
)  # fmt: skip


def loaded_after(code: str) -> list[str]:
    """Run ``code`` in a new interpreter; return which of :data:`HEAVY` it imported."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.rpartition("loaded:")[2].split()


def run_help(main: str) -> str:
    """Code that runs ``main()`` (a console script's function) with ``--help``."""
    module, _, function = main.partition(":")
    return (
        f"import sys\nfrom {module} import {function}\nsys.argv = ['x', '--help']\n"
        f"try:\n    {function}()\nexcept SystemExit:\n    pass"
    )


@pytest.mark.parametrize(
    "code",
    ["import steward", "import steward.cli", run_help("steward.cli:main")],
    ids=["package", "import", "help"],
)
def test_steward_and_its_command_import_nothing_heavy_until_a_command_runs(code: str) -> None:
    assert loaded_after(code) == []


def test_a_name_of_the_package_loads_its_module_on_first_use() -> None:
    assert loaded_after("import steward\nsteward.Manager") == [
        "opentelemetry", "pydantic", "pydantic_settings", "steward.config", "steward.manager",
    ]  # fmt: skip


def test_every_public_name_has_a_home_module() -> None:
    assert set(steward._HOMES) | {"__version__"} == set(steward.__all__)


def test_a_submodule_is_reached_through_the_package_as_before() -> None:
    assert "steward.db" in loaded_after("import steward\nsteward.db.Database")
