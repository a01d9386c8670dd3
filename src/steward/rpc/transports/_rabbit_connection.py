"""The rabbit transport's connection and publishers, on aiormq (aio-pika's protocol layer).

Private to :mod:`steward.rpc.transports.rabbit`, split from it because this is the part that
knows aiormq's internals, kept in one place:

* :func:`broker_urls` reads oslo's transport URL form, several hosts included
  (``amqp://u:p@h1:5672,u:p@h2:5672/vhost``), into one aiormq URL per host;
* :class:`Connector` keeps one connection to the first host that answers, trying the hosts in
  order, and makes a new one when it is lost, waiting as oslo does between rounds
  (``rabbit_retry_interval``, plus ``rabbit_retry_backoff`` per failed round, at most
  ``rabbit_interval_max``: kombu's linear ``interval_step``);
* :class:`Publisher` publishes on a channel of its own. It writes the AMQP frames itself because
  aiormq's ``basic_publish`` adds a ``message_id`` property that oslo never sends, takes a lock
  and waits for the socket; with confirms it uses aiormq's confirmation bookkeeping as
  ``basic_publish`` does. A mandatory message the broker returns (a reply whose caller is gone)
  is reported to a callback: aiormq can only match returns that carry its ``message_id``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import typing
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

import aiormq
from aiormq.abc import ChannelFrame
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from yarl import URL

from steward._aio import TaskGroup
from steward.config import mask_url
from steward.errors import MessageDeliveryFailure, MessageUndeliverable, TransportClosed
from steward.rpc.transports._rabbit_topology import Exchange, Queue, declare

if typing.TYPE_CHECKING:
    from aiormq.abc import AbstractConnection

__all__ = ["CHANNEL_ERRORS", "Connector", "Publisher", "backoff", "broker_urls"]

LOG = logging.getLogger(__name__)

# A connection attempt to a host that does not answer gives up after this many seconds.
_CONNECT_TIMEOUT = 10.0
# A publish that fails this many times on a live connection (its channel closed under it each
# time, e.g. by a broker error) raises instead of trying again.
_CHANNEL_ATTEMPTS = 3

CHANNEL_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError)
"""What aiormq raises when a channel or its connection closes under an operation."""

ReturnReport = Callable[[Basic.Return, bytes], None]
"""Told each message the broker returns: the ``basic.return`` frame and the message's body."""


def broker_urls(url: str, *, heartbeat: int) -> list[URL]:
    """One aiormq URL per host of ``url``, in order; ``amqps://`` or ``?ssl=1`` means TLS.

    The vhost is the URL's path, URL-decoded (``/`` when empty, as ``%2F``).
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    tls = parts.scheme.lower() == "amqps" or query.pop("ssl", "").lower() in {"1", "true", "yes"}
    query["heartbeat"] = str(heartbeat)
    vhost = unquote(parts.path[1:]) or "/"
    urls = []
    for host in (parts.netloc or "localhost").split(","):
        userinfo, _, hostport = host.rpartition("@")
        user, _, password = userinfo.partition(":")
        location = urlsplit(f"//{hostport or 'localhost'}")
        urls.append(
            URL.build(
                scheme="amqps" if tls else "amqp",
                user=unquote(user) or None,
                password=unquote(password) or None,
                host=location.hostname or "localhost",
                port=location.port or (5671 if tls else 5672),
                path="/" if vhost == "/" else f"/{vhost}",
                query=query,
            )
        )
    return urls


def backoff(attempt: int, *, interval: float, step: float, maximum: float) -> float:
    """Seconds to wait after ``attempt`` failed rounds (0-based): oslo's linear backoff."""
    return min(interval + step * attempt, maximum)


