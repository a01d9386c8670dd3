"""Transports by URL scheme, and :func:`get_transport` to pick one.

``memory://`` (the default) is in-process; ``amqp://``, ``amqps://`` and ``rabbit://`` speak
oslo.messaging's RabbitMQ wire format. Broker transports are imported only when their scheme is
used, so their client libraries cost nothing to a process that does not use them.
"""

from __future__ import annotations

import importlib

from steward import config
from steward._optional import requiring
from steward.config import mask_url
from steward.errors import InvalidTransportURL
from steward.rpc.transports.base import Transport

__all__ = ["SCHEMES", "get_transport"]

SCHEMES: dict[str, str] = {
    "memory": "steward.rpc.transports.memory:MemoryTransport",
    "amqp": "steward.rpc.transports.rabbit:RabbitTransport",
    "amqps": "steward.rpc.transports.rabbit:RabbitTransport",
    "rabbit": "steward.rpc.transports.rabbit:RabbitTransport",
    "nats": "steward.rpc.transports.nats:NatsTransport",
}
"""URL scheme -> ``module:Class`` of the transport that serves it."""


def get_transport(url: str | None = None, *, settings: config.Settings | None = None) -> Transport:
    """Return a new transport for ``url`` (default: the ``transport_url`` setting).

    Raises :class:`InvalidTransportURL` for a scheme steward does not know, listing those it does,
    and :class:`~steward.errors.MissingDependency` for one whose extra is not installed.
    """
    settings = settings if settings is not None else config.get_settings()
    url = url if url is not None else settings.transport_url
    # Not urlsplit: it raises ValueError quoting a piece of the netloc (a password's, maybe).
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise InvalidTransportURL(
            f"unknown transport URL scheme in {mask_url(url)!r}; steward knows {known}"
        )
    module_name, _, class_name = SCHEMES[scheme].partition(":")
    with requiring(f"the {scheme}:// transport"):
        module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    transport: Transport = cls(url, settings=settings)
    return transport
