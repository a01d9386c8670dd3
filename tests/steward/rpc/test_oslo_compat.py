"""Wire compatibility with the real oslo.messaging on the same RabbitMQ, both directions.

oslo.messaging runs unmodified, with its threading executor, on the global ``cfg.CONF`` (18.x
registers its tracing options only there, oslo-wire.md §7); its blocking calls run in threads
(``asyncio.to_thread``) while steward's run on the loop.
"""

from __future__ import annotations

import asyncio
import configparser
import math
import queue
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

from steward.context import RequestContext
from steward.errors import ConfigError, NoSuchMethod, RemoteError
from steward.notify import NotificationListener, Notifier
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import Transport

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging

GUARD = 30.0
CONTEXT_FIELDS = ("user_id", "project_id", "request_id", "roles", "is_admin", "auth_token")


class Unlisted(Exception):
    """An exception whose module is in nobody's allowed_remote_exmods."""


# --- steward side ---------------------------------------------------------------------------------


class StewardEndpoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: asyncio.Queue[object] = asyncio.Queue()

    async def whoami(self, context: RequestContext, value: object = None) -> dict[str, Any]:
        fields = {field: getattr(context, field) for field in CONTEXT_FIELDS}
        return {"server": self.name, "value": value, "context": fields}

    async def note(self, context: RequestContext, value: object = None) -> None:
        self.notes.put_nowait(value)

    def fail_builtin(self, context: RequestContext) -> None:
        raise ValueError("bad value: zzz")

    def fail_allowed(self, context: RequestContext) -> None:
        raise ConfigError("option `x` is wrong")

    def fail_unlisted(self, context: RequestContext) -> None:
        raise Unlisted("not for you")

    async def next_note(self) -> object:
        async with asyncio.timeout(GUARD):
            return await self.notes.get()


# --- oslo side ------------------------------------------------------------------------------------