class Connector:
    """One connection at a time to the first host of ``urls`` that answers, re-made when lost.

    :meth:`connection` waits for a live connection; the first call starts the task that keeps
    it, in ``tasks`` (its transport's group), which :meth:`close` ends.
    """

    def __init__(
        self,
        urls: Sequence[URL],
        *,
        tasks: TaskGroup,
        retry_interval: float,
        retry_backoff: float,
        maximum: float,
    ) -> None:
        self._tasks = tasks
        self._urls = list(urls)
        self._retry = {"interval": retry_interval, "step": retry_backoff, "maximum": maximum}
        # oslo's connection_name: "<program>:<pid>:<uuid4>", shown by rabbitmqctl.
        program = os.path.basename(sys.argv[0] or "python")
        self.name = f"{program}:{os.getpid()}:{uuid.uuid4()}"
        self._current: AbstractConnection | None = None
        self._live = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._closed = False

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after ``attempt`` (0-based) failed rounds of attempts."""
        return backoff(attempt, **self._retry)

    @property
    def connected(self) -> bool:
        """Whether a connection is up (as far as this process knows)."""
        return self._current is not None and not self._current.is_closed

    async def connection(self) -> AbstractConnection:
        """Return the live connection, waiting for one; raises :class:`TransportClosed`."""
        while True:
            if self._closed:
                raise TransportClosed("the AMQP connection of this transport is closed")
            if self._failure is not None:
                raise MessageDeliveryFailure(
                    f"the AMQP connection cannot be kept: {self._failure!r}"
                ) from self._failure
            current = self._current
            if current is not None and not current.is_closed:
                return current
            if current is not None:  # lost; the keeper is about to notice
                self._current = None
                self._live.clear()
            if self._keeper is None:
                self._keeper = self._tasks.create_task(self._keep(), name=f"amqp {self.name}")
            await self._live.wait()

    async def _keep(self) -> None:
        try:
            await self._keep_connected()
        except Exception as exc:
            # A bug, not a broker problem (those are retried): fail the waiters, not hang them.
            self._failure = exc
            self._live.set()
            raise

    async def _keep_connected(self) -> None:
        attempt = 0
        while True:
            connection = await self._connect()
            if connection is None:
                delay = self.retry_delay(attempt)
                attempt += 1
                LOG.error("No AMQP server is reachable; trying again in %g seconds", delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._current = connection
            self._live.set()
            closing = connection.closing
            await asyncio.wait([closing])
            if self._current is connection:
                self._current = None
                self._live.clear()
            reason = None if closing.cancelled() else closing.exception()
            LOG.warning("Lost the AMQP connection (%s); reconnecting", reason)
            await _unblock_writers(connection.write_queue)

    async def _connect(self) -> AbstractConnection | None:
        for url in self._urls:
            connection = aiormq.Connection(url, client_properties={"connection_name": self.name})
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    await connection.connect()
            except (OSError, AMQPError, TimeoutError) as exc:
                LOG.warning("AMQP server on %s:%s is unreachable: %r", url.host, url.port, exc)
                await connection.close()
                continue
            LOG.info("Connected to AMQP server on %s:%s", url.host, url.port)
            return connection
        return None

    async def close(self) -> None:
        """Stop reconnecting and close the connection; later use raises TransportClosed."""
        self._closed = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:  # a crash of it was logged by its group, and kept in _failure
            keeper.cancel()
            await asyncio.wait([keeper])
        connection, self._current = self._current, None
        self._live.set()  # waiters wake up and see the transport closed
        if connection is not None:
            await connection.close()
            await _unblock_writers(connection.write_queue)

    def __repr__(self) -> str:
        return f"Connector({', '.join(mask_url(str(url)) for url in self._urls)})"


async def _unblock_writers(queue: asyncio.Queue[ChannelFrame]) -> None:
    """Empty a dead connection's write queue so that tasks waiting to write to it go on.

    Nobody writes it to a socket any more; without this, a publish or an acknowledgement
    waiting for room would wait forever. What they write is lost with the connection.
    """
    while not queue.empty():
        while not queue.empty():
            queue.get_nowait()
        await asyncio.sleep(0)  # the writers woken up run, and may fill it again


async def _write(channel: aiormq.Channel, frames: list[typing.Any]) -> None:
    """Queue ``frames`` for the connection's writer, as one unit; raises if the channel closed."""
    if channel.is_closed:
        raise ChannelInvalidStateError(f"AMQP channel {channel.number} is closed")
    frame = ChannelFrame.marshall(channel_number=channel.number, frames=frames)
    queue = channel.write_queue
    if queue.full():
        await queue.put(frame)  # returns once queued; cancelled means not queued
    else:
        queue.put_nowait(frame)


def _report_returns(channel: aiormq.Channel, report: ReturnReport) -> None:
    """Hand messages the broker returns on ``channel`` to ``report``, and drop them.

    aiormq logs a returned message without its ``message_id`` as an error, body included, and
    drops it; this reads the message off the channel the same way and hands it to ``report``.
    """

    async def on_return(frame: Basic.Return) -> None:
        header = await channel._get_frame()  # noqa: SLF001 - see the module docstring
        if not isinstance(header, ContentHeader):
            raise TypeError(f"expected the returned message's header, got {header!r}")
        message = await channel._read_content(frame, header)  # noqa: SLF001
        report(frame, message.body)

    channel._on_return_frame = on_return  # type: ignore[method-assign]  # noqa: SLF001


def _declared_key(destination: Exchange | Queue | None) -> tuple[str, str] | None:
    if destination is None:
        return None
    if isinstance(destination, Exchange):
        return ("exchange", destination.name)
    return (destination.name, destination.routing_key)


def _frames(
    channel: aiormq.Channel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Basic.Properties,
    *,
    mandatory: bool,
) -> list[typing.Any]:
    size = channel.max_content_size
    return [
        Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
        ContentHeader(properties=properties, body_size=len(body)),
        *(ContentBody(body[start : start + size]) for start in range(0, len(body), size)),
    ]


