from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import json
import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pydantic
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from steward import Manager, RequestContext
from steward.errors import InvalidArguments, NoSuchMethod, UnsupportedVersion
from steward.rpc import (
    Dispatcher,
    RPCClient,
    RPCServer,
    Serializer,
    Target,
    get_transport,
    lenient,
    wire,
)
from steward.rpc.transports.base import Transport
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
    flavor = {"name": "m1.small", "vcpus": 2}
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
            "argument `instance_id` must be str: Input should be a valid string, got an integer 5",
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


class Kind(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Typed:
    """One method per type the dispatcher checks, each returning what it received."""

    target = Target(version="1.0")

    def integer(self, context: RequestContext, value: int) -> object:
        return value

    def number(self, context: RequestContext, value: float) -> object:
        return value

    def flag(self, context: RequestContext, value: bool) -> object:
        return value

    def text(self, context: RequestContext, value: str) -> object:
        return value

    def integers(self, context: RequestContext, value: list[int]) -> object:
        return value

    def mapping(self, context: RequestContext, value: dict[str, int]) -> object:
        return value

    def optional(self, context: RequestContext, value: int | None = None) -> object:
        return value

    def moment(self, context: RequestContext, value: datetime.datetime) -> object:
        return value

    def day(self, context: RequestContext, value: datetime.date) -> object:
        return value

    def identifier(self, context: RequestContext, value: uuid.UUID) -> object:
        return value

    def amount(self, context: RequestContext, value: decimal.Decimal) -> object:
        return value

    def kind(self, context: RequestContext, value: Kind) -> object:
        return value

    def pair(self, context: RequestContext, value: tuple[int, str]) -> object:
        return value

    def flavor(self, context: RequestContext, value: Flavor) -> object:
        return value

    def anything(self, context: RequestContext, value: Any) -> object:
        return value

    @lenient
    def loose(self, context: RequestContext, value: int, when: datetime.datetime) -> object:
        return [value, when]


@pytest.fixture
def typed() -> Dispatcher:
    return Dispatcher([Typed()])


async def call_typed(dispatcher: Dispatcher, method: str, **args: Any) -> object:
    return await dispatcher.dispatch(request(method, args, version="1.0"))


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        pytest.param(
            "integer",
            "12",
            "must be int: Input should be a valid integer, got a string '12'",
            id="int-string",
        ),
        pytest.param(
            "integer",
            True,
            "must be int: Input should be a valid integer, got a boolean True",
            id="int-true",
        ),
        pytest.param(
            "integer",
            1.5,
            "must be int: Input should be a valid integer, got a number 1.5",
            id="int-float",
        ),
        pytest.param(
            "integer",
            12.0,
            "must be int: Input should be a valid integer, got a number 12.0",
            id="int-whole-float",
        ),
        pytest.param(
            "number",
            "1.0",
            "must be float: Input should be a valid number, got a string '1.0'",
            id="float-string",
        ),
        pytest.param(
            "number",
            False,
            "must be float: Input should be a valid number, got a boolean False",
            id="float-bool",
        ),
        pytest.param(
            "flag",
            1,
            "must be bool: Input should be a valid boolean, got an integer 1",
            id="bool-int",
        ),
        pytest.param(
            "flag",
            "true",
            "must be bool: Input should be a valid boolean, got a string 'true'",
            id="bool-string",
        ),
        pytest.param(
            "text", 5, "must be str: Input should be a valid string, got an integer 5", id="str-int"
        ),
        pytest.param(
            "text", None, "must be str: Input should be a valid string, got null", id="str-null"
        ),
        pytest.param(
            "integers",
            {"a": 1},
            "must be list[int]: Input should be a valid list, got an object {'a': 1}",
            id="list-object",
        ),
        pytest.param(
            "integers",
            [1, "2"],
            "argument `value.1` (value: list[int]): Input should be a valid integer, "
            "got a string '2'",
            id="list-item",
        ),
        pytest.param(
            "mapping",
            [1],
            "must be dict[str, int]: Input should be a valid dictionary, got an array [1]",
            id="dict-array",
        ),
        pytest.param(
            "mapping",
            {"a": "1"},
            "argument `value.a` (value: dict[str, int]): Input should be a valid integer, "
            "got a string '1'",
            id="dict-item",
        ),
        pytest.param(
            "optional", "3", "Input should be a valid integer, got a string '3'", id="optional"
        ),
        pytest.param(
            "moment",
            1_700_000_000,
            "must be datetime: Input should be a valid datetime, got an integer 1700000000",
            id="datetime-int",
        ),
        pytest.param(
            "moment",
            "yesterday",
            "must be datetime: Input should be a valid datetime",
            id="datetime-word",
        ),
        pytest.param(
            "identifier", "not-a-uuid", "must be UUID: Input should be a valid UUID", id="uuid"
        ),
        pytest.param(
            "kind",
            "medium",
            "must be Kind: Input should be 'small' or 'large', got a string 'medium'",
            id="enum",
        ),
        pytest.param(
            "flavor",
            {"name": "m1", "vcpus": "2"},
            "argument `value.vcpus` (value: Flavor): Input should be a valid integer, "
            "got a string '2'",
            id="model-field",
        ),
    ],
)
@pytest.mark.parametrize("via", ["dispatcher", "memory"])
async def test_mistyped_arguments_are_refused_naming_the_argument_type_and_value(
    typed: Dispatcher,
    typed_transport: Transport,
    via: str,
    method: str,
    value: Any,
    message: str,
) -> None:
    client = RPCClient(typed_transport, Target("typed", version="1.0"))
    sending = (  # the dispatcher itself, or what a caller gets through the wire
        call_typed(typed, method, value=value)
        if via == "dispatcher"
        else client.call(RequestContext(), method, value=value)
    )
    with pytest.raises(InvalidArguments) as caught:
        await sending
    assert str(caught.value).startswith(f"{method}(): argument `value")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        pytest.param("integer", 2**70, 2**70, id="int-big"),
        pytest.param("number", 1, 1.0, id="float-from-int"),
        pytest.param("number", math.inf, math.inf, id="float-infinity"),
        pytest.param("optional", None, None, id="optional-null"),
        pytest.param(
            "moment",
            "2026-11-25T10:00:00+00:00",
            datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC),
            id="datetime-iso",
        ),
        pytest.param("day", "2026-11-25", datetime.date(2026, 11, 25), id="date-iso"),
        pytest.param(
            "identifier",
            "12345678-1234-5678-1234-567812345678",
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            id="uuid-string",
        ),
        pytest.param("amount", "1.10", decimal.Decimal("1.10"), id="decimal-string"),
        pytest.param("kind", "small", Kind.SMALL, id="enum-value"),
        pytest.param("pair", [1, "a"], (1, "a"), id="tuple-array"),
        pytest.param("text", "\ud800", "\ud800", id="lone-surrogate"),
        pytest.param("anything", {"x": ["1", 2]}, {"x": ["1", 2]}, id="any"),
        pytest.param("flavor", {"name": "m1", "vcpus": 2}, Flavor(name="m1", vcpus=2), id="model"),
    ],
)
async def test_json_forms_still_become_their_types(
    typed: Dispatcher, method: str, value: Any, expected: Any
) -> None:
    result = await call_typed(typed, method, value=value)
    assert result == expected
    assert type(result) is type(expected)


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=()), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


