"""Compute drivers shipped with pocketcloud: ``fake`` (in memory), ``process`` (processes)."""

__all__: list[str] = []
