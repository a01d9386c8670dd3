"""The reply path: one reply consumer per transport, routing replies to the calls that wait.

Every call on a transport shares the transport's reply address (oslo's one reply queue per
transport). The :class:`ReplyRouter` owns that consumer: it starts it at the first call
(:meth:`ReplyRouter.address`), hands each reply to the :class:`PendingCall` of its message id
(:meth:`ReplyRouter.expect`): the final reply resolves it, a call-monitor heartbeat keeps it
alive (oslo's ``call_monitor_timeout``); and :meth:`ReplyRouter.aclose` stops the consumer and
fails the calls still waiting with :class:`~steward.errors.TransportClosed`. The transport holds
its router (:attr:`~steward.rpc.transports.base.BaseTransport.replies`) and closes it when it
closes itself; nothing else keeps reply state.
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

__all__ = ["PendingCall", "ReplyRouter"]

LOG = logging.getLogger(__name__)

# oslo remembers the last 16 _unique_id values per consumer to drop redelivered duplicates.
_SEEN_IDS = 16


class PendingCall:
    """One call waiting for its reply: :meth:`ReplyRouter.expect` makes it, the consumer feeds it.

    :meth:`wait` returns the final reply. A server running a request whose caller set
    ``call_monitor_timeout`` (``_timeout`` on the wire) sends ``ending: false`` replies with no
    result while the method runs, as oslo's call-monitor heartbeats; each one gives the waiting
    call another ``call_monitor_timeout`` seconds, counts in :attr:`heartbeats` and sets
    :attr:`heartbeat` (an observer clears it to see the next one).
    """

    __slots__ = ("_monitor", "_reply", "_watchdog", "heartbeat", "heartbeats", "msg_id")

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        self.heartbeats = 0
        self.heartbeat = asyncio.Event()
        self._reply: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self._monitor: float | None = None
        self._watchdog: asyncio.Timeout | None = None

    @property
    def done(self) -> bool:
        """Whether the call has its outcome (a reply, or an error from the router)."""
        return self._reply.done()

    async def wait(self, *, call_monitor_timeout: float | None = None) -> wire.Reply:
        """Return the final reply; raises what the router failed the call with.

        With ``call_monitor_timeout``, raise :class:`TimeoutError` when neither the reply nor a
        heartbeat came within that many seconds of the wait's start or of the last heartbeat
        (the server died or stopped answering). Any overall timeout is the caller's scope.
        """
        if call_monitor_timeout is None:
            return await self._reply
        async with asyncio.timeout(call_monitor_timeout) as watchdog:
            self._monitor, self._watchdog = call_monitor_timeout, watchdog
            try:
                return await self._reply
            finally:
                self._watchdog = None

    def _beat(self) -> None:
        """Count a heartbeat (the server still runs the call) and push the watchdog's deadline."""
        self.heartbeats += 1
        self.heartbeat.set()
        if self._watchdog is not None and self._monitor is not None:
            self._watchdog.reschedule(asyncio.get_running_loop().time() + self._monitor)

    def _resolve(self, reply: wire.Reply) -> None:
        if not self._reply.done():
            self._reply.set_result(reply)

    def _fail(self, exc: BaseException) -> None:
        if not self._reply.done():
            self._reply.set_exception(exc)

    def __repr__(self) -> str:
        state = "done" if self.done else f"waiting, {self.heartbeats} heartbeats"
        return f"<PendingCall {shorten(self.msg_id)}: {state}>"


class ReplyRouter:
    """The reply consumer of one transport: routes replies to waiting calls by message id."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._listener: ReplyListener | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[str, PendingCall] = {}
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

    def expect(self, msg_id: str) -> PendingCall:
        """Register a call by its message id; its :meth:`PendingCall.wait` returns the reply.

        The caller removes it with :meth:`forget` however the call ends. The wait raises
        :class:`~steward.errors.MessageUndeliverable` when the transport reports that the request
        reached no server, :class:`~steward.errors.TransportClosed` when the router closes.
        """
        if self._closed:
            raise TransportClosed(f"transport {self._transport.url} is closed")
        call = self._pending[msg_id] = PendingCall(msg_id)
        return call

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
        call = self._pending.get(reply.msg_id)
        if call is None or call.done:
            LOG.info(
                "No call waits for a reply to message %r (late reply); dropped",
                shorten(reply.msg_id),
            )
            return
        if reply.ending or reply.result is not None or reply.failure is not None:
            call._resolve(reply)  # noqa: SLF001 - the router and its calls are one unit
        else:  # a call-monitor heartbeat (oslo: "still working"); the call keeps waiting
            call._beat()  # noqa: SLF001

    def _on_undeliverable(self, call_id: str) -> None:
        """Fail the call whose request the transport reports no server took, at once."""
        call = self._pending.get(call_id)
        if call is not None:
            call._fail(MessageUndeliverable(f"message {shorten(call_id)}"))  # noqa: SLF001

    async def aclose(self) -> None:
        """Stop the reply consumer; the calls still waiting fail with TransportClosed."""
        self._closed = True
        for msg_id, call in list(self._pending.items()):
            call._fail(  # noqa: SLF001
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
