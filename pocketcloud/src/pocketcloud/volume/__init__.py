"""The volume service: block storage volumes and their attachments, through a volume driver."""

__all__: list[str] = []
