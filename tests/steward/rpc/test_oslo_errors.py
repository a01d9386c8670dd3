"""Errors cross between steward and the real oslo.messaging as the other side expects, both ways.

Each test runs an unmodified oslo.messaging server and a steward server with the same endpoint
behaviour on the real RabbitMQ, and asserts that a caller gets the same from either: an oslo
caller what an oslo server would give it, a steward caller steward's classes. oslo runs as in
``test_oslo_compat.py``: its threading executor on the global ``cfg.CONF``, blocking calls in
threads.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from oslo_config import cfg

from steward.context import RequestContext
from steward.errors import (
    InvalidArguments,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    UnsupportedVersion,
)
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import Transport

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging
    from oslo_messaging.rpc import dispatcher as oslo_dispatcher

GUARD = 30.0
TIMEOUT_MESSAGE = "Timed out waiting for a reply to message ID 0123 (from a call this method made)"
OSLO_EXMODS = ["oslo_messaging.rpc.dispatcher", "oslo_messaging.exceptions"]
# oslo's client appends the remote traceback to a re-created exception's message.
OSLO_TRACEBACK = "\nTraceback (most recent call last):"

Peer = str  # "oslo" or "steward": which kind of server answers


# --- the same endpoint, on each side --------------------------------------------------------------


class StewardEndpoint:
    target = Target(version="1.3")

    async def whoami(self, context: RequestContext, value: object = None) -> object:
        return {"server": "steward", "value": value}

    def fail_builtin(self, context: RequestContext) -> None:
        raise ValueError("bad value: zzz")

    async def time_out(self, context: RequestContext) -> None:
        raise MessagingTimeout(TIMEOUT_MESSAGE)

    def fail_expected(self, context: RequestContext) -> None:
        error = KeyError("k1")
        error.rpc_expected = True  # type: ignore[attr-defined]
        raise error


class OsloEndpoint:
    target = oslo_messaging.Target(version="1.3")

    def whoami(self, ctxt: dict[str, Any], value: object = None) -> object:
        return {"server": "oslo", "value": value}

    def fail_builtin(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("bad value: zzz")

    def time_out(self, ctxt: dict[str, Any]) -> None:
        raise oslo_messaging.MessagingTimeout(TIMEOUT_MESSAGE)

    @oslo_messaging.expected_exceptions(KeyError)  # type: ignore[untyped-decorator] # oslo: untyped
    def fail_expected(self, ctxt: dict[str, Any]) -> None:
        raise KeyError("k1")


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def topics() -> dict[Peer, str]:
    """A topic per kind of server, both fresh."""
    unique = uuid.uuid4().hex[:12]
    return {"oslo": f"errors_oslo_{unique}", "steward": f"errors_steward_{unique}"}


async def oslo_transport_for(url: str, exmods: list[str]) -> Any:
    return await asyncio.to_thread(
        oslo_messaging.get_rpc_transport,
        cfg.CONF,
        url=url.replace("amqp://", "rabbit://", 1),
        allowed_remote_exmods=exmods,
    )


@pytest.fixture
async def oslo_transports(rabbit_url: str) -> AsyncIterator[dict[str, Any]]:
    """oslo transports: one allowing oslo's dispatcher and exceptions modules, one nothing."""
    transports = {
        "allowing": await oslo_transport_for(rabbit_url, OSLO_EXMODS),
        "bare": await oslo_transport_for(rabbit_url, []),
    }
    yield transports
    for transport in transports.values():
        await asyncio.to_thread(transport.cleanup)


@pytest.fixture
async def transport(rabbit_url: str) -> AsyncIterator[Transport]:
    transport = get_transport(rabbit_url)
    yield transport
    await transport.close()


@pytest.fixture
async def servers(
    transport: Transport, oslo_transports: dict[str, Any], topics: dict[Peer, str]
) -> AsyncIterator[None]:
    """An oslo server on ``topics["oslo"]`` and a steward server on ``topics["steward"]``."""
    target = oslo_messaging.Target(topic=topics["oslo"], server="o1")
    oslo_server = oslo_messaging.get_rpc_server(oslo_transports["bare"], target, [OsloEndpoint()])
    assert oslo_server.executor_type == "threading"
    steward_server = RPCServer(transport, Target(topics["steward"], "s1"), [StewardEndpoint()])
    await asyncio.to_thread(oslo_server.start)
    await steward_server.start()
    yield
    await steward_server.stop()
    await steward_server.wait(grace_period=5)
    await asyncio.to_thread(oslo_server.stop)
    await asyncio.to_thread(oslo_server.wait)


@pytest.fixture
def steward_context() -> RequestContext:
    return RequestContext(user_id="u1", project_id="p1", request_id="req-errors")


