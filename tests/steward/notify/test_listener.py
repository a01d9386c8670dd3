"""NotificationListener: endpoints run as RPC methods do; the listener owns its tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from steward import RequestContext
from steward.context import get_current
from steward.notify import NotificationListener, Notifier
from steward.rpc import Target, get_transport
from steward.rpc.transports.base import Transport

GUARD = 20.0


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    transport = get_transport("memory://")
    yield transport
    await transport.close()


class Blocking:
    """A plain ``def`` endpoint that blocks until the test releases it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.release = threading.Event()
        self.released: bool | None = None
        self.context: RequestContext | None = None
        self.thread: threading.Thread | None = None

    def info(self, context: RequestContext, publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:  # fmt: skip
        self.context = get_current()
        self.thread = threading.current_thread()
        self.loop.call_soon_threadsafe(self.entered.set)
        # On the loop, this would hold the loop (and the test) until the guard ran out.
        self.released = self.release.wait(GUARD)


async def test_a_blocking_def_endpoint_runs_in_a_thread_with_the_request_context(
    transport: Transport,
) -> None:
    endpoint = Blocking()
    context = RequestContext(user_id="u1", request_id="req-blocking")
    async with (
        NotificationListener(transport, [Target("notifications")], [endpoint]) as listener,
        Notifier(transport, "p", driver="messaging", topics=["notifications"]) as notifier,
    ):
        notifier.info(context, "thing.done", {})
        async with asyncio.timeout(GUARD):
            await endpoint.entered.wait()
        # The loop runs while the endpoint blocks: the test gets here and lets it go.
        endpoint.release.set()
        await listener.wait()
    assert endpoint.released is True
    assert endpoint.thread is not threading.main_thread()
    assert endpoint.context is not None
    assert (endpoint.context.request_id, endpoint.context.user_id) == ("req-blocking", "u1")


async def test_an_async_endpoint_runs_on_the_loop_with_the_request_context(
    transport: Transport,
) -> None:
    seen: list[tuple[RequestContext | None, threading.Thread]] = []

    class Endpoint:
        async def info(self, context: RequestContext, publisher_id: str, event_type: str,
                       payload: Any, metadata: dict[str, Any]) -> None:  # fmt: skip
            seen.append((get_current(), threading.current_thread()))

    async with (
        NotificationListener(transport, [Target("notifications")], [Endpoint()]) as listener,
        Notifier(transport, "p", driver="messaging", topics=["notifications"]) as notifier,
    ):
        notifier.info(RequestContext(request_id="req-async"), "thing.done", {})
        await notifier.close()
        async with asyncio.timeout(GUARD):
            while not seen:
                await listener.wait()
                await asyncio.sleep(0)
    ((current, thread),) = seen
    assert current is not None
    assert current.request_id == "req-async"
    assert thread is threading.main_thread()


async def test_leaving_the_listener_waits_for_handling_and_closes_it(transport: Transport) -> None:
    done: list[str] = []
    go = asyncio.Event()

    class Slow:
        async def info(self, context: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:  # fmt: skip
            go.set()
            await asyncio.sleep(0)
            done.append(event_type)

    listener = NotificationListener(transport, [Target("notifications")], [Slow()])
    async with (
        listener,
        Notifier(transport, "p", driver="messaging", topics=["notifications"]) as n,
    ):
        n.info(None, "slow.one", {})
        async with asyncio.timeout(GUARD):
            await go.wait()
    assert done == ["slow.one"]
    with pytest.raises(RuntimeError, match="listener is closed"):
        await listener.start()


async def test_a_listener_closed_mid_notification_returns_it_to_the_queue(
    transport: Transport,
) -> None:
    entered = asyncio.Event()
    received: asyncio.Queue[str] = asyncio.Queue()

    class Stuck:
        async def info(self, context: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:  # fmt: skip
            entered.set()
            await asyncio.Event().wait()  # never set: only cancelling the handler ends it

    class Collect:
        async def info(self, context: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:  # fmt: skip
            await received.put(event_type)

    first = NotificationListener(transport, [Target("notifications")], [Stuck()])
    await first.start()
    async with Notifier(transport, "p", driver="messaging", topics=["notifications"]) as notifier:
        notifier.info(None, "kept", {})
    async with asyncio.timeout(GUARD):
        await entered.wait()
    await first.stop()
    closing = asyncio.create_task(first.aclose())
    await asyncio.sleep(0)  # aclose is waiting for the handler: cancel that wait
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    async with NotificationListener(transport, [Target("notifications")], [Collect()]):
        async with asyncio.timeout(GUARD):
            assert await received.get() == "kept"