class Publisher:
    """Publishes on a channel of its own, reopened (and exchanges declared again) when lost.

    With ``confirm``, :meth:`publish` returns once the broker confirmed the message, and raises
    :class:`MessageUndeliverable` for a mandatory one the broker returned (RabbitMQ sends the
    ``basic.return`` before the ``basic.ack`` of the same message). Without, it returns once the
    message is queued for the socket, and ``on_return`` receives returned mandatory messages.
    """

    def __init__(
        self, connector: Connector, *, confirm: bool, on_return: ReturnReport | None = None
    ) -> None:
        self._connector = connector
        self._confirm = confirm
        self._on_return = on_return
        # Confirmed mandatory publishes waiting for their confirmation: body -> whether the
        # broker returned it (request bodies are unique: each has its _unique_id). Only bodies
        # someone waits for are kept, so a late return of a cancelled publish keeps nothing.
        self._returns: dict[bytes, bool] = {}
        self._channel: aiormq.Channel | None = None
        self._opening = asyncio.Lock()
        # With confirms, delivery tags are counted in the order messages reach the writer.
        self._ordering = asyncio.Lock()
        # What was declared on the current channel's connection (None: the default exchange).
        self._declared: set[tuple[str, str] | None] = {None}

    async def publish(
        self,
        destination: Exchange | Queue | None,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        *,
        mandatory: bool = False,
    ) -> None:
        """Publish ``body`` to an exchange (None: the default one), declaring it first.

        A :class:`Queue` destination is published to its exchange, after declaring the queue
        and its binding too (once per channel). Waits through reconnections; raises
        :class:`MessageDeliveryFailure` when the broker refuses the message (nack) or keeps
        closing the channel under it.
        """
        exchange = destination.exchange if isinstance(destination, Queue) else destination
        name = exchange.name if exchange is not None else ""
        # A confirmed mandatory publish learns of its return before its confirmation.
        watch = self._confirm and mandatory
        try:
            await self._publish_until_taken(
                destination, name, routing_key, body, properties, mandatory=mandatory, watch=watch
            )
        finally:
            if watch:
                self._returns.pop(body, None)

    async def _publish_until_taken(
        self,
        destination: Exchange | Queue | None,
        name: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        *,
        mandatory: bool,
        watch: bool,
    ) -> None:
        """Publish, again after a lost connection or channel, until the broker has it."""
        failures = 0
        while True:
            try:
                channel = await self._open(destination)
                frames = _frames(channel, name, routing_key, body, properties, mandatory=mandatory)
                if self._confirm:
                    if watch:
                        self._returns[body] = False
                    await self._publish_confirmed(channel, frames)
                    if watch and self._returns[body]:
                        raise MessageUndeliverable(f"routing key {routing_key!r} ({name!r})")
                else:
                    await _write(channel, frames)
            except CHANNEL_ERRORS as exc:
                if not self._connector.connected:
                    LOG.info("Publishing to %r again after losing the connection", name)
                    continue
                failures += 1
                if failures >= _CHANNEL_ATTEMPTS:
                    raise MessageDeliveryFailure(
                        f"could not publish to exchange {name!r} with routing key "
                        f"{routing_key!r}: {exc!r}"
                    ) from exc
                LOG.info("Publishing to %r again after a channel error: %r", name, exc)
                continue
            return

    def _record_return(self, frame: Basic.Return, body: bytes) -> None:
        del frame  # the body says which publish it was
        if body in self._returns:
            self._returns[body] = True

    async def _publish_confirmed(self, channel: aiormq.Channel, frames: list[typing.Any]) -> None:
        async with self._ordering:
            tag = channel.delivery_tag + 1
            confirmation = channel.create_future()
            channel.confirmations[tag] = confirmation
            channel.delivery_tag = tag
            try:
                await _write(channel, frames)
            except BaseException:
                # Not written: give the tag back, as aiormq's basic_publish does.
                channel.delivery_tag = tag - 1
                channel.confirmations.pop(tag, None)
                confirmation.cancel()
                raise
        try:
            await confirmation
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # aiormq rejects pending confirmations with CancelledError when a channel closes.
            raise ChannelInvalidStateError(
                "the channel closed before the broker confirmed"
            ) from None
        except DeliveryError as exc:
            raise MessageDeliveryFailure(f"the broker refused the message: {exc.frame!r}") from exc

    async def _open(self, destination: Exchange | Queue | None) -> aiormq.Channel:
        channel = self._channel
        key = _declared_key(destination)
        if channel is not None and not channel.is_closed and key in self._declared:
            return channel
        async with self._opening:
            channel = self._channel
            if channel is None or channel.is_closed:
                connection = await self._connector.connection()
                channel = typing.cast(
                    "aiormq.Channel", await connection.channel(publisher_confirms=self._confirm)
                )
                if self._confirm:
                    _report_returns(channel, self._record_return)
                elif self._on_return is not None:
                    _report_returns(channel, self._on_return)
                # A new channel may be on a new connection, or follow a 404 for an exchange that
                # was deleted: declare again.
                self._declared = {None}
                self._channel = channel
            if destination is not None and key not in self._declared:
                await declare(channel.connection, [destination])
                self._declared.add(key)
            return channel

    async def close(self) -> None:
        """Close the channel (the connection stays)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()
