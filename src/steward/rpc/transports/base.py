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
* carry replies: :meth:`Transport.listen_replies` gives this process one reply address shared by
  all its calls, :meth:`Transport.send_reply` delivers to such an address.

A transport knows nothing of services, managers or the message format; it never decodes a body.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable

if typing.TYPE_CHECKING:
    from steward.config import Settings
    from steward.rpc.target import Target

__all__ = [
    "IncomingMessage",
    "Listener",
    "MessageHandler",
    "ReplyHandler",
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
    """What :meth:`Transport.listen` returns: the consumers of one server target."""

    async def stop(self) -> None:
        """Stop consuming. Messages delivered and not yet settled stay the handler's to settle."""
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

    async def listen(self, target: Target, handler: MessageHandler, *, prefetch: int) -> Listener:
        """Consume for server ``target``: its topic, ``topic.server`` and the topic's fanout."""
        ...

    async def listen_replies(
        self, handler: ReplyHandler, *, undeliverable: UndeliverableHandler | None = None
    ) -> str:
        """Return this transport's reply address, consuming replies into ``handler``.

        ``undeliverable`` is told the ``call_id`` of each call request that reached no server.
        Called once per transport by the client machinery; later calls return the same address.
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
    ) -> Listener:
        """Consume notifications for each ``(target, priority)``: queue ``<topic>.<priority>``.

        ``pool`` names a queue of its own bound to the same keys (oslo's listener pools), so
        several applications each get every notification.
        """
        ...

    async def close(self) -> None:
        """Release connections; listeners should be stopped first."""
        ...
