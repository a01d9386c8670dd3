"""The compute service: runs instances on its host through a compute driver."""

__all__: list[str] = []
