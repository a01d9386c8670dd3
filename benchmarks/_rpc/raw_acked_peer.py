"""The raw aio-pika baseline keeping steward's delivery guarantees (see :mod:`.raw_peer`).

Persistent messages, acknowledgement after handling, mandatory replies and confirmed casts:
what steward does on the wire, with no framework around it.
"""

from __future__ import annotations

import contextlib

from benchmarks._rpc import raw_peer
from benchmarks._rpc.measure import AsyncPeer, Counts

__all__ = ["connected", "serving"]


def serving(url: str, topic: str) -> contextlib.AbstractAsyncContextManager[None]:
    """:func:`.raw_peer.serving` with steward's guarantees."""
    return raw_peer.serving(url, topic, guarantees=True)


def connected(
    url: str, topic: str, counts: Counts
) -> contextlib.AbstractAsyncContextManager[AsyncPeer]:
    """:func:`.raw_peer.connected` with steward's guarantees."""
    return raw_peer.connected(url, topic, counts, guarantees=True)