# What each strict method accepts: exactly its JSON type, nothing that merely converts to it.
ACCEPTS: dict[str, Callable[[Any], bool]] = {
    "integer": lambda value: type(value) is int,
    "number": lambda value: type(value) is float or (type(value) is int and fits_float(value)),
    "flag": lambda value: type(value) is bool,
    "text": lambda value: type(value) is str,
    "integers": lambda value: type(value) is list and all(type(item) is int for item in value),
    "mapping": lambda value: (
        type(value) is dict and all(type(item) is int for item in value.values())
    ),
    "optional": lambda value: value is None or type(value) is int,
    "anything": lambda value: True,
}


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(sorted(ACCEPTS)), value=any_json)
@example(method="integer", value=2**70)
@example(method="number", value=2**1100)
@example(method="number", value=math.nan)
@example(method="text", value="\ud800")
@example(method="flag", value=0)
def test_strict_methods_accept_exactly_their_json_type(method: str, value: Any) -> None:
    # Through the wire as a peer sends it, so JSON edge values (NaN, big ints) are in play.
    body = wire.encode(wire.request(method, {"value": value}, {}, version="1.0"))
    request = wire.parse_request(wire.decode(body))
    dispatcher = Dispatcher([Typed()])
    if ACCEPTS[method](value):
        result = asyncio.run(dispatcher.dispatch(request))
        assert json.dumps(result) == json.dumps(float(value) if method == "number" else value)
    else:
        with pytest.raises(InvalidArguments, match=f"^{method}\\(\\): argument `value"):
            asyncio.run(dispatcher.dispatch(request))


async def test_a_lenient_method_converts_as_pydantic_lax_mode(typed: Dispatcher) -> None:
    result = await call_typed(typed, "loose", value="12", when=1_700_000_000)
    assert result == [12, datetime.datetime.fromtimestamp(1_700_000_000, tz=datetime.UTC)]
    with pytest.raises(InvalidArguments, match="argument `value` must be int"):
        await call_typed(typed, "loose", value="twelve", when=1)


