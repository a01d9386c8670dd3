"""The Transport protocol every transport implements.

A transport moves opaque bodies (bytes in :mod:`steward.rpc.wire`'s format) between processes;
everything above it — clients, servers, the dispatcher — is transport-agnostic. Its job:

* :meth:`Transport.send` a body to a :class:`~steward.rpc.Target`: to the ``topic`` (one of its
  servers takes it), to ``topic.server`` (that server), or with ``fanout`` to every server. A
  request sent where no queue exists (no server ever listened there) is never silently dropped:
  a cast's ``send`` raises :class:`~steward.errors.MessageUndeliverable`, and a call's request,
  sent without waiting for the broker, is reported to the ``undeliverable`` callback given to
  :meth:`Transport.listen_replies`, with its ``call_id``. A fanout to no server is dropped;
* :meth:`Transport.listen` for a server target, delivering each body as an
  :class:`IncomingMessage` that the server acknowledges *after* handling it (at-least-once: a
  message that is neither acknowledged nor rejected goes back to the queue when the listener
  stops or dies), with at most ``prefetch`` unacknowledged messages per listener;
* carry replies: :meth:`Transport.listen_replies` consumes one reply address shared by all the
  calls of this transport, :meth:`Transport.send_reply` delivers to such an address. The
  transport's :attr:`~Transport.replies` (a :class:`~steward.rpc.replies.ReplyRouter`) owns that
  consumer for the RPC clients and routes replies to their calls.

Ownership: a transport is an async context manager (``async with get_transport(url) as t:``);
:meth:`Transport.aclose` stops its listeners and its reply consumer, then its connections. Every
background task of a transport runs in a :class:`steward._aio.TaskGroup` of the object that owns
it: a listener's consumers in the listener's, the connection keepers in the transport's. A
listener whose consumer dies tells its ``on_crash`` callback at once (its server fails with it),
rather than go deaf until it is stopped. :class:`BaseTransport` gives a transport all of this
except the transport-specific closing (``_aclose``).

A transport knows nothing of services, managers or the message format; it never decodes a body.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable

from steward._aio import AsyncClosing, CrashHandler, TaskGroup
from steward.errors import MessageTooLarge, TransportClosed
from steward.redact import mask_url
from steward.rpc.replies import ReplyRouter

if typing.TYPE_CHECKING:
    from typing import Self

    from steward.config import Settings
    from steward.rpc.target import Target

__all__ = [
    "BaseIncoming",
    "BaseListener",
    "BaseTransport",
    "CrashHandler",
    "IncomingMessage",
    "Listener",
    "MessageHandler",
    "ReplyHandler",
    "ReplyListener",
    "Settlement",
    "Transport",
    "UndeliverableHandler",
]


class IncomingMessage(typing.Protocol):
    """One delivered body and how to settle it. Exactly one settle call counts."""

    @property
    def body(self) -> bytes:
        """The message's bytes, as sent."""
        ...

    @property
    def redelivered(self) -> bool:
        """Whether the transport delivered this message before (it may be a duplicate)."""
        ...

    async def ack(self) -> None:
        """Settle: handled; the transport forgets the message."""
        ...

    async def requeue(self) -> None:
        """Settle: not handled; give it back for another (or the same) listener."""
        ...

    async def reject(self) -> None:
        """Settle: never handle it (malformed); drop it without requeueing."""
        ...


MessageHandler = Callable[[IncomingMessage], Awaitable[None]]
"""Called for each delivered message, one at a time per listener; should return quickly."""

ReplyHandler = Callable[[bytes], None]
"""Called with each body arriving at this process's reply address."""

UndeliverableHandler = Callable[[str], None]
"""Called with the ``call_id`` of a call whose request reached no server (see :meth:`send`)."""