OsloCall = Callable[..., Any]


@pytest.fixture
def oslo_call(oslo_transports: dict[str, Any], topics: dict[Peer, str]) -> OsloCall:
    """Call ``method`` on a peer's topic from an oslo client; return what it raised or returned."""

    async def call(
        peer: Peer,
        method: str,
        *,
        exmods: str = "allowing",
        version: str | None = None,
        **kwargs: object,
    ) -> Any:
        target = oslo_messaging.Target(topic=topics[peer])
        client = oslo_messaging.get_rpc_client(oslo_transports[exmods], target)
        prepared = client.prepare(timeout=GUARD, version=version)
        try:
            return await asyncio.to_thread(prepared.call, {"user": "u2"}, method, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
            return exc

    return call


async def steward_call(
    transport: Transport,
    topic: str,
    context: RequestContext,
    method: str,
    *,
    version: str | None = None,
    **kwargs: object,
) -> Any:
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    prepared = client.prepare(version=version) if version else client
    try:
        return await prepared.call(context, method, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
        return exc


def as_oslo_sees_it(exc: BaseException) -> tuple[str, str, tuple[object, ...], str]:
    """Return what an oslo caller reads of an exception: its class, module, args and message.

    oslo's client appends the remote traceback to the message: to the string of a class it can
    subclass, to the first argument of a builtin (whose class it cannot replace). Both are cut
    off here, so that the same failure from two servers reads the same.
    """
    cls = type(exc)
    args = tuple(arg.split(OSLO_TRACEBACK)[0] if isinstance(arg, str) else arg for arg in exc.args)
    if cls.__name__.endswith("_Remote"):  # oslo's client made a subclass to carry the message
        cls = cls.__mro__[1]
        message = str(exc).split(OSLO_TRACEBACK)[0]
    else:
        message = str(args[0])
    return cls.__module__, cls.__qualname__, args, message


def as_steward_sees_it(exc: BaseException) -> tuple[type[BaseException], str, tuple[object, ...]]:
    return type(exc), str(exc), exc.args


# --- oslo client -> steward server: what an oslo server would give -------------------------------


@pytest.mark.usefixtures("servers")
async def test_oslo_client_gets_its_own_dispatch_errors_from_steward_as_from_oslo(
    oslo_call: OsloCall,
) -> None:
    cases = [("nope", {}), ("whoami", {"version": "2.0"}), ("whoami", {"version": "1.7"})]
    for method, options in cases:
        from_oslo = await oslo_call("oslo", method, **options)
        from_steward = await oslo_call("steward", method, **options)
        assert isinstance(from_oslo, oslo_dispatcher.RPCDispatcherError)
        assert as_oslo_sees_it(from_steward) == as_oslo_sees_it(from_oslo)
        # The args oslo re-creates its class with, so its fields come out as from an oslo server.
        assert vars(from_steward) == vars(from_oslo)
    no_method = await oslo_call("steward", "nope")
    assert isinstance(no_method, oslo_dispatcher.NoSuchMethod)
    assert str(no_method).startswith("Endpoint does not support RPC method nope\n")
    unsupported = await oslo_call("steward", "whoami", version="2.0")
    assert isinstance(unsupported, oslo_dispatcher.UnsupportedVersion)
    assert str(unsupported).startswith(
        "Endpoint does not support RPC version 2.0. Attempted method: whoami\n"
    )


@pytest.mark.usefixtures("servers")
async def test_oslo_client_that_allows_nothing_gets_the_same_remote_error_from_either(
    oslo_call: OsloCall,
) -> None:
    for method, options in [("nope", {}), ("whoami", {"version": "2.0"}), ("time_out", {})]:
        from_oslo = await oslo_call("oslo", method, exmods="bare", **options)
        from_steward = await oslo_call("steward", method, exmods="bare", **options)
        assert type(from_steward) is type(from_oslo) is oslo_messaging.RemoteError
        assert (from_steward.exc_type, from_steward.value) == (from_oslo.exc_type, from_oslo.value)


@pytest.mark.usefixtures("servers")
async def test_oslo_client_falls_back_on_unsupported_version_against_either_server(
    oslo_call: OsloCall,
) -> None:
    async def whoami(peer: Peer) -> Any:
        newer = await oslo_call(peer, "whoami", version="2.0", value="new")
        if isinstance(newer, oslo_dispatcher.UnsupportedVersion):
            return await oslo_call(peer, "whoami", version="1.0", value="old")
        return newer

    assert await whoami("oslo") == {"server": "oslo", "value": "old"}
    assert await whoami("steward") == {"server": "steward", "value": "old"}


@pytest.mark.usefixtures("servers")
async def test_oslo_client_gets_a_type_error_for_an_unexpected_argument(
    oslo_call: OsloCall,
) -> None:
    from_oslo = await oslo_call("oslo", "whoami", bogus=1)
    from_steward = await oslo_call("steward", "whoami", bogus=1)
    assert type(from_oslo) is type(from_steward) is TypeError  # builtins: re-created by any client
    python_message = "OsloEndpoint.whoami() got an unexpected keyword argument 'bogus'"
    assert as_oslo_sees_it(from_oslo)[3] == python_message
    # steward's message, intact, where Python's would be.
    assert as_oslo_sees_it(from_steward) == (
        "builtins",
        "TypeError",
        ("whoami(): unexpected argument `bogus`",),
        "whoami(): unexpected argument `bogus`",
    )
    assert from_steward.args[0].startswith("whoami(): unexpected argument `bogus`" + OSLO_TRACEBACK)


@pytest.mark.usefixtures("servers")
async def test_oslo_client_reads_the_same_messages_from_either_server(
    oslo_call: OsloCall,
) -> None:
    for method in ("fail_builtin", "time_out", "fail_expected"):
        from_oslo = await oslo_call("oslo", method)
        from_steward = await oslo_call("steward", method)
        assert as_oslo_sees_it(from_steward) == as_oslo_sees_it(from_oslo), method
    timeout = await oslo_call("steward", "time_out")
    assert isinstance(timeout, oslo_messaging.MessagingTimeout)
    assert as_oslo_sees_it(timeout)[3] == TIMEOUT_MESSAGE


# --- steward client -> oslo server: steward's classes, as from a steward server ------------------


@pytest.mark.usefixtures("servers")
async def test_steward_client_gets_steward_dispatch_errors_from_oslo_as_from_steward(
    transport: Transport, topics: dict[Peer, str], steward_context: RequestContext
) -> None:
    async def call(peer: Peer, method: str, **options: Any) -> Any:
        return await steward_call(transport, topics[peer], steward_context, method, **options)

    cases: list[tuple[str, dict[str, Any], type[Exception]]] = [
        ("nope", {}, NoSuchMethod),
        ("whoami", {"version": "2.0"}, UnsupportedVersion),
        ("whoami", {"version": "1.7"}, UnsupportedVersion),
        ("time_out", {}, MessagingTimeout),
        ("fail_builtin", {}, ValueError),
        ("fail_expected", {}, KeyError),  # oslo sends the exception @expected_exceptions wraps
    ]
    for method, options, expected in cases:
        from_oslo = await call("oslo", method, **options)
        from_steward = await call("steward", method, **options)
        assert type(from_oslo) is expected, (method, from_oslo)
        assert as_steward_sees_it(from_oslo) == as_steward_sees_it(from_steward)
        # The oslo server's traceback comes along as a note.
        assert "oslo_messaging" in from_oslo.__notes__[0]
    unsupported = await call("oslo", "whoami", version="2.0")
    assert (unsupported.version, unsupported.method) == ("2.0", "whoami")
    assert (await call("oslo", "nope")).method == "nope"


@pytest.mark.usefixtures("servers")
async def test_steward_client_falls_back_on_unsupported_version_against_either_server(
    transport: Transport, topics: dict[Peer, str], steward_context: RequestContext
) -> None:
    async def whoami(peer: Peer) -> Any:
        client = RPCClient(transport, Target(topics[peer]), timeout=GUARD)
        try:
            return await client.prepare(version="2.0").call(steward_context, "whoami", value="new")
        except UnsupportedVersion:
            return await client.prepare(version="1.0").call(steward_context, "whoami", value="old")

    assert await whoami("oslo") == {"server": "oslo", "value": "old"}
    assert await whoami("steward") == {"server": "steward", "value": "old"}


@pytest.mark.usefixtures("servers")
async def test_steward_client_gets_invalid_arguments_from_steward_and_type_error_from_oslo(
    transport: Transport, topics: dict[Peer, str], steward_context: RequestContext
) -> None:
    from_steward = await steward_call(
        transport, topics["steward"], steward_context, "whoami", bogus=1
    )
    assert type(from_steward) is InvalidArguments
    assert str(from_steward) == "whoami(): unexpected argument `bogus`"
    from_oslo = await steward_call(transport, topics["oslo"], steward_context, "whoami", bogus=1)
    assert type(from_oslo) is TypeError  # Python's, from the oslo server: no steward class
    assert str(from_oslo) == "OsloEndpoint.whoami() got an unexpected keyword argument 'bogus'"
    assert not isinstance(from_oslo, RemoteError)
