"""What pocketcloud's RPC API classes share: topics, service names, and how clients are built.

Every client re-raises pocketcloud's own errors (:mod:`pocketcloud.errors`) as their class, beside
the modules the ``allowed_remote_exmods`` setting lists; any other remote exception arrives as
:class:`steward.errors.RemoteError`. Nothing named by a message is imported otherwise.
"""

from __future__ import annotations

from pocketcloud import TOPICS
from steward.rpc import RPCClient, Target, Transport

__all__ = ["BINARIES", "ERROR_MODULES", "TOPICS", "binary_of", "make_client"]


BINARIES = {topic: f"pocketcloud-{topic}" for topic in TOPICS}
"""Each topic's service name in the registry (nova's ``nova-compute``...)."""

ERROR_MODULES = ("pocketcloud.errors",)
"""Modules whose exceptions pocketcloud's clients re-raise by class."""


def binary_of(topic: str) -> str:
    """Return the registry name of the service on ``topic`` (``pocketcloud-compute``)."""
    return BINARIES[topic]


def make_client(
    transport: Transport,
    topic: str,
    version: str,
    *,
    version_cap: str | None = None,
    timeout: float | None = None,
) -> RPCClient:
    """Return a client of ``topic`` at base ``version``, capped at ``version_cap``.

    It re-raises the exceptions of the transport's ``allowed_remote_exmods`` setting and of
    :data:`ERROR_MODULES` by class.
    """
    allowed = [*transport.settings.allowed_remote_exmods, *ERROR_MODULES]
    return RPCClient(
        transport,
        Target(topic, version=version),
        version_cap=version_cap,
        timeout=timeout,
        allowed_remote_exmods=allowed,
    )
