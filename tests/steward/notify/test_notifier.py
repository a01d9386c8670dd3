"""Notifier: drivers loaded by name, an async context manager owning its sender, crashes seen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from steward import DriverNotFound, RequestContext
from steward.errors import MessageDeliveryFailure
from steward.notify import DRIVERS, NotificationDriver, Notifier
from steward.notify.local import TestDriver
from steward.notify.messaging import MessagingDriver
from steward.rpc import Target, get_transport, wire
from steward.rpc.transports.base import Transport
from steward.rpc.transports.memory import MemoryTransport
from steward.testing import FakeClock

GUARD = 20.0


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    transport = get_transport("memory://")
    yield transport
    await transport.close()


def test_an_unknown_driver_name_raises_driver_not_found_listing_the_built_in_ones() -> None:
    with pytest.raises(DriverNotFound) as raised:
        Notifier(None, "p", driver="kafka")
    assert (raised.value.kind, raised.value.name) == ("notification", "kafka")
    assert set(DRIVERS) <= set(raised.value.available)


@pytest.mark.parametrize("name", DRIVERS, ids=DRIVERS)
async def test_every_built_in_name_loads_a_notification_driver(
    name: str, transport: Transport
) -> None:
    async with Notifier(transport, "p", driver=name, topics=["notifications"]) as notifier:
        assert notifier.driver == name
        assert isinstance(notifier._shared.driver, NotificationDriver)
        assert notifier.is_enabled() == (name != "noop")


def test_a_driver_may_be_named_by_its_module_and_class() -> None:
    notifier = Notifier(None, "p", driver="steward.notify.local:TestDriver", topics=())
    notifier.info(None, "e", {})
    assert [sent.event_type for sent in notifier.sent] == ["e"]


async def test_messagingv2_is_the_messaging_driver_under_oslos_other_name(
    transport: Transport,
) -> None:
    async with Notifier(transport, "p", driver="messagingv2", topics=["n"]) as notifier:
        assert isinstance(notifier._shared.driver, MessagingDriver)
        notifier.info(None, "e", {})
    assert notifier.delivered == 1


async def test_the_sender_runs_in_the_notifiers_task_group_and_ends_with_it(
    transport: Transport,
) -> None:
    async with Notifier(transport, "vol.h1", driver="messaging", topics=["n"]) as notifier:
        notifier.info(None, "e", {})
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "notifier vol.h1: notification sender" in names
    assert notifier.delivered == 1
    assert not any("notifier vol.h1" in task.get_name() for task in asyncio.all_tasks())
    assert Notifier.close is Notifier.aclose  # the old name still works


async def test_a_notification_after_close_is_dropped_with_an_error_not_raised(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(transport, "p", driver="messaging", topics=["n"])
    await notifier.close()
    with caplog.at_level(logging.ERROR, logger="steward.notify"):
        notifier.info(None, "late", {})
    assert "Notification info dropped: its notifier is closed or failed" in caplog.text
    assert notifier.delivered == 0


class AwayBroker(MemoryTransport):
    def __init__(self) -> None:
        super().__init__("memory://")

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        raise ConnectionError("broker away")


async def test_closing_cancelled_while_the_broker_is_away_cancels_the_sender() -> None:
    clock = FakeClock()
    notifier = Notifier(AwayBroker(), "p", driver="messaging", topics=["n"], clock=clock)
    notifier.info(None, "e", {})
    await clock.wait_for_sleepers(1)  # the sender waits to retry
    closing = asyncio.create_task(notifier.aclose())
    await asyncio.sleep(0)  # aclose waits for the queue to drain: cancel that wait
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert not any("notifier p" in task.get_name() for task in asyncio.all_tasks())
    assert clock.sleepers == 0


class BrokenClock(FakeClock):
    async def sleep(self, seconds: float) -> None:
        raise RuntimeError("the clock broke")


async def test_a_crashed_sender_fails_the_notifier_and_notifying_then_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    notifier = Notifier(
        AwayBroker(), "vol.h1", driver="messaging", topics=["n"], clock=BrokenClock(),
        on_crash=crashed.set_result,
    )  # fmt: skip
    prepared = notifier.prepare(publisher_id="vol.h2")
    with caplog.at_level(logging.ERROR, logger="steward"):
        notifier.info(RequestContext(), "first", {})  # queued; the sender dies retrying it
        async with asyncio.timeout(GUARD):
            cause = await crashed
    assert isinstance(cause, RuntimeError)
    assert notifier.failure is cause
    assert "notifications can no longer be sent" in caplog.text
    assert "the clock broke" in caplog.text  # the traceback, logged at once
    for failed in (notifier, prepared):
        with pytest.raises(MessageDeliveryFailure, match="not sent: the notifier failed") as err:
            failed.error(None, "next", {})
        assert err.value.__cause__ is cause
    await notifier.aclose()  # raises nothing of what failed the notifier: .failure holds it
    assert notifier.failure is cause


async def test_the_context_travels_in_the_fields_an_rpc_request_carries_it_in(
    transport: Transport,
) -> None:
    context = RequestContext(user_id="u1", project_id="p1", request_id="req-wire")
    async with Notifier(transport, "p", driver="messaging", topics=["n"]) as notifier:
        notifier.info(context, "e", {})
    bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def grab(incoming: object) -> None:
        await bodies.put(incoming.body)  # type: ignore[attr-defined]
        await incoming.ack()  # type: ignore[attr-defined]

    listener = await transport.listen_notifications([(Target("n"), "info")], grab, prefetch=1)
    async with asyncio.timeout(GUARD):
        message = wire.decode(await bodies.get())
    await listener.stop()
    request = wire.request("m", {}, context.to_dict())
    fields = {key: value for key, value in message.items() if key.startswith("_context_")}
    assert fields == {key: value for key, value in request.items() if key.startswith("_context_")}
    assert wire.unpack_context(message) == wire.parse_request(request).context == context.to_dict()


def test_the_test_driver_is_shared_by_prepared_copies() -> None:
    notifier = Notifier(None, "svc.h", driver="test", topics=())
    notifier.prepare(publisher_id="svc.h2").info(None, "e", {"a": 1})
    assert isinstance(notifier._shared.driver, TestDriver)
    assert [(s.publisher_id, s.priority) for s in notifier.sent] == [("svc.h2", "INFO")]


async def test_a_first_notification_from_a_thread_reaches_the_broker(transport: Transport) -> None:
    # A plain def method (a periodic task, an RPC method in the pool) notifying first: the
    # driver knows the loop it was made on, so the notification is not dropped.
    async with Notifier(transport, "vol.h1", driver="messaging", topics=["n"]) as notifier:
        await asyncio.to_thread(notifier.info, None, "from.a.thread", {})
    assert notifier.delivered == 1
    assert getattr(notifier._shared.driver, "dropped", None) == 0
