from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from steward import Manager, RequestContext, periodic_task
from steward.clock import Clock, SystemClock
from steward.errors import MessageUndeliverable
from steward.rpc import RPCClient, Target, get_transport
from steward.rpc.transports.base import Transport
from steward.testing import CapturedNotifications, FakeClock
from steward.testing.plugin import StartService

GUARD = 20.0


def test_fake_and_system_clocks_are_clocks() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=5)
    assert clock.monotonic() == 5
    clock.advance(2.5)
    assert clock.monotonic() == 7.5
    clock.set(10)
    assert clock.monotonic() == 10
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(9)
    with pytest.raises(ValueError, match="must be >= 0"):
        clock.advance(-1)


@pytest.mark.looptime  # the guards are virtual: a hang fails at once
async def test_sleepers_wake_in_deadline_order_at_exact_times() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10))]
    await clock.wait_for_sleepers(2)
    clock.advance(15)
    async with asyncio.timeout(GUARD):
        await tasks[1]
    assert woke == [("a", 15.0)]
    assert clock.sleepers == 1
    clock.advance(5)
    async with asyncio.timeout(GUARD):
        await tasks[0]
    assert woke == [("a", 15.0), ("b", 20.0)]


async def test_zero_sleep_only_yields() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    assert clock.sleepers == 0


# --- the plugin's fixtures ---------------------------------------------------------------------


def test_the_fake_clock_fixture_starts_at_1000(fake_clock: FakeClock) -> None:
    assert fake_clock.monotonic() == 1000.0
    assert fake_clock.sleepers == 0


async def test_the_memory_transport_is_a_broker_of_the_tests_own(
    memory_transport: Transport,
) -> None:
    assert memory_transport.url.startswith("memory://steward-test-")

    async def take(message: object) -> None:
        """Never called: nothing is sent to it."""

    await memory_transport.listen(Target("mine", "h1"), take, prefetch=1)
    other = get_transport("memory://")
    try:
        with pytest.raises(MessageUndeliverable):
            await other.send(Target("mine"), b"{}")
    finally:
        await other.close()


def test_captured_notifications_keep_what_their_notifiers_send() -> None:
    captured = CapturedNotifications()
    manager = Manager("h1", service_name="volume")
    captured.attach(manager)
    manager.notifier.info(RequestContext(user_id="u1"), "volume.create", {"size": 1})
    captured.notifier("other.h2").error(None, "volume.fail", {"why": "full"})
    assert captured.event_types == ["volume.create", "volume.fail"]
    assert len(captured) == 2
    (created,) = captured.of("volume.create")
    assert (created.publisher_id, created.priority, created.payload) == (
        "volume.h1",
        "INFO",
        {"size": 1},
    )
    assert created.context["user_id"] == "u1"
    assert [sent.publisher_id for sent in captured] == ["volume.h1", "other.h2"]
    captured.clear()
    assert captured.sent == []


class Volumes(Manager):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__("node1", service_name="volume", clock=clock)
        self.audits: list[float] = []
        self.audited = asyncio.Event()
        self.cleaned_up = False
        self.periodic_scheduler.jitter = lambda: 0.0  # exact times

    async def create_volume(self, context: RequestContext, size: int) -> dict[str, object]:
        self.notifier.info(context, "volume.create", {"size": size})
        return {"host": self.host, "size": size}

    @periodic_task(spacing=30, run_immediately=True)
    async def audit(self, context: RequestContext) -> None:
        self.audits.append(self.periodic_scheduler.clock.monotonic())
        self.audited.set()

    async def cleanup_host(self) -> None:
        self.cleaned_up = True


async def test_start_service_runs_a_manager_on_the_memory_transport_and_the_fake_clock(
    start_service: StartService,
    memory_transport: Transport,
    fake_clock: FakeClock,
    notifications: CapturedNotifications,
) -> None:
    manager = Volumes(fake_clock)
    service = await start_service(manager, topic="volume")
    assert service.transport is memory_transport
    assert service.clock is fake_clock
    client = RPCClient(memory_transport, Target("volume"), timeout=GUARD)
    assert await client.call(RequestContext(), "create_volume", size=2) == {
        "host": "node1",
        "size": 2,
    }
    assert notifications.event_types == ["volume.create"]
    assert notifications.sent[0].publisher_id == "volume.node1"
    # The periodic pass ran at once (no fuzzy delay), at the fake clock's time; the next comes
    # when the test moves the clock, not before.
    async with asyncio.timeout(GUARD):
        await manager.audited.wait()
    manager.audited.clear()
    await fake_clock.wait_for_sleepers(2)  # the heartbeat and periodic loops
    assert manager.audits == [1000.0]
    fake_clock.advance(30)
    async with asyncio.timeout(GUARD):
        await manager.audited.wait()
    assert manager.audits == [1000.0, 1030.0]
    (status,) = await service.registry.list_services()
    record = status.record
    assert (record.host, record.binary, record.topic) == ("node1", "steward-volume", "volume")
    assert status.up


USER_TESTS = """
import pytest

from steward import Manager

STOPPED = []


class Echo(Manager):
    async def cleanup_host(self):
        STOPPED.append(self.host)


@pytest.mark.asyncio
async def test_starts(start_service, fake_clock, notifications):
    service = await start_service(Echo("h1", clock=fake_clock), topic="echo")
    assert service.rpcserver.running
    assert STOPPED == []


def test_the_service_was_stopped_after_the_test():
    assert STOPPED == ["h1"]
"""

# docs/testing.md's worked example, with an in-loop transport of a third party's (a memory://
# under another name), on the virtual loop clock.
THIRD_PARTY_CONFORMANCE = """
import pytest

from steward.rpc.transports.memory import MemoryTransport
from steward.testing.conformance import TransportConformance


class LoopbackTransport(MemoryTransport):
    pass


class TestLoopbackTransport(TransportConformance):
    pytestmark = pytest.mark.looptime

    @pytest.fixture
    def transport_factory(self):
        def make(*, settings=None):
            return LoopbackTransport("memory://loopback", settings=settings)

        return make
"""


@pytest.fixture(scope="module")
def project_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Run a user's project on steward's plugin as it has it (pytest-asyncio strict); its report.

    One pytest run for the tests below (each run costs seconds of start-up). The two fuzz checks
    are left out: they run for memory:// in test_conformance.py.
    """
    directory = tmp_path_factory.mktemp("project")
    (directory / "test_user.py").write_text(USER_TESTS)
    (directory / "test_mine.py").write_text(THIRD_PARTY_CONFORMANCE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function", "-W", "error",
         "-k", "not survives", "test_user.py", "test_mine.py"],
        cwd=directory, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_plugin_works_in_strict_mode_and_stops_services_after_the_test(
    project_of_its_own: str,
) -> None:
    assert "test_user.py::test_starts PASSED" in project_of_its_own
    assert "test_user.py::test_the_service_was_stopped_after_the_test PASSED" in project_of_its_own


def test_a_transport_of_its_own_runs_the_shipped_conformance_suite(project_of_its_own: str) -> None:
    checks = [line for line in project_of_its_own.splitlines() if "TestLoopbackTransport::" in line]
    assert len(checks) == 22
    assert all("PASSED" in line for line in checks)
    assert "24 passed, 2 deselected" in project_of_its_own


def test_importing_steward_testing_does_not_import_pytest() -> None:
    # Only the plugin and the conformance suite need pytest; a service may import the rest.
    code = "import sys, steward, steward.testing; assert 'pytest' not in sys.modules, 'pytest'"
    done = subprocess.run(  # noqa: S603 - this interpreter, with code of the test's own
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
