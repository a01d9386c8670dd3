"""RPC between managers: targets, clients, servers and the transports under them.

``get_transport(url)`` picks a transport by URL; :class:`RPCClient` calls and casts to a
:class:`Target`; :class:`RPCServer` serves endpoints on one; :func:`lenient` marks an endpoint
method whose arguments are converted leniently rather than checked strictly. The names and
semantics follow oslo.messaging, and on RabbitMQ so does the wire format.
"""

from __future__ import annotations

from steward.rpc.client import RPCClient, SyncRPCClient
from steward.rpc.dispatcher import Dispatcher, lenient
from steward.rpc.serializer import NoOpSerializer, Serializer
from steward.rpc.server import RPCServer
from steward.rpc.target import Target
from steward.rpc.transports import get_transport
from steward.rpc.transports.base import Transport

__all__ = [
    "Dispatcher",
    "NoOpSerializer",
    "RPCClient",
    "RPCServer",
    "Serializer",
    "SyncRPCClient",
    "Target",
    "Transport",
    "get_transport",
    "lenient",
]
