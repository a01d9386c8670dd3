"""The nats transport's URL, subject names and connection, on nats-py.

Private to :mod:`steward.rpc.transports.nats`, split from it because these are the parts that know
nats-py and NATS's naming rules, kept in one place:

* :func:`parse_url` reads ``nats://[user:pass@]host[:port][,...][/namespace][?option=value...]``;
* :class:`Subjects` names every subject, queue group, stream and consumer. Each name part from a
  target (exchange, topic, server, priority, pool) becomes exactly one subject token: characters
  other than ``A-Z a-z 0-9 _ -`` are percent-encoded (``host1.example.com`` becomes
  ``host1%2Eexample%2Ecom``), so a dot in a host name never adds a token and no two targets
  share a subject (oslo's RabbitMQ routing keys ``topic.server`` can collide; these cannot);
* :class:`Connection` keeps one nats-py client: connected on first use (trying until a server
  answers, as nats-py does), reconnected by nats-py for ever, ``nats_reconnect_wait`` seconds
  apart, with its subscriptions; it also creates the JetStream stream and consumers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import ssl
import sys
import typing
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from nats.aio.client import Client
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from steward._aio import TaskGroup
from steward.config import mask_url
from steward.errors import MessageDeliveryFailure, TransportClosed

if typing.TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from steward.config import Settings
    from steward.rpc.target import Target

__all__ = ["Connection", "NatsURL", "Subjects", "parse_url", "stream_subjects", "token"]

LOG = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "steward"
_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_QUERY_OPTIONS = ("jetstream", "ca_file", "cert_file", "key_file", "creds")
# nats-py gives up a connection attempt to one server after this many seconds.
_CONNECT_TIMEOUT = 5


@dataclasses.dataclass(frozen=True, slots=True)
class NatsURL:
    """What a ``nats://`` URL says; ``jetstream`` None means "as the setting says"."""

    servers: tuple[str, ...]
    namespace: str
    jetstream: bool | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    creds: str | None = None

    def tls(self) -> ssl.SSLContext | None:
        """Return the TLS context the URL's files ask for (None: nats-py's default)."""
        if self.ca_file is None and self.cert_file is None:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def parse_url(url: str) -> NatsURL:
    """Read a ``nats://`` URL; raises ``ValueError`` saying what is wrong with it.

    Hosts are comma-separated, each with its own optional ``user:password@`` or ``token@`` (as
    nats-py reads them); the path names the namespace (default ``steward``); the query may say
    ``jetstream=true|false``, ``ca_file``, ``cert_file``, ``key_file`` (TLS, used when the server
    requires it) and ``creds`` (a NATS ``.creds`` file: JWT and NKey).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "nats":
        raise ValueError(f"expected a nats:// URL, got scheme {parts.scheme!r}")
    servers = []
    for host in (parts.netloc or "127.0.0.1:4222").split(","):
        location = urlsplit(f"//{host.strip()}")
        if not location.hostname:
            raise ValueError(f"each comma-separated server needs a host, got {host!r}")
        location.port  # noqa: B018 - raises ValueError for a port that is not a number
        servers.append(f"nats://{host.strip()}")
    namespace = parts.path.strip("/") or DEFAULT_NAMESPACE
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"the path names the namespace: 1-64 characters of A-Z a-z 0-9 _ -, got {namespace!r}"
        )
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_OPTIONS:
            raise ValueError(f"unknown option {key!r}; known: {', '.join(_QUERY_OPTIONS)}")
        options[key] = value
    jetstream = options.pop("jetstream", None)
    if jetstream is not None and jetstream.lower() not in _TRUE | _FALSE:
        raise ValueError(f"jetstream= takes true or false, got {jetstream!r}")
    return NatsURL(
        servers=tuple(servers),
        namespace=namespace,
        jetstream=None if jetstream is None else jetstream.lower() in _TRUE,
        **options,
    )


def stream_subjects(namespace: str) -> list[str]:
    """Return the subjects stream ``namespace`` keeps: casts and notifications, not calls."""
    return [f"{namespace}.cast.>", f"{namespace}.notify.>"]


def token(text: str) -> str:
    """``text`` as one subject token (and name part): unsafe characters percent-encoded."""
    if not text:
        raise ValueError("a subject part cannot be empty")
    return _UNSAFE.sub(lambda m: "".join(f"%{byte:02X}" for byte in m[0].encode()), text)


class Subjects:
    """Every name the transport uses, under ``namespace`` (``ns`` below).

    ``ns.call.<exchange>.<topic>[.<server>]``: what ``send(confirm=False)`` (a call) publishes,
    consumed by the topic's servers in queue group ``servers``; ``ns.cast.<exchange>.<topic>
    [.<server>]``: ``send(confirm=True)`` (a cast), the same on core NATS, a JetStream consumer
    of stream ``ns`` otherwise; ``ns.fanout.<exchange>.<topic>``: every server's own
    subscription; ``ns.notify.<exchange>.<topic>.<priority>``: notifications;
    ``ns.reply.<id>``: one transport's replies. The exchange is the target's, or
    ``control_exchange``.
    """

    def __init__(self, namespace: str, exchange: str) -> None:
        self.namespace = namespace
        self._exchange = exchange
        self._reply = re.compile(rf"{re.escape(namespace)}\.reply\.[A-Za-z0-9]+")

    def _prefix(self, kind: str, target: Target) -> str:
        if not target.topic:
            raise ValueError(f"a message goes to a topic, got {target}")
        exchange = token(target.exchange or self._exchange)
        return f"{self.namespace}.{kind}.{exchange}.{token(target.topic)}"

    def destination(self, kind: str, target: Target) -> str:
        """Where ``send`` publishes: ``kind`` is ``call`` or ``cast``; fanout is its own kind."""
        if target.fanout:
            return self._prefix("fanout", target)
        subject = self._prefix(kind, target)
        return f"{subject}.{token(target.server)}" if target.server else subject

    def server(self, kind: str, target: Target) -> tuple[str, str]:
        """Return the topic's and the server's subjects of ``kind`` that a server consumes."""
        subject = self._prefix(kind, target)
        return subject, f"{subject}.{token(str(target.server))}"

    def fanout(self, target: Target) -> str:
        """Return the subject every server of the topic subscribes to on its own."""
        return self._prefix("fanout", target)

    def notification(self, target: Target, priority: str) -> str:
        """Return the subject of ``priority`` notifications on ``target``'s topic."""
        return f"{self._prefix('notify', target)}.{token(priority)}"

    def reply(self) -> str:
        """Return a new reply subject."""
        return f"{self.namespace}.reply.{uuid.uuid4().hex}"

    def is_reply(self, subject: str) -> bool:
        """Whether ``subject`` is a reply subject of this namespace (and nothing else)."""
        return self._reply.fullmatch(subject) is not None

    def consumer(self, subject: str, *, pool: str | None = None) -> str:
        """Return the name of ``subject``'s durable JetStream consumer (or ``pool``'s)."""
        name = subject.split(".", 1)[1].replace(".", ":")  # tokens never hold a raw ':'
        return name if pool is None else f"pool:{token(pool)}:{name}"


