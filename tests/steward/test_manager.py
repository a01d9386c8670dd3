from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, assert_type

import pytest

from steward import BindingError, Manager, RequestContext, load_settings, periodic_task
from steward.config import set_settings
from steward.context import bind, get_current
from steward.manager import HOOKS, ManagerBindings, run_hook
from steward.notify import Notifier
from steward.periodic import PeriodicTaskSpec
from steward.testing import FakeClock


def test_constructor_keeps_seed_parity() -> None:
    db = object()
    manager = Manager(host="node1", db=db, service_name="volume")
    assert manager.host == "node1"
    assert manager.db is db
    assert manager.service_name == "volume"
    assert manager.backdoor_port is None
    assert manager.additional_endpoints == []
    assert manager.notifier.driver == "noop"
    assert not manager.notifier.is_enabled()
    assert manager.notifier.publisher_id == "volume.node1"


def test_positional_arguments_follow_the_seed_order() -> None:
    manager = Manager("node2", None, "compute")
    assert (manager.host, manager.service_name) == ("node2", "compute")


def test_defaults() -> None:
    manager = Manager()
    assert manager.service_name == "undefined"
    assert manager.db is None
    assert manager.host == socket.gethostname()
    assert manager.notifier.publisher_id == f"undefined.{socket.gethostname()}"


def test_host_falls_back_to_the_host_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_HOST", "env-host")
    assert Manager().host == "env-host"
    set_settings(load_settings(overrides={"host": "configured"}))
    assert Manager().host == "configured"
    assert Manager(settings=load_settings(overrides={"host": "explicit"})).host == "explicit"
    assert Manager(host="given").host == "given"


def test_additional_endpoints_are_per_instance() -> None:
    first, second = Manager(host="a"), Manager(host="b")
    first.additional_endpoints.append(object())
    assert second.additional_endpoints == []


class Noting(Manager):
    def __init__(self) -> None:
        super().__init__(host="h", service_name="sync")
        self.calls: list[tuple[str, str, RequestContext | None]] = []

    def _note(self, name: str) -> None:
        self.calls.append((name, threading.current_thread().name, get_current()))


class SyncHooks(Noting):
    def init_host(self, service_ref: object | None) -> None:
        self._note("init_host")

    def pre_start_hook(self, service_ref: object | None) -> None:
        self._note("pre_start_hook")

    def post_start_hook(self) -> None:
        self._note("post_start_hook")

    def cleanup_host(self) -> None:
        self._note("cleanup_host")

    def reset(self) -> None:
        self._note("reset")


class AsyncHooks(Noting):
    async def init_host(self, service_ref: object | None) -> None:
        self._note("init_host")

    async def pre_start_hook(self, service_ref: object | None) -> None:
        self._note("pre_start_hook")

    async def post_start_hook(self) -> None:
        self._note("post_start_hook")

    async def cleanup_host(self) -> None:
        self._note("cleanup_host")

    async def reset(self) -> None:
        self._note("reset")


async def run_lifecycle(manager: Manager) -> None:
    """Call the hooks in the seed's order, as a service does."""
    await run_hook(manager, "init_host", None)
    await run_hook(manager, "pre_start_hook", None)
    await run_hook(manager, "post_start_hook")
    await run_hook(manager, "reset")
    await run_hook(manager, "cleanup_host")


SEED_ORDER = ["init_host", "pre_start_hook", "post_start_hook", "reset", "cleanup_host"]


@pytest.mark.parametrize("cls", [SyncHooks, AsyncHooks], ids=["sync", "async"])
async def test_hooks_overridden_sync_or_async_are_awaited_in_order(cls: type[Noting]) -> None:
    manager = cls()
    context = RequestContext()
    with bind(context):
        await run_lifecycle(manager)
    assert [name for name, _, _ in manager.calls] == SEED_ORDER
    loop_thread = threading.current_thread().name
    on_loop = {thread == loop_thread for _, thread, _ in manager.calls}
    assert on_loop == ({True} if cls is AsyncHooks else {False})
    assert all(seen is context for _, _, seen in manager.calls)


async def test_default_hooks_do_nothing_and_are_skipped() -> None:
    manager = Manager(host="h")
    assert set(HOOKS) == set(SEED_ORDER)
    for name in HOOKS:
        assert (
            getattr(manager, name)(*([None] if name in ("init_host", "pre_start_hook") else []))
            is None
        )
    await run_lifecycle(manager)


