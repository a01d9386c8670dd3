"""The scheduler service: chooses a compute host for each server (filters, then weighers)."""

__all__: list[str] = []