class Connection:
    """One nats-py client for a transport; see the module docstring.

    :meth:`client` returns it connected, connecting on first use; callbacks registered with
    :meth:`on_reconnect` run each time nats-py has reconnected and restored the subscriptions.
    """

    def __init__(self, url: NatsURL, display: str, settings: Settings, tasks: TaskGroup) -> None:
        self.url = url
        self._tasks = tasks
        self._display = display
        self._settings = settings
        program = os.path.basename(sys.argv[0] or "python")
        self.name = f"{program}:{os.getpid()}:{uuid.uuid4()}"
        self._client: Client | None = None
        self._connecting: asyncio.Task[Client | Exception] | None = None
        self._up = asyncio.Event()
        self._stream_ready = False
        self._consumers_seen: set[str] = set()
        self._reconnect_callbacks: set[Callable[[], None]] = set()
        self._closed = False

    @property
    def connected(self) -> bool:
        """Whether the client is connected now (not connecting, reconnecting or closed)."""
        return self._client is not None and self._client.is_connected

    @property
    def max_payload(self) -> int | None:
        """The server's ``max_payload``, once connected."""
        return self._client.max_payload if self._client is not None else None

    def on_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after each reconnection; returns a function that unregisters it."""
        self._reconnect_callbacks.add(callback)
        return lambda: self._reconnect_callbacks.discard(callback)

    async def client(self) -> Client:
        """Return the client, waiting for the first connection; raises TransportClosed."""
        if self._closed:
            raise TransportClosed(f"transport {self._display} is closed")
        if self._client is not None:
            return self._client
        if self._connecting is None:
            self._connecting = self._tasks.create_task(self._attempt(), name=f"connect {self.name}")
        connecting = self._connecting
        await asyncio.wait([connecting])  # a cancelled waiter leaves the attempt running
        if connecting.cancelled():
            raise TransportClosed(f"transport {self._display} was closed while connecting")
        outcome = connecting.result()
        if isinstance(outcome, Exception):
            self._connecting = None  # the next use tries again
            raise MessageDeliveryFailure(
                f"cannot connect to {self._display}: {outcome!r}"
            ) from outcome
        return outcome

    async def _attempt(self) -> Client | Exception:
        """Connect; a server that cannot be reached is an outcome for the waiters, not a crash."""
        try:
            return await self._connect()
        except Exception as exc:  # noqa: BLE001 - handed to every waiter of client()
            return exc

    async def _connect(self) -> Client:
        client = Client()
        try:
            await client.connect(
                list(self.url.servers),
                name=self.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # for ever: a service outlives a broker restart
                reconnect_time_wait=self._settings.nats.reconnect_wait,  # type: ignore[arg-type]
                connect_timeout=_CONNECT_TIMEOUT,
                tls=self.url.tls(),
                user_credentials=self.url.creds,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except BaseException:
            await client.close()
            raise
        LOG.info("Connected to NATS server %s as %s", _where(client), self.name)
        self._client = client
        self._up.set()
        return client

    async def wait_connected(self) -> None:
        """Wait until the client is connected (again)."""
        await self.client()
        await self._up.wait()
        if self._closed:
            raise TransportClosed(f"transport {self._display} is closed")

    async def _on_error(self, error: Exception) -> None:
        # nats-py reports here what it retries by itself: a server that does not answer, a slow
        # consumer. Never an ERROR line: nothing is lost that the protocol promised to keep.
        LOG.warning("NATS (%s): %r", self._display, error)

    async def _on_disconnected(self) -> None:
        self._up.clear()
        if not self._closed:
            LOG.warning("Lost the connection to NATS (%s); reconnecting", self._display)

    async def _on_reconnected(self) -> None:
        LOG.info("Reconnected to NATS server %s", _where(self._client))
        self._consumers_seen.clear()
        self._up.set()
        for callback in list(self._reconnect_callbacks):
            callback()

    async def jetstream(self) -> JetStreamContext:
        """Return a JetStream context, creating the stream first if it does not exist."""
        js = (await self.client()).jetstream()
        if not self._stream_ready:
            await self._ensure_stream(js)
            self._stream_ready = True
        return js

    def stream_lost(self) -> None:
        """Note that the stream is missing (deleted, or lost with a memory-only server)."""
        self._stream_ready = False
        self._consumers_seen.clear()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        name, subjects = self.url.namespace, stream_subjects(self.url.namespace)
        settings = self._settings
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=subjects,
                    retention=RetentionPolicy.INTEREST,
                    storage=StorageType(settings.nats.stream_storage),
                    num_replicas=settings.nats.stream_replicas,
                    max_age=settings.nats.stream_max_age or None,
                )
            )
            LOG.info("Created JetStream stream %s", name)
            return
        config = info.config
        if config.retention != RetentionPolicy.INTEREST or not set(subjects) <= set(
            config.subjects or ()
        ):
            raise MessageDeliveryFailure(
                f"JetStream stream {name!r} exists with retention {config.retention} and "
                f"subjects {config.subjects}; steward needs interest retention on {subjects}: "
                "delete the stream or use another namespace"
            )

    async def ensure_consumer(
        self, subject: str, name: str, *, ack_wait: float
    ) -> JetStreamContext:
        """Create (or update) durable pull consumer ``name`` of ``subject``; return the context.

        It starts with messages published from now on, as a new queue would; it has no bound
        of its own on unacknowledged messages: each listener bounds what it pulls (prefetch).
        """
        js = await self.jetstream()
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            max_ack_pending=-1,
        )
        try:
            await js.add_consumer(self.url.namespace, config)
        except NotFoundError:  # the stream went away since we made it
            self.stream_lost()
            js = await self.jetstream()
            await js.add_consumer(self.url.namespace, config)
        return js

    async def has_consumer(self, name: str) -> bool:
        """Return whether durable consumer ``name`` exists on the stream.

        A consumer found is remembered until the stream is lost or the connection is made
        again (a server restarted without its JetStream store forgets consumers too).
        """
        if name in self._consumers_seen:
            return True
        js = await self.jetstream()
        try:
            await js.consumer_info(self.url.namespace, name)
        except NotFoundError:
            return False
        self._consumers_seen.add(name)
        return True

    async def close(self) -> None:
        """Close the client; waiters and later use raise :class:`TransportClosed`."""
        self._closed = True
        self._up.set()
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            await asyncio.wait([connecting])
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def __repr__(self) -> str:
        return f"Connection({', '.join(mask_url(server) for server in self.url.servers)})"


def _where(client: Client | None) -> str:
    url = client.connected_url if client is not None else None
    return f"{url.hostname}:{url.port}" if url is not None else "?"
