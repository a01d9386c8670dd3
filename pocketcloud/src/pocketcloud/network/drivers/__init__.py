"""Network drivers shipped with pocketcloud: ``fake`` (in memory)."""

__all__: list[str] = []
