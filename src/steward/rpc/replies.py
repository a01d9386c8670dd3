"""The reply path: one reply consumer per transport, routing replies to the calls that wait.

Every call on a transport shares the transport's reply address (oslo's one reply queue per
transport). The :class:`ReplyRouter` owns that consumer: it starts it at the first call
(:meth:`ReplyRouter.address`), resolves each call's future by message id
(:meth:`ReplyRouter.expect`), and :meth:`ReplyRouter.aclose` stops the consumer and fails the
calls still waiting with :class:`~steward.errors.TransportClosed`. The transport holds its router
(:attr:`~steward.rpc.transports.base.BaseTransport.replies`) and closes it when it closes itself;
nothing else keeps reply state.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import typing

from steward.errors import MalformedMessage, MessageUndeliverable, TransportClosed
from steward.redact import shorten
from steward.rpc import wire

if typing.TYPE_CHECKING:
    from steward.rpc.transports.base import ReplyListener, Transport

__all__ = ["ReplyRouter"]

LOG = logging.getLogger(__name__)

# oslo remembers the last 16 _unique_id values per consumer to drop redelivered duplicates.
_SEEN_IDS = 16


class ReplyRouter:
    """The reply consumer of one transport: routes replies to waiting calls by message id."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._listener: ReplyListener | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[wire.Reply]] = {}
        self._seen: collections.deque[str] = collections.deque(maxlen=_SEEN_IDS)
        self._closed = False

    @property
    def waiting(self) -> int:
        """Calls waiting for their reply now."""
        return len(self._pending)

    async def address(self) -> str:
        """Return the transport's reply address, starting its reply consumer at the first call."""
        if self._listener is None:
            async with self._lock:
                if self._closed:
                    raise TransportClosed(f"transport {self._transport.url} is closed")
                if self._listener is None:
                    self._listener = await self._transport.listen_replies(
                        self._on_reply, undeliverable=self._on_undeliverable
                    )
        return self._listener.address

    def expect(self, msg_id: str) -> asyncio.Future[wire.Reply]:
        """Register a call by its message id; its future resolves with the final reply.

        The caller removes it with :meth:`forget` however the call ends. The future raises
        :class:`~steward.errors.MessageUndeliverable` when the transport reports that the request
        reached no server, :class:`~steward.errors.TransportClosed` when the router closes.
        """
        if self._closed:
            raise TransportClosed(f"transport {self._transport.url} is closed")
        future: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        return future

    def forget(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id``'s reply (a reply coming later is logged and dropped)."""
        self._pending.pop(msg_id, None)

    def _on_reply(self, body: bytes) -> None:
        try:
            reply = wire.parse_reply(wire.decode(body))
        except MalformedMessage as exc:
            LOG.warning("Dropping a malformed reply: %s", exc)
            return
        if reply.unique_id is not None:
            if reply.unique_id in self._seen:
                LOG.info(
                    "Ignoring duplicate reply %r to %r",
                    shorten(reply.unique_id),
                    shorten(reply.msg_id),
                )
                return
            self._seen.append(reply.unique_id)
        future = self._pending.get(reply.msg_id)
        if future is None or future.done():
            LOG.info(
                "No call waits for a reply to message %r (late reply); dropped",
                shorten(reply.msg_id),
            )
            return
        if reply.ending or reply.result is not None or reply.failure is not None:
            future.set_result(reply)
        # else: a call-monitor heartbeat ("still working"); the call keeps waiting.

    def _on_undeliverable(self, call_id: str) -> None:
        """Fail the call whose request the transport reports no server took, at once."""
        future = self._pending.get(call_id)
        if future is not None and not future.done():
            future.set_exception(MessageUndeliverable(f"message {shorten(call_id)}"))

    async def aclose(self) -> None:
        """Stop the reply consumer; the calls still waiting fail with TransportClosed."""
        self._closed = True
        for msg_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    TransportClosed(
                        f"transport {self._transport.url} closed while call {shorten(msg_id)} "
                        "waited for its reply"
                    )
                )
        async with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()

    def __repr__(self) -> str:
        return f"<ReplyRouter of {self._transport.url}: {len(self._pending)} waiting>"
