"""nats:// — NATS, on nats-py: core NATS, and JetStream for at-least-once casts and notifications.

URL: ``nats://[user:pass@]host[:port][,[user:pass@]host2[:port]...][/namespace][?options]``.
Several servers are tried, and reconnected to, as nats-py does; credentials go in each host's
userinfo (``user:pass@`` or ``token@``) or in a ``.creds`` file (``?creds=/path``); TLS is used
when the server requires it, with the system's CAs or ``?ca_file=``, ``cert_file=``,
``key_file=``. The namespace (default ``steward``) starts every subject and names the
JetStream stream, as a vhost separates systems on one RabbitMQ. ``?jetstream=true|false``
overrides the ``nats_jetstream`` setting for this URL.

Mapping (names in :class:`~steward.rpc.transports._nats_connection.Subjects`):

* a call's request (``send(confirm=False)``) is published to ``ns.call.<exchange>.<topic>``
  (or ``...<topic>.<server>``); the servers of a topic subscribe in queue group ``servers``, so
  each request reaches one of them. The reply goes to the caller's own reply subject
  ``ns.reply.<id>`` (:meth:`NatsTransport.listen_replies`), named in the request as oslo's
  ``_reply_q`` is: steward's own request/reply, not nats-py's ``request``, so that all calls on
  a transport share one subscription and a reply can come from any server. ``send_reply`` only
  ever publishes to a reply subject of the namespace: an address taken from a request can
  never make a server publish anywhere else (``$JS.API...`` for instance);
* a cast (``send(confirm=True)``) goes to ``ns.cast.<exchange>.<topic>[.<server>]``: on core
  NATS, published and flushed (the server has it) to queue-group subscribers as calls are; with
  JetStream, into stream ``ns`` (interest retention), the broker's acknowledgement awaited, and
  consumed through a durable pull consumer per subject shared by the topic's servers;
* a fanout cast goes to ``ns.fanout.<exchange>.<topic>``, a plain subscription of every server:
  all of them get it, those listening when it is sent;
* notifications go to ``ns.notify.<exchange>.<topic>.<priority>``: queue group
  ``notifications`` (or ``pool:<pool>``, so each pool gets every notification) on core NATS;
  with JetStream, the publisher creates the subject's durable consumer first, as oslo declares
  the queue, so notifications wait there for a listener (a pool gets a consumer of its own).

Delivery. **Core NATS is at-most-once**: it keeps nothing. A call nobody subscribes to fails at
once (the server's no-responders status); a cast or notification published while no server
subscribes is dropped (the server's verdict may come after the cast's flush); one delivered to a
server that dies before settling it is lost; ``requeue`` publishes it again (another server of the
group may take it, or none if none listens then), and a stopping listener gives back what its
handler never saw the same way. Notifications sent while no listener listens are lost. There is no
flow control between servers: core NATS spreads a topic's messages over its servers whether they
are busy or not; ``prefetch`` bounds what one server's handler holds, the rest waiting in that
process.
**With JetStream** (``nats_jetstream``), casts and notifications are at-least-once: a server
acknowledges after handling, a requeued message is ``nak``-ed and delivered again at once, a
rejected one ``term``-ed; a server that dies, or loses its connection, has its unsettled messages
redelivered to another after ``nats_ack_wait``; ``prefetch`` is exact (a server pulls only what
it has room for). Calls stay on core NATS either way: a call is at-most-once from its caller's
point of view, and a server that dies mid-call makes the caller time out. Every process of a
system must agree on ``nats_jetstream``.

A call's request carries its expiry (header ``Steward-Expires``, the caller's wall clock plus
its timeout: hosts need synchronised clocks, as they do for oslo's logs); a server drops it
unhandled after that, as RabbitMQ drops an expired message. The largest body is the smaller of
``max_message_size`` and the server's ``max_payload`` (1 MiB unless configured) less room for
headers; larger ones raise :class:`~steward.errors.MessageTooLarge` on send.

The transport is three modules, each one concern: this one (the Transport protocol),
``_nats_connection`` (URL, names, connection, JetStream objects) and ``_nats_listener``
(consuming, flow control, settling).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import typing
import uuid

from nats.errors import ConnectionClosedError, MaxPayloadError, NoRespondersError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from steward import config, redact
from steward.errors import (
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageTooLarge,
    MessageUndeliverable,
    TransportClosed,
)
from steward.rpc.transports._nats_connection import Connection, Subjects, parse_url, token
from steward.rpc.transports._nats_listener import EXPIRES_HEADER, CoreFeed, Listener, PullFeed
from steward.rpc.transports.base import BaseTransport

if typing.TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from steward.rpc.target import Target
    from steward.rpc.transports.base import (
        CrashHandler,
        MessageHandler,
        ReplyHandler,
        ReplyListener,
        Transport,
        UndeliverableHandler,
    )

__all__ = ["NatsTransport"]

LOG = logging.getLogger(__name__)

# Room left in the server's max_payload for the headers steward and JetStream add.
HEADER_ROOM = 512
# A JetStream publish waits this long for the stream's acknowledgement, and is tried this many
# times (with the same Nats-Msg-Id, so JetStream stores it once) before the cast fails.
_PUBLISH_TIMEOUT = 5.0
_PUBLISH_ATTEMPTS = 3
_RETRIED = (NatsTimeoutError, NoRespondersError, NoStreamResponseError, ConnectionClosedError)
# What the server sends to a request's reply subject when no subscriber takes the request.
_STATUS_HEADER = "Status"
_NO_RESPONDERS = "503"
# A call id that can be one token of a subject (steward's are hex): others get no bounce subject.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch


class NatsTransport(BaseTransport):
    """The nats:// transport. See the module docstring.

    ``settings`` (default: the defaults and the environment; :func:`~steward.rpc.get_transport`
    passes the process's) gives ``control_exchange``, ``max_message_size`` and
    the ``nats_*`` options; they are read once, here. :attr:`connection` keeps the nats-py
    client (connecting in the transport's task group); its ``name`` is the client name the
    server shows.
    """

    def __init__(self, url: str, *, settings: config.Settings | None = None) -> None:
        super().__init__(url, settings if settings is not None else config.load_settings())
        settings = self.settings
        try:
            parsed = parse_url(url)
            parsed.tls()  # a TLS file that cannot be read is a bad URL, said now
        except (ValueError, OSError) as exc:
            raise InvalidTransportURL(
                f"cannot read {config.mask_url(url)!r}: {redact.mask_detail(str(exc), url)}"
            ) from exc
        self.jetstream = parsed.jetstream if parsed.jetstream is not None else (
            settings.nats.jetstream
        )  # fmt: skip
        self.subjects = Subjects(parsed.namespace, settings.control_exchange)
        self.connection = Connection(parsed, self.url, settings, self.tasks)
        self._ack_wait = settings.nats.ack_wait
        self._undeliverable: UndeliverableHandler | None = None
        # Where the server's no-responders statuses come back: ``<prefix>.<call id>``.
        self._bounce_prefix: str | None = None
        self._bounce_lock = asyncio.Lock()
        self._notification_consumers: set[str] = set()
        self._listeners: set[Listener] = set()

    @property
    def max_message_size(self) -> int:
        """``max_message_size``, or less once connected: the server's ``max_payload``."""
        max_payload = self.connection.max_payload
        if max_payload is None:
            return self._max_message_size
        return min(self._max_message_size, max_payload - HEADER_ROOM)

    def live_listeners(self) -> list[Listener]:
        """Return the listeners still consuming (stopped ones may still report progress)."""
        return [listener for listener in self._listeners if not listener.stopping]

    @property
    def connected(self) -> bool:
        """Whether the transport is connected to a NATS server right now."""
        return self.connection.connected

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        """Publish ``body`` for ``target``: a call's subject, or a cast's (see the module doc).

        With ``confirm``, returns once the server has the message: JetStream's acknowledgement,
        or a flush on core NATS. A call carries a NATS reply subject of this transport's, where
        the server answers "no responders" when nobody subscribes: its ``call_id`` is reported
        to the reply listener's ``undeliverable``. A JetStream cast raises
        :class:`MessageUndeliverable` when no consumer of its subject exists (the stream would
        drop it: nobody is interested). A core NATS cast is at most once: the server's verdict
        can come after its flush, so nobody subscribing is not reported for it. Raises
        :class:`MessageTooLarge`, :class:`TransportClosed`, or :class:`MessageDeliveryFailure`
        when the server does not take it.
        """
        self.check_body(body)
        await self.connection.client()
        self.check_body(body)  # now against the server's max_payload too
        subject = self.subjects.destination("cast" if confirm else "call", target)
        headers = {EXPIRES_HEADER: f"{time.time() + expiration:.3f}"} if expiration else None
        if target.fanout:  # every server listening now; none is not an error
            await self._publish(subject, body, headers, flush=confirm)
        elif confirm and self.jetstream:
            await self._publish_to_stream(subject, body, headers, consumed=True)
        elif confirm:  # a core NATS cast: at most once, dropped if nobody subscribes
            await self._publish(subject, body, headers, flush=True)
        else:
            reply = await self._bounce_subject(call_id) if call_id and _TOKEN(call_id) else None
            await self._publish(subject, body, headers, flush=False, reply=reply)

    async def _bounce_subject(self, token: str) -> str:
        """Return ``<prefix>.<token>``, subscribing to the bounce subjects on first use."""
        if self._bounce_prefix is None:
            async with self._bounce_lock:
                if self._bounce_prefix is None:
                    client = await self.connection.client()
                    prefix = self.subjects.reply()
                    await client.subscribe(f"{prefix}.*", cb=self._on_bounce)
                    await client.flush()
                    self._bounce_prefix = prefix
        return f"{self._bounce_prefix}.{token}"

    async def _on_bounce(self, msg: Msg) -> None:
        # Only the server's statuses are meant for this subject; anything else is ignored.
        if (msg.headers or {}).get(_STATUS_HEADER) == _NO_RESPONDERS and self._undeliverable:
            self._undeliverable(msg.subject.rsplit(".", 1)[1])

    async def _require_consumer(self, subject: str) -> None:
        """Raise :class:`MessageUndeliverable` if no consumer of ``subject`` was ever made.

        A stream with interest retention keeps a message only for the consumers that exist:
        a cast to a subject no server ever consumed would be acknowledged and dropped.
        """
        if not await self.connection.has_consumer(self.subjects.consumer(subject)):
            raise MessageUndeliverable(f"subject {subject!r}")

    async def _publish(
        self,
        subject: str,
        body: bytes,
        headers: dict[str, str] | None,
        *,
        flush: bool,
        reply: str | None = None,
    ) -> None:
        client = await self.connection.client()
        try:
            await client.publish(subject, body, reply=reply or "", headers=headers)
            if flush:
                await self.connection.wait_connected()
                await client.flush(timeout=int(_PUBLISH_TIMEOUT))
        except MaxPayloadError as exc:
            raise MessageTooLarge(len(body), client.max_payload) from exc
        except TransportClosed:
            raise
        except Exception as exc:
            raise MessageDeliveryFailure(
                f"NATS did not take a message for {subject}: {exc!r}"
            ) from exc

    async def _publish_to_stream(
        self,
        subject: str,
        body: bytes,
        headers: dict[str, str] | None,
        *,
        consumed: bool = False,
    ) -> None:
        """Publish into the stream; with ``consumed``, only where a consumer will take it.

        The consumer is checked before each attempt: a stream made again after it was lost has
        none until the servers make theirs again, and would drop the message unseen.
        """
        headers = {**(headers or {}), "Nats-Msg-Id": uuid.uuid4().hex}
        failure: Exception | None = None
        for _ in range(_PUBLISH_ATTEMPTS):
            js = await self.connection.jetstream()
            if consumed:
                await self._require_consumer(subject)
            try:
                await js.publish(subject, body, timeout=_PUBLISH_TIMEOUT, headers=headers)
            except NoStreamResponseError as exc:  # the stream is gone: make it again
                failure = exc
                self.connection.stream_lost()
            except _RETRIED as exc:  # reconnecting: JetStream drops the duplicate, if any
                failure = exc
                await self.connection.wait_connected()
            except MaxPayloadError as exc:
                raise MessageTooLarge(len(body), self.max_message_size) from exc
            except NatsError as exc:  # refused by JetStream (a limit, a sealed stream...)
                raise MessageDeliveryFailure(
                    f"JetStream refused a message for {subject}: {exc!r}"
                ) from exc
            else:
                return
        raise MessageDeliveryFailure(
            f"JetStream did not take a message for {subject} after {_PUBLISH_ATTEMPTS} "
            f"attempts: {failure!r}"
        ) from failure

    async def send_reply(self, reply_to: str, body: bytes) -> None:
        """Publish a reply to ``reply_to``, which must be a reply subject of this namespace.

        Any other address (it comes from a request, so from anyone) is logged and dropped.
        """
        self.check_body(body)
        if not self.subjects.is_reply(reply_to):
            LOG.warning("Dropping a reply to %.100r: not a reply subject of %s", reply_to,
                        self.subjects.namespace)  # fmt: skip
            return
        await self._publish(reply_to, body, None, flush=False)

    async def listen(
        self,
        target: Target,
        handler: MessageHandler,
        *,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> Listener:
        """Consume the target's topic and server subjects (calls and casts) and its fanout."""
        if not target.topic or not target.server:
            raise ValueError(f"a server listens on a topic and a server name, got {target}")
        listener = self._listener(handler, on_crash)
        for subject in self.subjects.server("call", target):
            listener.feeds.append(CoreFeed(listener, subject, "servers", prefetch))
        for subject in self.subjects.server("cast", target):
            listener.feeds.append(self._feed(listener, subject, "servers", None, prefetch))
        listener.feeds.append(CoreFeed(listener, self.subjects.fanout(target), None, prefetch))
        return await self._start(listener)

    async def listen_replies(
        self, handler: ReplyHandler, *, undeliverable: UndeliverableHandler | None = None
    ) -> _ReplyListener:
        """Subscribe to a new reply subject of this transport.

        Called once, by the transport's :attr:`replies`: calls that find no server are reported
        to the ``undeliverable`` of the last reply listener.
        """
        self.check_open()
        client = await self.connection.client()
        subject = self.subjects.reply()

        async def on_reply(msg: Msg) -> None:
            handler(msg.data)

        subscription = await client.subscribe(subject, cb=on_reply)
        await client.flush()
        self._undeliverable = undeliverable
        return _ReplyListener(subject, subscription)

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        """Publish to ``ns.notify.<exchange>.<topic>.<priority>`` and wait for the server.

        With JetStream, the subject's durable consumer is created first (once per transport),
        so the notification waits for a listener as in oslo's ``<topic>.<priority>`` queue.
        """
        self.check_body(body)
        subject = self.subjects.notification(target, priority)
        if not self.jetstream:
            await self._publish(subject, body, None, flush=True)
            return
        if subject not in self._notification_consumers:
            try:
                await self.connection.ensure_consumer(
                    subject, self.subjects.consumer(subject), ack_wait=self._ack_wait
                )
            except NatsError as exc:
                raise MessageDeliveryFailure(
                    f"cannot create the JetStream consumer of {subject}: {exc!r}"
                ) from exc
            self._notification_consumers.add(subject)
        await self._publish_to_stream(subject, body, None)

    async def listen_notifications(
        self,
        targets: typing.Sequence[tuple[Target, str]],
        handler: MessageHandler,
        *,
        pool: str | None = None,
        prefetch: int,
        on_crash: CrashHandler | None = None,
    ) -> Listener:
        """Consume each ``(target, priority)`` subject: shared, or ``pool``'s own copy."""
        listener = self._listener(handler, on_crash)
        group = "notifications" if pool is None else f"pool:{token(pool)}"
        for target, priority in targets:
            subject = self.subjects.notification(target, priority)
            listener.feeds.append(self._feed(listener, subject, group, pool, prefetch))
        return await self._start(listener)

    def _listener(self, handler: MessageHandler, on_crash: CrashHandler | None) -> Listener:
        self.check_open()
        return Listener(self.connection, handler, on_crash)

    def _feed(
        self, listener: Listener, subject: str, group: str, pool: str | None, prefetch: int
    ) -> CoreFeed | PullFeed:
        if not self.jetstream:
            return CoreFeed(listener, subject, group, prefetch)
        consumer = self.subjects.consumer(subject, pool=pool)
        return PullFeed(listener, subject, consumer, prefetch, self._ack_wait)

    async def _start(self, listener: Listener) -> Listener:
        try:
            await listener.start()
        except NatsError as exc:
            raise MessageDeliveryFailure(f"NATS refused a consumer: {exc!r}") from exc
        self._listeners = {known for known in self._listeners if not known.finished}
        self._listeners.add(listener)
        return listener

    async def _aclose(self) -> None:
        """Stop the listeners left, and close the connection."""
        for listener in list(self._listeners):
            await listener.close()
        self._listeners.clear()
        await self.connection.close()

    def __repr__(self) -> str:
        return f"NatsTransport({self.url!r})"


class _ReplyListener:
    """The transport's reply subject and its subscription; aclose() unsubscribes."""

    def __init__(self, address: str, subscription: Subscription) -> None:
        self.address = address
        self._subscription = subscription

    async def aclose(self) -> None:
        try:
            await self._subscription.unsubscribe()
        except NatsError as exc:  # the connection is closed: the server forgot it already
            LOG.debug("Could not unsubscribe from %s (%r)", self.address, exc)


if typing.TYPE_CHECKING:
    _transport: Transport = NatsTransport("nats://")
    _reply_listener: ReplyListener = typing.cast("_ReplyListener", None)