class Listener(typing.Protocol):
    """What :meth:`Transport.listen` returns: the consumers of one server target.

    An async context manager: leaving it (or :meth:`aclose`) stops consuming.
    """

    async def aclose(self) -> None:
        """Stop consuming. Messages delivered and not yet settled stay the handler's to settle."""
        ...

    async def stop(self) -> None:
        """Stop consuming (:meth:`aclose` by its older name)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None: ...


class ReplyListener(typing.Protocol):
    """What :meth:`Transport.listen_replies` returns: the consumer of one reply address."""

    @property
    def address(self) -> str:
        """The reply address (``reply_q``) callers put in their requests."""
        ...

    async def aclose(self) -> None:
        """Stop consuming replies; the address stops receiving."""
        ...


@typing.runtime_checkable
class Transport(typing.Protocol):
    """Moves bodies by target; see the module docstring for the contract."""

    @property
    def url(self) -> str:
        """The transport URL with credentials masked, for logs."""
        ...

    settings: Settings
    """The settings the transport was made with (a SIGHUP reload replaces its mutable options).

    The RPC servers, clients and notifiers built on it take their settings from here unless
    given others; the transport itself reads its options once, when made.
    """

    @property
    def max_message_size(self) -> int:
        """The largest body, in bytes, this transport sends or accepts."""
        ...

    @property
    def replies(self) -> ReplyRouter:
        """The router of this transport's reply consumer, shared by every call on it."""
        ...

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        """Send ``body`` to ``target``.

        ``expiration`` (calls: their timeout) lets the transport discard the message if nobody
        takes it within that many seconds (AMQP's ``expiration`` property).
        ``confirm`` asks the broker to confirm receipt before returning (casts: at-least-once);
        a call's reply confirms its request, so calls pass False.
        ``call_id`` marks a call's request (its ``_msg_id``): if the transport learns that no
        queue took it, it reports that id to the ``undeliverable`` callback of
        :meth:`listen_replies`. Raises :class:`~steward.errors.MessageUndeliverable` when it
        knows before returning that no queue takes a (non-fanout) message.
        """
        ...

    async def send_reply(self, reply_to: str, body: bytes) -> None:
        """Send a reply ``body`` to a reply address taken from a request."""
        ...

    async def listen(
        self,
        target: Target,
        handler: MessageHandler,
        *,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> Listener:
        """Consume for server ``target``: its topic, ``topic.server`` and the topic's fanout.

        ``on_crash`` is told at once if a consumer of the listener dies of an error.
        """
        ...

    async def listen_replies(
        self, handler: ReplyHandler, *, undeliverable: UndeliverableHandler | None = None
    ) -> ReplyListener:
        """Consume this transport's reply address into ``handler``.

        ``undeliverable`` is told the ``call_id`` of each call request that reached no server.
        Called once per transport, by its :attr:`replies`.
        """
        ...

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        """Publish a notification to ``<topic>.<priority>`` and wait for the broker to take it.

        As oslo.messaging does, the publisher declares a queue named exactly that routing key, so
        notifications wait there until a listener consumes them.
        """
        ...

    async def listen_notifications(
        self,
        targets: typing.Sequence[tuple[Target, str]],
        handler: MessageHandler,
        *,
        pool: str | None = None,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> Listener:
        """Consume notifications for each ``(target, priority)``: queue ``<topic>.<priority>``.

        ``pool`` names a queue of its own bound to the same keys (oslo's listener pools), so
        several applications each get every notification. ``on_crash``: as for :meth:`listen`.
        """
        ...

    async def aclose(self) -> None:
        """Stop the listeners left and the reply consumer, then release the connections.

        Calls still waiting for a reply fail with :class:`~steward.errors.TransportClosed`; later
        use raises it. Closing again does nothing.
        """
        ...

    async def close(self) -> None:
        """Close (:meth:`aclose` by its older name)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None: ...


Settlement = typing.Literal["ack", "requeue", "reject"]
"""How an :class:`IncomingMessage` was settled."""


class BaseIncoming:
    """The settle-once rule every transport's delivered message shares.

    ``ack``, ``requeue`` and ``reject`` call the subclass's :meth:`_settle` for the first of
    them only; later calls do nothing ("exactly one settle call counts").
    """

    __slots__ = ("_settled",)

    def __init__(self) -> None:
        self._settled = False

    async def ack(self) -> None:
        """Settle: handled; the transport forgets the message."""
        await self._settle_once("ack")

    async def requeue(self) -> None:
        """Settle: not handled; give it back for another (or the same) listener."""
        await self._settle_once("requeue")

    async def reject(self) -> None:
        """Settle: never handle it (malformed); drop it without requeueing."""
        await self._settle_once("reject")

    async def _settle_once(self, how: Settlement) -> None:
        if self._settled:
            return
        self._settled = True
        await self._settle(how)

    async def _settle(self, how: Settlement) -> None:
        """Settle the message with the transport (each transport's own); called once."""
        raise NotImplementedError


class BaseListener(AsyncClosing):
    """The async-context-manager half of a :class:`Listener`; subclasses write :meth:`aclose`.

    ``tasks`` is the listener's task group: its consumers run there, and a crash is handed to
    the ``on_crash`` its server gave.
    """

    def __init__(self, owner: str, on_crash: CrashHandler | None) -> None:
        self.tasks = TaskGroup(owner, on_crash=on_crash)

    def fail(self, exc: BaseException) -> None:
        """Tell the listener's owner it cannot go on (its transport failed, or was closed)."""
        if self.tasks.on_crash is not None:
            self.tasks.on_crash(exc)

    async def aclose(self) -> None:
        """Stop consuming (subclasses stop their consumers, then close :attr:`tasks`)."""
        await self.tasks.aclose()

    async def stop(self) -> None:
        """Stop consuming (:meth:`aclose` by its older name)."""
        await self.aclose()


class BaseTransport(AsyncClosing):
    """What every transport shares: the reply router, the task group, closing as a context.

    Subclasses call ``super().__init__(url)``, implement the sending and listening methods of
    :class:`Transport`, and ``_aclose()`` (stop their listeners, release their connections).
    :attr:`tasks` holds the transport's own background tasks (connection keepers); a crash there
    is logged at once and raised by :meth:`aclose`.
    """

    _max_message_size: int
    _settings: Settings

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings
        self._max_message_size = settings.max_message_size
        self._replies: ReplyRouter | None = None
        self.closed = False
        self.failure: BaseException | None = None
        self.tasks = TaskGroup(f"transport {self.url}", on_crash=self._crashed)

    @property
    def url(self) -> str:
        """The transport URL with credentials masked, for logs."""
        return mask_url(self._url)

    @property
    def settings(self) -> Settings:
        """The settings the transport was made with; what it creates takes its defaults here.

        A SIGHUP reload replaces them with their mutable options reloaded (what clients and
        notifiers read at call time); the transport read its own options once, when made.
        """
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def max_message_size(self) -> int:
        """The ``max_message_size`` setting: larger bodies are refused."""
        return self._max_message_size

    @property
    def replies(self) -> ReplyRouter:
        """The router of this transport's reply consumer, made at first use."""
        if self._replies is None:
            self._replies = ReplyRouter(typing.cast("Transport", self))
        return self._replies

    def check_open(self) -> None:
        """Raise :class:`~steward.errors.TransportClosed` once the transport is closed."""
        if self.closed:
            raise TransportClosed(f"transport {self.url} is closed")

    def check_body(self, body: bytes) -> None:
        """Refuse to send ``body``: TransportClosed when closed, MessageTooLarge when too big.

        The one size check of every transport's sending methods.
        """
        self.check_open()
        limit = self.max_message_size
        if len(body) > limit:
            raise MessageTooLarge(len(body), limit)

    def live_listeners(self) -> typing.Iterable[BaseListener]:
        """Return the listeners of this transport still consuming (each transport's own)."""
        return ()

    def _crashed(self, exc: BaseException) -> None:
        """A task of the transport (a connection keeper, the reply consumer) died: its
        listeners cannot go on, and their owners are told (the group has logged it).
        """  # noqa: D205, D401 - a callback, described by what happened
        self.failure = exc
        for listener in list(self.live_listeners()):
            listener.fail(exc)

    async def aclose(self) -> None:
        """Close the reply router, then the transport, then its task group; once.

        A listener still consuming (its server was not stopped first) is told its transport
        closed under it, as of a crash: its owner does not go on looking healthy and deaf.
        """
        if self.closed:
            return
        self.closed = True
        gone = TransportClosed(f"transport {self.url} was closed while its listener consumed")
        for listener in list(self.live_listeners()):
            listener.fail(gone)
        try:
            if self._replies is not None:
                await self._replies.aclose()
        finally:
            try:
                await self._aclose()
            finally:
                await self.tasks.aclose()

    async def _aclose(self) -> None:
        """Stop the listeners left and release the connections (each transport's own)."""

    async def close(self) -> None:
        """Close (:meth:`aclose` by its older name)."""
        await self.aclose()
