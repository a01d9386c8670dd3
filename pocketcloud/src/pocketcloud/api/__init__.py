"""The api service: pocketcloud's REST API, and the owner of the servers' records."""

__all__: list[str] = []
