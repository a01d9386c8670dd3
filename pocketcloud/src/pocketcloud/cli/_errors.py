"""One-line errors for ``pocketcloud up`` and ``pocketcloud db``: what failed, on stderr."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.text import Text

from steward.errors import ConfigError
from steward.redact import mask_text

__all__ = ["errors_are_one_line", "print_error", "stderr"]

stderr = Console(stderr=True)
"""Where the commands say what went wrong, and notes beside their output."""


@contextlib.contextmanager
def errors_are_one_line(debug: bool) -> Iterator[None]:
    """Turn an error into one line on stderr and exit code 1 (2 for bad settings)."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        code = 2 if isinstance(exc, ConfigError) else 1
        print_error("error:", f"{type(exc).__name__}: {str(exc) or 'no detail'}")
        raise typer.Exit(code=code) from exc


def print_error(label: str, message: str) -> None:
    """Print ``label message`` on stderr in one line: as it is (never as markup), URLs masked."""
    shown = mask_text(message)
    stderr.print(Text.assemble((label, "red"), " ", shown), highlight=False, soft_wrap=True)