async def test_unknown_hook_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="`name` must be one of init_host"):
        await run_hook(Manager(host="h"), "start")


async def test_hook_exception_reaches_the_caller() -> None:
    class Broken(Manager):
        def init_host(self, service_ref: object | None) -> None:
            raise OSError("no such device")

    with pytest.raises(OSError, match="no such device"):
        await run_hook(Broken(host="h"), "init_host", None)


async def test_sync_hook_returning_a_coroutine_is_awaited() -> None:
    done: list[str] = []

    class Handing(Manager):
        def cleanup_host(self) -> Awaitable[None]:
            async def later() -> None:
                done.append("cleaned")

            return later()

    await run_hook(Handing(host="h"), "cleanup_host")
    assert done == ["cleaned"]


def test_repr_names_class_host_and_service() -> None:
    assert repr(Manager(host="h", service_name="s")) == "<Manager host='h' service_name='s'>"


# --- bind: the handover from the service that runs the manager --------------------------------


async def refuse(spec: PeriodicTaskSpec) -> bool:
    return False


def test_bind_hands_over_db_notifier_executor_and_singleton_gate() -> None:
    db = object()
    notifier = Notifier(None, "volume.node1", driver="test", topics=())
    manager = Manager(host="node1", service_name="volume")
    with ThreadPoolExecutor(max_workers=1) as executor:
        bindings = ManagerBindings(
            db=db, notifier=notifier, executor=executor, singleton_gate=refuse
        )
        manager.bind(bindings)
        assert manager.bindings is bindings
        assert manager.db is db
        assert manager.notifier is notifier
        assert manager.periodic_scheduler.executor is executor
        assert manager.periodic_scheduler.singleton_gate is refuse


def test_a_manager_built_with_its_own_db_keeps_it() -> None:
    own, services = object(), object()
    manager = Manager(host="h", db=own)
    manager.bind(ManagerBindings(db=services))
    assert manager.db is own


def test_empty_bindings_leave_the_manager_as_built() -> None:
    manager = Manager(host="h", service_name="s")
    notifier = manager.notifier
    manager.bind(ManagerBindings())
    assert manager.db is None
    assert manager.notifier is notifier
    assert manager.periodic_scheduler.executor is None
    assert manager.periodic_scheduler.singleton_gate is None


def test_bindings_are_frozen_and_keyword_only() -> None:
    bindings = ManagerBindings(db=object())
    with pytest.raises(dataclasses.FrozenInstanceError):
        bindings.db = object()  # type: ignore[misc]
    with pytest.raises(TypeError):
        ManagerBindings(object())  # type: ignore[call-arg]


def test_a_manager_is_bound_once() -> None:
    manager = Manager(host="h", service_name="s")
    first = ManagerBindings(db=object())
    manager.bind(first)
    with pytest.raises(BindingError, match="is bound already: a manager runs in one service"):
        manager.bind(ManagerBindings(db=object()))
    assert manager.bindings is first
    assert isinstance(BindingError("x"), RuntimeError)


class Ticking(Manager):
    def __init__(self) -> None:
        super().__init__(host="h", service_name="tick", clock=FakeClock())

    @periodic_task(spacing=10)
    async def tick(self, context: RequestContext) -> None:
        pass


async def test_a_manager_whose_periodic_tasks_started_cannot_be_bound() -> None:
    manager = Ticking()
    await manager.periodic_tasks(RequestContext())
    with (
        ThreadPoolExecutor(max_workers=1) as executor,
        pytest.raises(BindingError, match="has started running periodic tasks"),
    ):
        manager.bind(ManagerBindings(executor=executor))
    assert manager.bindings is None
    assert manager.periodic_scheduler.executor is None


def test_bind_is_neither_remote_nor_traced() -> None:
    assert "bind" in Manager.__rpc_private__
    assert not hasattr(Manager.bind, "__wrapped__")  # traced() wraps with functools.wraps


class Store:
    """A data-access object of a manager's own type."""

    def count(self) -> int:
        return 3


class StoreManager(Manager[Store]):
    def volumes(self) -> int:
        return self.db.count()  # typed: no redeclaration of self.db


def test_a_manager_is_generic_over_its_db() -> None:
    store = Store()
    manager = StoreManager(host="h", db=store)
    assert_type(manager.db, Store)
    assert manager.volumes() == 3
    unbound = StoreManager(host="h")
    unbound.bind(ManagerBindings(db=store))
    assert unbound.db is store
    assert_type(Manager(host="h").db, Any)
