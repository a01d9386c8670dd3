"""Volume drivers shipped with pocketcloud: ``fake`` (in memory) and ``file`` (sparse files)."""

__all__: list[str] = []
