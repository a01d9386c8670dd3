from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

from steward import Manager, RequestContext
from steward.errors import InvalidArguments, NoSuchMethod, UnsupportedVersion
from steward.rpc import Dispatcher, Serializer, Target
from steward.rpc.wire import Request


class Flavor(pydantic.BaseModel):
    name: str
    vcpus: int


class ComputeManager(Manager):
    target = Target(version="5.2")

    def reboot(self, context: RequestContext, instance_id: str, *, hard: bool = False) -> str:
        return f"{instance_id}:{'hard' if hard else 'soft'}"

    async def resize(self, context: RequestContext, flavor: Flavor) -> int:
        return flavor.vcpus * 2

    def tag(self, context: RequestContext, **tags: str) -> dict[str, str]:
        return tags

    def when(self, context: RequestContext, at: datetime.datetime) -> str:
        return at.isoformat()


class BaseAPI:
    target = Target(namespace="baseapi", version="1.1")

    def ping(self, context: RequestContext, arg: Any) -> Any:
        return arg


def request(method: str, args: dict[str, Any] | None = None, **fields: Any) -> Request:
    values: dict[str, Any] = {
        "method": method,
        "args": args or {},
        "context": {"request_id": "req-d"},
        "namespace": None,
        "version": "5.0",
        "msg_id": None,
        "reply_q": None,
        "unique_id": None,
        "call_monitor_timeout": None,
    }
    values.update(fields)
    return Request(**values)


@pytest.fixture
def dispatcher() -> Dispatcher:
    return Dispatcher([ComputeManager(host="h"), BaseAPI()])


async def test_traced_manager_methods_are_dispatched_with_validated_arguments(
    dispatcher: Dispatcher,
) -> None:
    assert await dispatcher.dispatch(request("reboot", {"instance_id": "i-1"})) == "i-1:soft"
    assert await dispatcher.dispatch(request("reboot", {"instance_id": "i-1", "hard": True})) == (
        "i-1:hard"
    )


async def test_pydantic_models_and_datetimes_are_built_from_json(dispatcher: Dispatcher) -> None:
    flavor = {"name": "m1.small", "vcpus": "2"}
    assert await dispatcher.dispatch(request("resize", {"flavor": flavor})) == 4
    at = "2026-11-25T10:00:00+00:00"
    assert await dispatcher.dispatch(request("when", {"at": at})) == at


async def test_var_keyword_methods_accept_extra_arguments(dispatcher: Dispatcher) -> None:
    assert await dispatcher.dispatch(request("tag", {"a": "1", "b": "2"})) == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        pytest.param(
            "reboot", {}, "reboot(): missing required argument `instance_id`", id="missing"
        ),
        pytest.param(
            "reboot",
            {"instance_id": 5},
            "argument `instance_id`: Input should be a valid string",
            id="type",
        ),
        pytest.param(
            "resize", {"flavor": {"name": "x"}}, "argument `flavor.vcpus`", id="nested-model"
        ),
        pytest.param(
            "reboot", {"instance_id": "i", "force": 1}, "unexpected argument `force`", id="extra"
        ),
    ],
)
async def test_bad_arguments_are_refused_before_the_method_runs(
    dispatcher: Dispatcher, method: str, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArguments, match=message.replace("(", r"\(").replace(")", r"\)")):
        await dispatcher.dispatch(request(method, args))


async def test_lifecycle_hooks_and_private_methods_are_not_callable(
    dispatcher: Dispatcher,
) -> None:
    for name in ("init_host", "cleanup_host", "periodic_tasks", "reset", "_run", "__init__"):
        with pytest.raises(NoSuchMethod):
            await dispatcher.dispatch(request(name))
    with pytest.raises(NoSuchMethod):
        await dispatcher.dispatch(request("host"))  # an attribute, not a method


async def test_namespaces_and_versions_select_the_endpoint(dispatcher: Dispatcher) -> None:
    assert (
        await dispatcher.dispatch(request("ping", {"arg": 3}, namespace="baseapi", version="1.0"))
        == 3
    )
    with pytest.raises(UnsupportedVersion):
        await dispatcher.dispatch(request("ping", {"arg": 3}, namespace="baseapi", version="1.2"))
    with pytest.raises(NoSuchMethod):
        await dispatcher.dispatch(request("ping", {"arg": 3}, version="5.2"))
    with pytest.raises(UnsupportedVersion):
        await dispatcher.dispatch(request("reboot", {"instance_id": "i"}, version="5.3"))


def test_lookups_are_built_once_per_method(dispatcher: Dispatcher) -> None:
    first = dispatcher.resolve(None, "5.0", "reboot")
    assert dispatcher.resolve(None, "5.0", "reboot") is first


class Tagged:
    def __init__(self, value: str) -> None:
        self.value = value


class TaggingSerializer(Serializer):
    def serialize_entity(self, context: RequestContext | None, entity: object) -> object:
        return {"tagged": entity.value} if isinstance(entity, Tagged) else entity

    def deserialize_entity(self, context: RequestContext | None, entity: object) -> object:
        if isinstance(entity, dict) and set(entity) == {"tagged"}:
            return Tagged(entity["tagged"])
        return entity


class Tags:
    def upper(self, context: RequestContext, item: Tagged) -> Tagged:
        return Tagged(item.value.upper())


async def test_serializer_carries_user_types_both_ways() -> None:
    dispatcher = Dispatcher([Tags()], serializer=TaggingSerializer())
    result = await dispatcher.dispatch(request("upper", {"item": {"tagged": "a"}}, version="1.0"))
    assert result == {"tagged": "A"}


def test_method_without_a_context_argument_is_refused() -> None:
    class NoContext:
        def bare(self) -> None: ...

    with pytest.raises(InvalidArguments, match="must take the request context"):
        Dispatcher([NoContext()]).resolve(None, "1.0", "bare")


async def test_callable_instance_attributes_are_not_methods() -> None:
    class WithTools(Manager):
        def __init__(self) -> None:
            super().__init__(host="h")
            self.app = lambda context: "internal"  # e.g. a web app or a client object

        def real(self, context: RequestContext) -> str:
            return "ok"

    dispatcher = Dispatcher([WithTools()])
    assert await dispatcher.dispatch(request("real", version="1.0")) == "ok"
    with pytest.raises(NoSuchMethod):
        await dispatcher.dispatch(request("app", version="1.0"))
