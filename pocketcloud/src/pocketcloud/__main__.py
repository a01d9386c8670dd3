"""``python -m pocketcloud``: the ``pocketcloud`` command."""

from __future__ import annotations

from pocketcloud.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
