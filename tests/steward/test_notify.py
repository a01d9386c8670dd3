from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from steward import DriverNotFound, RequestContext
from steward.config import load_settings, set_settings
from steward.notify import (
    REQUEUE,
    NoopNotifier,
    NotificationFilter,
    NotificationListener,
    Notifier,
)
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


class Collector:
    def __init__(self, priorities: tuple[str, ...] = ("info", "error")) -> None:
        self.received: asyncio.Queue[tuple[str, str, str, Any, RequestContext]] = asyncio.Queue()
        for priority in priorities:
            setattr(self, priority, self._make(priority))

    def _make(self, priority: str) -> Any:
        async def handle(
            context: RequestContext, publisher_id: str, event_type: str, payload: Any,
            metadata: dict[str, Any],
        ) -> None:  # fmt: skip
            await self.received.put((priority, publisher_id, event_type, payload, context))

        return handle


async def test_messaging_notifications_reach_a_listener_with_context(transport: Transport) -> None:
    collector = Collector()
    listener = NotificationListener(transport, [Target("notifications")], [collector])
    await listener.start()
    notifier = Notifier(transport, "volume.node1", driver="messaging", topics=["notifications"])
    context = RequestContext(user_id="u1", request_id="req-n1")
    notifier.info(context, "volume.create.end", {"volume_id": "v1", "size": 1})
    notifier.error(context, "volume.create.error", {"volume_id": "v2"})
    async with asyncio.timeout(GUARD):
        first = await collector.received.get()
        second = await collector.received.get()
    await listener.stop()
    await notifier.close()
    assert first[:4] == (
        "info",
        "volume.node1",
        "volume.create.end",
        {"volume_id": "v1", "size": 1},
    )
    assert first[4].request_id == "req-n1"
    assert first[4].user_id == "u1"
    assert second[:3] == ("error", "volume.node1", "volume.create.error")
    assert notifier.delivered == 2


async def test_wire_format_is_oslo_messagingv2(transport: Transport) -> None:
    notifier = Notifier(transport, "compute.host1", driver="messaging", topics=["notifications"])
    notifier.warning(RequestContext(user_id="u1"), "compute.instance.create.end", {"n": 1})
    await notifier.close()
    assert isinstance(transport, MemoryTransport)
    # The publisher declared notifications.warn, as oslo does; read the raw body from it.
    bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def grab(incoming: Any) -> None:
        await bodies.put(incoming.body)
        await incoming.ack()

    listener = await transport.listen_notifications(
        [(Target("notifications"), "warn")], grab, prefetch=1
    )
    async with asyncio.timeout(GUARD):
        body = await bodies.get()
    await listener.stop()
    outer = orjson.loads(body)
    assert outer["oslo.version"] == "2.0"
    message = wire.decode(body)
    assert list(message)[:7] == [
        "message_id", "publisher_id", "event_type", "priority",
        "payload", "timestamp", "_unique_id",
    ]  # fmt: skip
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        message["message_id"],
    )
    assert message["priority"] == "WARN"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", message["timestamp"])
    assert message["_context_user"] == "u1"
    assert message["payload"] == {"n": 1}


async def test_filters_select_by_event_type_and_publisher(transport: Transport) -> None:
    wanted, everything = Collector(("info",)), Collector(("info",))
    wanted.filter_rule = NotificationFilter(event_type=r"volume\..*", publisher_id=r"volume\.node1")  # type: ignore[attr-defined]
    first = NotificationListener(transport, [Target("notifications")], [wanted], pool="filtered")
    second = NotificationListener(transport, [Target("notifications")], [everything], pool="all")
    await first.start()
    await second.start()
    notifier = Notifier(transport, "volume.node1", driver="messaging", topics=["notifications"])
    notifier.info(None, "compute.instance.delete", {})
    notifier.prepare(publisher_id="volume.node2").info(None, "volume.delete", {})
    notifier.info(None, "volume.delete", {"id": 3})
    await notifier.close()
    async with asyncio.timeout(GUARD):
        got = await wanted.received.get()
        all_three = [await everything.received.get() for _ in range(3)]
    assert got[2:4] == ("volume.delete", {"id": 3})
    assert wanted.received.empty()
    assert [item[1] for item in all_three] == ["volume.node1", "volume.node2", "volume.node1"]
    await first.stop()
    await second.stop()


