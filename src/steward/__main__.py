"""``python -m steward``: the ``steward`` command (worker processes are started this way)."""

from steward.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
