"""The options ``pocketcloud up`` and ``pocketcloud db`` share, and what they override."""

from __future__ import annotations

import typing
from pathlib import Path

import typer

__all__ = ["DataDir", "cloud_overrides"]

DataDir = typing.Annotated[
    Path | None,
    typer.Option("--data-dir", help="Database, consoles and volumes [./pocketcloud-data]."),
]


def cloud_overrides(**values: object) -> dict[str, object]:
    """Return pocketcloud's settings given on the command line: those not left out (None)."""
    return {name: value for name, value in values.items() if value is not None}
