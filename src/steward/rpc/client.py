"""RPCClient: call a method on a remote server and wait for its result, or cast and go.

As oslo.messaging's ``RPCClient``: a client holds a transport and a :class:`Target`;
:meth:`RPCClient.prepare` returns a copy aimed elsewhere (a server, a version, a timeout);
:meth:`RPCClient.call` sends and waits for the reply, :meth:`RPCClient.cast` sends one way.

All calls on a transport share one reply address: each call registers a future under its message
id, and the reply consumer resolves it. There is no lock around calls; a reply that arrives after
its call timed out is logged and dropped, never handed to another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import typing

from opentelemetry.trace import SpanKind

from steward import config
from steward.context import RequestContext, get_current
from steward.errors import (
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingTimeout,
    RPCVersionCapError,
)
from steward.redact import shorten
from steward.rpc import wire
from steward.rpc.serializer import Serializer
from steward.rpc.target import Target, parse_version, version_is_compatible
from steward.rpc.transports.base import Transport
from steward.tracing import inject_trace_context, is_tracing_enabled, span

__all__ = ["RPCClient", "SyncRPCClient"]

LOG = logging.getLogger(__name__)

_UNSET: typing.Any = object()

SEND_ATTEMPT_SECONDS = 10.0
"""How long one send attempt may wait for the transport when ``retry`` counts attempts."""


class RPCClient:
    """Calls and casts to the servers of ``target``'s topic over ``transport``.

    ``timeout`` bounds each call (None: the ``rpc_response_timeout`` setting, read at call time);
    ``call_monitor_timeout`` (None: off) fails a call that hears nothing from its server for that
    many seconds: the server sends heartbeats while the method runs, so a call may wait a long
    ``timeout`` and still notice a dead server soon (oslo's option of that name);
    ``retry`` is how often a send the transport failed to hand over is tried again (None or -1:
    for ever, 0: never, N: N more times; see docs/rpc.md);
    ``transport_options`` is accepted for oslo's signature and not used;
    ``version_cap`` is the highest version this client may send (None: no cap);
    ``serializer`` converts arguments, results and the context (default :class:`Serializer`).
    ``allowed_remote_exmods`` lists modules whose exceptions are re-raised by class (None: the
    setting of that name). ``settings`` gives those defaults (None: the transport's
    :attr:`~steward.rpc.transports.base.Transport.settings`, read at call time).
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        *,
        timeout: float | None = None,
        version_cap: str | None = None,
        serializer: Serializer | None = None,
        allowed_remote_exmods: typing.Sequence[str] | None = None,
        settings: config.Settings | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: typing.Mapping[str, object] | None = None,
    ) -> None:
        if not isinstance(target, Target):
            raise InvalidTarget(f"`target` must be a Target, got {target!r}", target)
        if version_cap is not None:
            parse_version(version_cap)
        if timeout is not None and timeout <= 0:
            raise ValueError(f"`timeout` must be a number of seconds > 0, got {timeout!r}")
        if call_monitor_timeout is not None and not call_monitor_timeout > 0:
            raise ValueError(
                f"`call_monitor_timeout` must be a number of seconds > 0 or None, got "
                f"{call_monitor_timeout!r}"
            )
        if retry is not None and (isinstance(retry, bool) or retry < -1):
            raise ValueError(
                f"`retry` must be None or -1 (for ever), 0 (never) or a number of retries, "
                f"got {retry!r}"
            )
        self.transport = transport
        self.target = target
        self.timeout = timeout
        self.version_cap = version_cap
        self.serializer = serializer if serializer is not None else Serializer()
        self.allowed_remote_exmods = (
            tuple(allowed_remote_exmods) if allowed_remote_exmods is not None else None
        )
        self.settings = settings
        self.retry = None if retry == -1 else retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = dict(transport_options or {})

    def prepare(
        self,
        *,
        exchange: str | None = _UNSET,
        topic: str | None = _UNSET,
        namespace: str | None = _UNSET,
        version: str = _UNSET,
        server: str | None = _UNSET,
        fanout: bool = _UNSET,
        timeout: float | None = _UNSET,
        version_cap: str | None = _UNSET,
        retry: int | None = _UNSET,
        call_monitor_timeout: float | None = _UNSET,
        transport_options: typing.Mapping[str, object] | None = _UNSET,
    ) -> RPCClient:
        """Return a client like this one with the given target fields and options changed.

        The arguments are oslo's ``RPCClient.prepare``'s, with their meaning: the target's
        fields, then the client's options (see :class:`RPCClient`). One left out keeps this
        client's value; None sets None (``timeout=None``: the setting's default again).
        """
        changes = {
            name: value
            for name, value in (
                ("exchange", exchange),
                ("topic", topic),
                ("namespace", namespace),
                ("version", version),
                ("server", server),
                ("fanout", fanout),
            )
            if value is not _UNSET
        }

        def kept(value: typing.Any, current: typing.Any) -> typing.Any:  # noqa: ANN401
            return current if value is _UNSET else value

        return RPCClient(
            self.transport,
            self.target.replace(**changes),
            timeout=kept(timeout, self.timeout),
            version_cap=kept(version_cap, self.version_cap),
            serializer=self.serializer,
            allowed_remote_exmods=self.allowed_remote_exmods,
            settings=self.settings,
            retry=kept(retry, self.retry),
            call_monitor_timeout=kept(call_monitor_timeout, self.call_monitor_timeout),
            transport_options=kept(transport_options, self.transport_options),
        )

    def can_send_version(self, version: str | None = None) -> bool:
        """Return whether ``version`` (default: the target's) is within the version cap."""
        if self.version_cap is None:
            return True
        return version_is_compatible(self.version_cap, version or self.target.version)

    def _check(self, *, call: bool) -> None:
        target = self.target
        if not target.topic:
            raise InvalidTarget(f"a topic is required to send a message, got {target}", target)
        if call and target.fanout:
            raise InvalidTarget("a call cannot be fanned out; cast instead", target)
        if not self.can_send_version():
            assert self.version_cap is not None  # noqa: S101 - can_send_version is True otherwise
            raise RPCVersionCapError(target.version, self.version_cap)

    def _body(
        self,
        context: RequestContext | None,
        method: str,
        kwargs: dict[str, object],
        *,
        msg_id: str | None = None,
        reply_q: str | None = None,
    ) -> bytes:
        """Encode a request: arguments and context serialized, a call if ``msg_id`` is given."""
        serialize = self.serializer.serialize_entity
        inner = wire.request(
            method,
            {name: serialize(context, value) for name, value in kwargs.items()},
            self._context(context),
            namespace=self.target.namespace,
            version=self.target.version,
            msg_id=msg_id,
            reply_q=reply_q,
            call_monitor_timeout=self.call_monitor_timeout,
        )
        try:
            return wire.encode(inner, max_size=self.transport.max_message_size)
        except TypeError as exc:
            raise TypeError(f"arguments of {method!r} cannot be sent as JSON: {exc}") from exc

    async def call(
        self, context: RequestContext | None, method: str, /, **kwargs: object
    ) -> typing.Any:  # noqa: ANN401 - whatever the remote method returned, from JSON
        """Run ``method(context, **kwargs)`` on a server of the target and return its result.

        ``context`` None means the current context (:func:`steward.context.get_current`).
        Raises :class:`MessagingTimeout` when no reply comes within the timeout, the remote
        exception (see :class:`~steward.errors.RemoteError`), :class:`InvalidTarget`,
        :class:`RPCVersionCapError` or :class:`~steward.errors.MessageTooLarge`.
        """
        self._check(call=True)
        context = context if context is not None else get_current()
        timeout = self.timeout or self._settings().rpc_response_timeout
        with self._span(method, "call", SpanKind.CLIENT):
            reply = await self._call(context, method, kwargs, timeout)
        if reply.failure is not None:
            raise wire.deserialize_failure(reply.failure, self._allowed_modules())
        return self.serializer.deserialize_entity(context, reply.result)

    async def _call(
        self,
        context: RequestContext | None,
        method: str,
        kwargs: dict[str, object],
        seconds: float,
    ) -> wire.Reply:
        replies = self.transport.replies
        msg_id = wire.new_id()
        monitor = self.call_monitor_timeout
        sent = False
        try:
            # The timeout covers everything the call waits for: connecting to the broker (the
            # first use of a transport does), setting up the reply queue, sending, the reply.
            async with asyncio.timeout(seconds):
                reply_to = await replies.address()
                body = self._body(context, method, kwargs, msg_id=msg_id, reply_q=reply_to)
                call = replies.expect(msg_id)
                # The reply confirms the request, so the request needs no publisher confirm.
                await self._send(body, expiration=seconds, confirm=False, call_id=msg_id)
                sent = True
                try:
                    return await call.wait(call_monitor_timeout=monitor)
                except TimeoutError as exc:
                    # The watchdog's only: the overall timeout ends the scope around this one.
                    raise MessagingTimeout(
                        f"Timed out waiting for a reply to message ID {msg_id} ({method!r} on "
                        f"{self.target.topic}): neither a reply nor a heartbeat came within "
                        f"call_monitor_timeout={monitor:g} s ({call.heartbeats} heartbeats "
                        "before); the server died or stopped answering"
                    ) from exc
        except MessageUndeliverable:
            if not sent:
                raise  # send() knew at once, and said where
            # The transport learnt it later (the broker returned the request): say where.
            raise MessageUndeliverable(_destination(self.target)) from None
        except MessagingTimeout:
            raise
        except TimeoutError as exc:
            if not sent:
                raise MessagingTimeout(
                    f"Timed out after {seconds:g} s calling {method!r} on {self.target.topic}: "
                    f"the broker at {self.transport.url} could not be reached (is it running, "
                    "and is the transport URL right?)"
                ) from exc
            raise MessagingTimeout(
                f"Timed out waiting for a reply to message ID {msg_id} "
                f"({method!r} on {self.target.topic}, after {seconds:g} s: the call's timeout)"
            ) from exc
        finally:
            replies.forget(msg_id)

    async def _send(
        self,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool,
        call_id: str | None = None,
    ) -> None:
        """Send ``body`` to the target, again after a failure to hand it over, as ``retry`` says.

        oslo's ``retry``: None for ever, 0 never, N at most N more times. Only a failure to hand
        the message over is tried again (:class:`MessageDeliveryFailure`): not a message that no
        server listens for (:class:`MessageUndeliverable`), nor a closed transport. Between
        attempts it waits as the transport reconnects: ``rabbit_retry_interval``, plus
        ``rabbit_retry_backoff`` per attempt, at most ``rabbit_interval_max`` seconds.
        """
        failures = 0
        while True:
            try:
                await self._send_once(body, expiration=expiration, confirm=confirm, call_id=call_id)
            except MessageUndeliverable:
                raise
            except MessageDeliveryFailure as exc:
                if self.retry is not None and failures >= self.retry:
                    raise
                rabbit = self._settings().rabbit
                delay = min(
                    rabbit.retry_interval + rabbit.retry_backoff * failures, rabbit.interval_max
                )
                failures += 1
                LOG.warning(
                    "Could not send to %s (%s); trying again in %g s (retry %d of %s)",
                    _destination(self.target),
                    exc,
                    delay,
                    failures,
                    "unlimited" if self.retry is None else self.retry,
                )
                await asyncio.sleep(delay)
                continue
            return

    async def _send_once(
        self, body: bytes, *, expiration: float | None, confirm: bool, call_id: str | None
    ) -> None:
        """One attempt. With a ``retry`` count, an attempt the transport cannot finish (it waits
        for a broker that is away) fails after SEND_ATTEMPT_SECONDS, as oslo's does: ``retry=0``
        never waits for a reconnection. With ``retry`` None the transport waits as it must.
        """  # noqa: D205 - a summary and its condition
        send = self.transport.send(
            self.target, body, expiration=expiration, confirm=confirm, call_id=call_id
        )
        if self.retry is None:
            await send
            return
        try:
            async with asyncio.timeout(SEND_ATTEMPT_SECONDS):
                await send
        except TimeoutError:
            raise MessageDeliveryFailure(
                f"could not hand a message for {_destination(self.target)} to "
                f"{self.transport.url} within {SEND_ATTEMPT_SECONDS:g} s (is the broker up?)"
            ) from None

    def _context(self, context: RequestContext | None) -> dict[str, typing.Any]:
        values = self.serializer.serialize_context(context)
        inject_trace_context(values)
        return values

    def _span(self, method: str, operation: str, kind: SpanKind) -> typing.ContextManager[object]:
        if not is_tracing_enabled():  # no name or attributes to build on the hot path
            return contextlib.nullcontext()
        method = shorten(method)
        attributes = {
            "rpc.system": "steward",
            "rpc.method": method,
            "messaging.destination.name": str(self.target.topic),
            "steward.server": self.target.server or "",
        }
        return span(f"{self.target.topic}.{method} {operation}", kind=kind, attributes=attributes)

    async def cast(self, context: RequestContext | None, method: str, /, **kwargs: object) -> None:
        """Send ``method(context, **kwargs)`` to the target and return once it is handed over.

        With ``fanout=True`` every server of the topic gets it. Nothing comes back: neither the
        result nor an exception.
        """
        self._check(call=False)
        context = context if context is not None else get_current()
        with self._span(method, "cast", SpanKind.PRODUCER):
            body = self._body(context, method, kwargs)
            await self._send(body, confirm=True)

    def _allowed_modules(self) -> typing.Sequence[str]:
        if self.allowed_remote_exmods is not None:
            return self.allowed_remote_exmods
        return self._settings().allowed_remote_exmods

    def _settings(self) -> config.Settings:
        return self.settings if self.settings is not None else self.transport.settings

    def __repr__(self) -> str:
        return f"RPCClient({self.transport!r}, {self.target})"