async def test_an_endpoint_may_ask_for_requeue(transport: Transport) -> None:
    attempts: list[int] = []

    class Flaky:
        async def info(self, context: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> str | None:  # fmt: skip
            attempts.append(1)
            return REQUEUE if len(attempts) < 3 else None

    listener = NotificationListener(transport, [Target("notifications")], [Flaky()])
    await listener.start()
    notifier = Notifier(transport, "p", driver="messaging", topics=["notifications"])
    notifier.info(None, "e", {})
    await notifier.close()
    async with asyncio.timeout(GUARD):
        while len(attempts) < 3:
            await listener.wait()
            await asyncio.sleep(0)
    await listener.stop()
    assert len(attempts) == 3


class Unreliable(MemoryTransport):
    def __init__(self, failures: int) -> None:
        super().__init__("memory://")
        self.failures = failures

    async def send_notification(self, target: Target, priority: str, body: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        await super().send_notification(target, priority, body)


class JumpingClock(FakeClock):
    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


async def test_a_broker_away_is_retried_with_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = Unreliable(failures=4)
    clock = JumpingClock()
    notifier = Notifier(transport, "p", driver="messaging", topics=["notifications"], clock=clock)
    with caplog.at_level(logging.INFO, logger="steward.notify"):
        notifier.info(None, "e", {"k": 1})  # never raises into the caller
        await notifier.close()
    assert notifier.delivered == 1
    assert clock.monotonic() == 0.5 + 1 + 2 + 4  # doubling backoff
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Cannot send a notification" in m for m in messages) == 1
    assert "Notification sent after 4 failed attempts" in messages


async def test_notifying_from_a_thread_works(transport: Transport) -> None:
    collector = Collector(("info",))
    listener = NotificationListener(transport, [Target("notifications")], [collector])
    await listener.start()
    notifier = Notifier(transport, "p", driver="messaging", topics=["notifications"])
    notifier.info(None, "from.loop", {})
    await asyncio.to_thread(notifier.info, None, "from.thread", {})
    async with asyncio.timeout(GUARD):
        events = {(await collector.received.get())[2] for _ in range(2)}
    assert events == {"from.loop", "from.thread"}
    await listener.stop()
    await notifier.close()


def test_test_log_and_noop_drivers(caplog: pytest.LogCaptureFixture) -> None:
    test = Notifier(None, "svc.h", driver="test")
    test.audit(RequestContext(user_id="u"), "thing.happened", {"a": 1})
    (sent,) = test.sent
    assert (sent.publisher_id, sent.event_type, sent.priority, sent.payload) == (
        "svc.h", "thing.happened", "AUDIT", {"a": 1},
    )  # fmt: skip
    assert sent.context["user"] == "u"
    assert test.prepare(publisher_id="other").sent is test.sent
    with caplog.at_level(logging.INFO, logger="steward.notify"):
        Notifier(None, "svc.h", driver="log").critical(None, "disk.full", {"free": 0})
    assert "Notification CRITICAL disk.full from svc.h: {'free': 0}" in caplog.text
    noop = NoopNotifier("svc.h")
    noop.info(None, "x", {})
    assert not noop.is_enabled()
    assert noop.sent == []


def test_driver_comes_from_the_transports_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_settings(load_settings(overrides={"notification_driver": "log"}))  # never read
    transport = MemoryTransport(settings=load_settings(overrides={"notification_driver": "test"}))
    assert Notifier(transport, "p").driver == "test"
    monkeypatch.setenv("STEWARD_NOTIFICATION_DRIVER", "test")
    assert Notifier(None, "p").driver == "test"  # no transport: defaults and environment
    with pytest.raises(DriverNotFound, match="no 'notification' driver named 'kafka'"):
        Notifier(None, "p", driver="kafka")
    with pytest.raises(ValueError, match="needs a transport"):
        Notifier(None, "p", driver="messaging")


def test_a_payload_that_is_not_json_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(MemoryTransport(), "p", driver="messaging", topics=["notifications"])
    with caplog.at_level(logging.ERROR, logger="steward.notify"):
        notifier.info(None, "e", {"bad": object()})
    assert "Could not emit notification e from p" in caplog.text


def test_a_notifier_given_settings_reads_its_defaults_there() -> None:
    own = load_settings(overrides={"notification_driver": "log", "notification_topics": "audit"})
    notifier = Notifier(None, "compute.host1", settings=own)  # the process's say noop
    assert (notifier.driver, notifier.topics) == ("log", ["audit"])
    assert notifier.prepare(publisher_id="compute.host2").driver == "log"