class OsloEndpoint:
    """An oslo.messaging endpoint: runs in oslo's executor threads, context as a dict."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: queue.Queue[object] = queue.Queue()

    def whoami(self, ctxt: dict[str, Any], value: object = None) -> dict[str, Any]:
        context = oslo_context.RequestContext.from_dict(ctxt)
        fields = {field: getattr(context, field) for field in CONTEXT_FIELDS}
        return {"server": self.name, "value": value, "context": fields}

    def note(self, ctxt: dict[str, Any], value: object = None) -> None:
        self.notes.put(value)

    def fail_builtin(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("bad value: zzz")

    def fail_elsewhere(self, ctxt: dict[str, Any]) -> None:
        raise configparser.Error("no such section")

    async def next_note(self) -> object:
        return await asyncio.to_thread(self.notes.get, timeout=GUARD)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def topic() -> str:
    return f"compat_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def oslo_transport(rabbit_url: str) -> AsyncIterator[Any]:
    transport = await asyncio.to_thread(
        oslo_messaging.get_rpc_transport,
        cfg.CONF,
        url=rabbit_url.replace("amqp://", "rabbit://", 1),
        allowed_remote_exmods=["steward.errors"],
    )
    yield transport
    await asyncio.to_thread(transport.cleanup)


@pytest.fixture
async def transport(rabbit_url: str) -> AsyncIterator[Transport]:
    transport = get_transport(rabbit_url)
    yield transport
    await transport.close()


@pytest.fixture
async def steward_servers(
    transport: Transport, topic: str
) -> AsyncIterator[dict[str, StewardEndpoint]]:
    endpoints = {name: StewardEndpoint(name) for name in ("h1", "h2")}
    servers = [RPCServer(transport, Target(topic, name), [e]) for name, e in endpoints.items()]
    for server in servers:
        await server.start()
    yield endpoints
    for server in servers:
        await server.stop()
        await server.wait(grace_period=5)


@pytest.fixture
async def oslo_server(oslo_transport: Any, topic: str) -> AsyncIterator[OsloEndpoint]:
    endpoint = OsloEndpoint("o1")
    target = oslo_messaging.Target(topic=topic, server="o1")
    server = oslo_messaging.get_rpc_server(oslo_transport, target, [endpoint])
    assert server.executor_type == "threading"
    await asyncio.to_thread(server.start)
    yield endpoint
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.wait)


@pytest.fixture
def oslo_client(oslo_transport: Any, topic: str) -> Any:
    return oslo_messaging.get_rpc_client(oslo_transport, oslo_messaging.Target(topic=topic))


def oslo_call(client: Any, ctxt: Any, method: str, **kwargs: object) -> Any:
    return asyncio.to_thread(client.prepare(timeout=GUARD).call, ctxt, method, **kwargs)


@pytest.fixture
def oslo_ctxt() -> Any:
    return oslo_context.RequestContext(
        user_id="u2",
        project_id="p2",
        request_id="req-11111111-2222-3333-4444-555555555555",
        roles=["member", "reader"],
        is_admin=False,
        auth_token="oslo-token",
    )


@pytest.fixture
def steward_context() -> RequestContext:
    return RequestContext(
        user_id="u1", project_id="p1", roles=["admin"], is_admin=True, auth_token="steward-token"
    )


def fields_of(context: Any) -> dict[str, Any]:
    return {field: getattr(context, field) for field in CONTEXT_FIELDS}


# --- oslo client -> steward server ----------------------------------------------------------------


async def test_oslo_call_to_a_topic_reaches_steward_with_its_context(
    steward_servers: dict[str, StewardEndpoint], oslo_client: Any, oslo_ctxt: Any
) -> None:
    result = await oslo_call(oslo_client, oslo_ctxt, "whoami", value={"a": [1, 2]})
    assert result["server"] in {"h1", "h2"}
    assert result["value"] == {"a": [1, 2]}
    assert result["context"] == fields_of(oslo_ctxt)


async def test_oslo_call_to_one_steward_server(
    steward_servers: dict[str, StewardEndpoint], oslo_client: Any, oslo_ctxt: Any
) -> None:
    for _ in range(4):
        prepared = oslo_client.prepare(server="h2")
        assert (await oslo_call(prepared, oslo_ctxt, "whoami"))["server"] == "h2"


async def test_oslo_casts_and_fanout_reach_steward(
    steward_servers: dict[str, StewardEndpoint], oslo_client: Any, oslo_ctxt: Any
) -> None:
    first, second = steward_servers["h1"], steward_servers["h2"]
    await asyncio.to_thread(oslo_client.prepare(server="h1").cast, oslo_ctxt, "note", value="one")
    assert await first.next_note() == "one"
    await asyncio.to_thread(oslo_client.prepare(fanout=True).cast, oslo_ctxt, "note", value="all")
    assert [await first.next_note(), await second.next_note()] == ["all", "all"]
    await asyncio.to_thread(oslo_client.cast, oslo_ctxt, "note", value="any")
    async with asyncio.timeout(GUARD):
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(e.notes.get()) for e in (first, second)],
            return_when=asyncio.FIRST_COMPLETED,
        )
    for task in pending:
        task.cancel()
    assert [task.result() for task in done] == ["any"]


# What oslo's jsonutils writes and Python's json reads, and orjson alone cannot carry exactly.
EDGE_VALUE = {"nan": math.nan, "big": 2**70, "small": -(2**64), "inf": math.inf, "neg": -math.inf}


def assert_edge_value(value: Any) -> None:
    assert set(value) == set(EDGE_VALUE)
    assert math.isnan(value["nan"])
    assert value["big"] == 2**70
    assert type(value["big"]) is int
    assert value["small"] == -(2**64)
    assert type(value["small"]) is int
    assert value["inf"] == math.inf
    assert value["neg"] == -math.inf


async def test_oslo_nan_and_big_integers_reach_steward_and_come_back_exactly(
    steward_servers: dict[str, StewardEndpoint], oslo_client: Any, oslo_ctxt: Any
) -> None:
    await asyncio.to_thread(
        oslo_client.prepare(server="h1").cast, oslo_ctxt, "note", value=EDGE_VALUE
    )
    assert_edge_value(await steward_servers["h1"].next_note())
    result = await oslo_call(
        oslo_client.prepare(server="h2"), oslo_ctxt, "whoami", value=EDGE_VALUE
    )
    assert_edge_value(result["value"])


async def test_steward_nan_and_big_integers_reach_oslo_and_come_back_exactly(
    oslo_server: OsloEndpoint, transport: Transport, topic: str, steward_context: RequestContext
) -> None:
    client = RPCClient(transport, Target(topic, "o1"), timeout=GUARD)
    await client.cast(steward_context, "note", value=EDGE_VALUE)
    assert_edge_value(await oslo_server.next_note())
    assert_edge_value((await client.call(steward_context, "whoami", value=EDGE_VALUE))["value"])


async def test_steward_exceptions_reach_oslo_as_oslo_rebuilds_them(
    steward_servers: dict[str, StewardEndpoint], oslo_client: Any, oslo_ctxt: Any
) -> None:
    with pytest.raises(ValueError, match="bad value: zzz") as builtin:
        await oslo_call(oslo_client, oslo_ctxt, "fail_builtin")
    assert type(builtin.value) is ValueError  # oslo keeps a builtin's class as it is
    # steward.errors is in the oslo transport's allowed_remote_exmods: the class comes back.
    with pytest.raises(ConfigError, match="option `x` is wrong"):
        await oslo_call(oslo_client, oslo_ctxt, "fail_allowed")
    with pytest.raises(oslo_messaging.RemoteError) as unlisted:
        await oslo_call(oslo_client, oslo_ctxt, "fail_unlisted")
    assert unlisted.value.exc_type == "Unlisted"
    assert unlisted.value.value == "not for you"
    # steward's dispatch errors carry oslo's names (test_oslo_errors.py): not allowed here, so
    # they come back as an oslo server's do.
    with pytest.raises(oslo_messaging.RemoteError, match="does not support RPC method no_such"):
        await oslo_call(oslo_client, oslo_ctxt, "no_such_method")


# --- steward client -> oslo server ----------------------------------------------------------------


async def test_steward_call_reaches_oslo_with_its_context(
    oslo_server: OsloEndpoint, transport: Transport, topic: str, steward_context: RequestContext
) -> None:
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    for prepared in (client, client.prepare(server="o1")):
        result = await prepared.call(steward_context, "whoami", value=[1, "two"])
        assert result == {
            "server": "o1",
            "value": [1, "two"],
            "context": fields_of(steward_context),
        }


async def test_steward_casts_and_fanout_reach_oslo(
    oslo_server: OsloEndpoint, transport: Transport, topic: str, steward_context: RequestContext
) -> None:
    client = RPCClient(transport, Target(topic))
    await client.cast(steward_context, "note", value="cast")
    assert await oslo_server.next_note() == "cast"
    await client.prepare(server="o1").cast(steward_context, "note", value="server")
    assert await oslo_server.next_note() == "server"
    await client.prepare(fanout=True).cast(steward_context, "note", value="fanout")
    assert await oslo_server.next_note() == "fanout"


async def test_oslo_exceptions_reach_steward(
    oslo_server: OsloEndpoint, transport: Transport, topic: str, steward_context: RequestContext
) -> None:
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    with pytest.raises(ValueError, match="bad value: zzz") as builtin:
        await client.call(steward_context, "fail_builtin")
    assert type(builtin.value) is ValueError
    with pytest.raises(RemoteError) as elsewhere:
        await client.call(steward_context, "fail_elsewhere")
    assert (elsewhere.value.exc_type, elsewhere.value.value) == ("Error", "no such section")
    allowed = RPCClient(
        transport, Target(topic), timeout=GUARD, allowed_remote_exmods=["configparser"]
    )
    with pytest.raises(configparser.Error, match="no such section"):
        await allowed.call(steward_context, "fail_elsewhere")
    with pytest.raises(NoSuchMethod, match="does not support RPC method no_such_method"):
        await client.call(steward_context, "no_such_method")


# --- notifications, both ways ---------------------------------------------------------------------


class StewardNotifications:
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[str, str, object, dict[str, Any]]] = asyncio.Queue()

    async def info(
        self,
        context: RequestContext,
        publisher_id: str,
        event_type: str,
        payload: object,
        metadata: dict[str, Any],
    ) -> None:
        self.received.put_nowait((publisher_id, event_type, payload, fields_of(context)))


class OsloNotifications:
    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, str, object, dict[str, Any]]] = queue.Queue()

    def info(
        self,
        ctxt: dict[str, Any],
        publisher_id: str,
        event_type: str,
        payload: object,
        metadata: dict[str, Any],
    ) -> None:
        context = oslo_context.RequestContext.from_dict(ctxt)
        self.received.put((publisher_id, event_type, payload, fields_of(context)))


async def test_oslo_notifications_reach_a_steward_listener(
    oslo_transport: Any, transport: Transport, topic: str, oslo_ctxt: Any
) -> None:
    endpoint = StewardNotifications()
    listener = NotificationListener(transport, [Target(topic)], [endpoint])
    await listener.start()
    notifier = oslo_messaging.Notifier(
        oslo_transport, publisher_id="compute.host1", driver="messagingv2", topics=[topic]
    )
    await asyncio.to_thread(notifier.info, oslo_ctxt, "compute.instance.create.end", {"n": 1})
    async with asyncio.timeout(GUARD):
        publisher_id, event_type, payload, context = await endpoint.received.get()
    await listener.stop()
    assert (publisher_id, event_type, payload) == (
        "compute.host1",
        "compute.instance.create.end",
        {"n": 1},
    )
    # oslo sends notifications with a redacted copy of the context: no auth token.
    assert context == {**fields_of(oslo_ctxt), "auth_token": None}


async def test_steward_notifications_reach_an_oslo_listener(
    oslo_transport: Any, transport: Transport, topic: str, steward_context: RequestContext
) -> None:
    endpoint = OsloNotifications()
    targets = [oslo_messaging.Target(topic=topic)]
    listener = oslo_messaging.get_notification_listener(oslo_transport, targets, [endpoint])
    await asyncio.to_thread(listener.start)
    try:
        notifier = Notifier(transport, "volume.node1", driver="messaging", topics=[topic])
        notifier.info(steward_context, "volume.create.end", {"volume_id": "v1"})
        await notifier.close()
        publisher_id, event_type, payload, context = await asyncio.to_thread(
            endpoint.received.get, timeout=GUARD
        )
    finally:
        await asyncio.to_thread(listener.stop)
        await asyncio.to_thread(listener.wait)
    assert (publisher_id, event_type, payload) == (
        "volume.node1",
        "volume.create.end",
        {"volume_id": "v1"},
    )
    expected = fields_of(steward_context)
    assert {key: context[key] for key in expected if key != "auth_token"} == {
        key: value for key, value in expected.items() if key != "auth_token"
    }