async def test_lenient_survives_the_tracing_wrapper_of_manager_methods() -> None:
    class Loose(Manager):
        target = Target(version="1.0")

        @lenient
        def grow(self, context: RequestContext, by: int) -> int:
            return by + 1

        def grow_strictly(self, context: RequestContext, by: int) -> int:
            return by + 1

    dispatcher = Dispatcher([Loose(host="h")])
    assert await call_typed(dispatcher, "grow", by="2") == 3
    with pytest.raises(InvalidArguments, match="argument `by` must be int"):
        await call_typed(dispatcher, "grow_strictly", by="2")


async def test_every_bad_argument_is_named_at_once(typed: Dispatcher) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await call_typed(typed, "loose", value="x", extra=1)
    message = str(caught.value)
    assert "argument `value` must be int" in message
    assert "unexpected argument `extra`" in message
    assert "missing required argument `when`" in message


async def test_a_long_bad_value_is_shortened_in_the_error(typed: Dispatcher) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await call_typed(typed, "integer", value="9" * 100_000)
    assert len(str(caught.value)) < 300
    assert "(100002 characters)" in str(caught.value)


async def test_objects_the_serializer_made_are_checked_as_objects() -> None:
    dispatcher = Dispatcher([Tags()], serializer=TaggingSerializer())
    with pytest.raises(
        InvalidArguments,
        match="must be Tagged: Input should be an instance of Tagged, got an integer 5",
    ):
        await dispatcher.dispatch(request("upper", {"item": 5}, version="1.0"))


@pytest.mark.parametrize(
    ("context", "message"),
    [
        pytest.param(
            {"is_admin": "yes"},
            "`is_admin` must be true or false, got str 'yes'",
            id="admin-string",
        ),
        pytest.param(
            {"read_only": 1}, "`read_only` must be true or false, got int 1", id="read-only-int"
        ),
        pytest.param(
            {"show_deleted": "false"}, "`show_deleted` must be true or false", id="show-deleted"
        ),
        pytest.param(
            {"roles": "admin"}, "`roles` must be a list of strings, got 'admin'", id="roles"
        ),
        pytest.param(
            {"read_deleted": "maybe"},
            "`read_deleted` must be one of no, yes, only",
            id="read-deleted",
        ),
        pytest.param({"timestamp": "noon"}, "`timestamp` must be an ISO 8601 time", id="timestamp"),
    ],
)
async def test_a_context_that_cannot_be_restored_is_refused(
    typed: Dispatcher, context: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await typed.dispatch(request("integer", {"value": 1}, version="1.0", context=context))
    assert str(caught.value).startswith("integer(): the request context cannot be used: ")
    assert message in str(caught.value)


@pytest.fixture
async def typed_transport() -> AsyncIterator[Transport]:
    transport = get_transport("memory://")
    server = RPCServer(transport, Target("typed", "h1"), [Typed()])
    await server.start()
    yield transport
    await server.stop()
    await server.wait()
    await transport.close()


@pytest.fixture
def typed_server(typed_transport: Transport) -> RPCClient:
    return RPCClient(typed_transport, Target("typed", version="1.0"))


async def test_a_caller_gets_the_precise_error_over_memory(typed_server: RPCClient) -> None:
    context = RequestContext()
    with pytest.raises(
        InvalidArguments, match=r"argument `value` must be int: .* got a string '12'"
    ):
        await typed_server.call(context, "integer", value="12")
    assert await typed_server.call(context, "loose", value="12", when="2026-11-25T10:00:00") == [
        12,
        "2026-11-25T10:00:00",
    ]
    assert await typed_server.call(context, "integer", value=12) == 12


async def test_a_caller_with_a_mistyped_context_flag_is_refused_over_memory(
    typed_transport: Transport,
) -> None:
    client = RPCClient(typed_transport, Target("typed", version="1.0"), serializer=FlagSerializer())
    with pytest.raises(InvalidArguments, match="`is_admin` must be true or false, got str 'yes'"):
        await client.call(RequestContext(), "integer", value=1)


class FlagSerializer(Serializer):
    """Sends a context whose is_admin flag is a string, as a careless peer would."""

    def serialize_context(self, context: RequestContext | None) -> dict[str, Any]:
        return super().serialize_context(context) | {"is_admin": "yes"}


async def test_nan_and_big_integers_reach_the_method_and_come_back_over_memory(
    typed_server: RPCClient,
) -> None:
    context = RequestContext()
    sent = {"n": math.nan, "big": 2**70, "neg": -(2**64), "inf": -math.inf}
    echoed = await typed_server.call(context, "anything", value=sent)
    assert math.isnan(echoed["n"])
    assert echoed["big"] == 2**70
    assert type(echoed["big"]) is int
    assert echoed["neg"] == -(2**64)
    assert echoed["inf"] == -math.inf
    assert await typed_server.call(context, "integer", value=2**70) == 2**70


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