class SyncRPCClient:
    """A blocking facade over an :class:`RPCClient`, for code running in other threads.

    A plain ``def`` manager method runs in an executor thread; to call another service it uses
    ``SyncRPCClient(client)`` (built on the loop, or given ``loop``) and calls
    :meth:`call` / :meth:`cast`, which run on the client's loop and block the calling thread
    until they finish. Calling them on the loop's own thread would deadlock, so it raises
    ``RuntimeError`` instead.
    """

    def __init__(self, client: RPCClient, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.client = client
        self.loop = loop if loop is not None else asyncio.get_running_loop()

    def _run(self, coroutine: typing.Coroutine[object, object, typing.Any]) -> typing.Any:  # noqa: ANN401
        if self.loop.is_running() and _on_loop_thread(self.loop):
            coroutine.close()
            raise RuntimeError(
                "SyncRPCClient blocks its thread and cannot be used on the event loop's thread; "
                "await RPCClient.call() there instead"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def prepare(self, **changes: typing.Any) -> SyncRPCClient:  # noqa: ANN401
        """Return a facade over ``client.prepare(**changes)``."""
        return SyncRPCClient(self.client.prepare(**changes), loop=self.loop)

    def call(self, context: RequestContext | None, method: str, /, **kwargs: object) -> typing.Any:  # noqa: ANN401
        """Block until :meth:`RPCClient.call` returns, and return its result."""
        return self._run(self.client.call(context, method, **kwargs))

    def cast(self, context: RequestContext | None, method: str, /, **kwargs: object) -> None:
        """Block until :meth:`RPCClient.cast` has handed the message over."""
        self._run(self.client.cast(context, method, **kwargs))


def _destination(target: Target) -> str:
    where = f"{target.topic}.{target.server}" if target.server else target.topic
    return f"{where!r} (exchange {target.exchange!r})" if target.exchange else repr(where)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
