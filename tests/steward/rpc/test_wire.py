from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.errors import (
    ConfigError,
    InvalidArguments,
    MalformedMessage,
    MessageTooLarge,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    UnsupportedVersion,
)
from steward.rpc import wire

# The golden request captured from oslo.messaging 18.3.1 (shared/reference/oslo-wire.md §7).
GOLDEN_REQUEST = (  # fmt: skip
    b'{"oslo.version": "2.0", "oslo.message": "{\\"method\\": \\"echo\\", \\"args\\": {\\"x\\": 1,'
    b' \\"y\\": \\"two\\"}, \\"version\\": \\"1.2\\",'
    b' \\"_msg_id\\": \\"7b7afa20162a41a9a826884486456ec2\\",'
    b' \\"_reply_q\\": \\"reply_97bfd414d9bf49559c6f84d1a901c36f\\", \\"_timeout\\": null,'
    b' \\"_unique_id\\": \\"8ea7a70208d34c198eced35299e49e94\\", \\"_context_user\\": \\"u1\\",'
    b' \\"_context_project_id\\": \\"p1\\", \\"_context_is_admin\\": true,'
    b' \\"_context_request_id\\": \\"req-11111111-2222-3333-4444-555555555555\\",'
    b' \\"_context_roles\\": [\\"admin\\"]}"}'
)


def test_golden_oslo_request_parses() -> None:
    request = wire.parse_request(wire.decode(GOLDEN_REQUEST))
    assert request.method == "echo"
    assert request.args == {"x": 1, "y": "two"}
    assert request.version == "1.2"
    assert request.namespace is None
    assert request.msg_id == "7b7afa20162a41a9a826884486456ec2"
    assert request.reply_q == "reply_97bfd414d9bf49559c6f84d1a901c36f"
    assert request.unique_id == "8ea7a70208d34c198eced35299e49e94"
    assert request.context == {
        "user": "u1",
        "project_id": "p1",
        "is_admin": True,
        "request_id": "req-11111111-2222-3333-4444-555555555555",
        "roles": ["admin"],
    }


def test_request_is_double_encoded_in_oslo_key_order() -> None:
    inner = wire.request(
        "echo",
        {"x": 1},
        {"user": "u1"},
        version="1.2",
        msg_id="m1",
        reply_q="reply_q1",
    )
    outer = orjson.loads(wire.encode(inner))
    assert list(outer) == ["oslo.version", "oslo.message"]
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    decoded = orjson.loads(outer["oslo.message"])
    assert list(decoded) == [
        "method",
        "args",
        "version",
        "_msg_id",
        "_reply_q",
        "_timeout",
        "_unique_id",
        "_context_user",
    ]


def test_cast_has_no_reply_fields() -> None:
    inner = wire.request("ping", {}, {}, namespace="baseapi")
    assert "_msg_id" not in inner
    assert "_reply_q" not in inner
    assert "_timeout" not in inner
    assert inner["namespace"] == "baseapi"
    assert len(inner["_unique_id"]) == 32


def test_legacy_body_without_envelope_is_accepted() -> None:
    body = orjson.dumps({"method": "ping", "args": {}})
    assert wire.parse_request(wire.decode(body)).method == "ping"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"not json", "body is not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "must be a JSON object", id="array"),
        pytest.param(
            b'{"oslo.version": "3.0", "oslo.message": "{}"}',
            "unsupported envelope version '3.0'",
            id="version-3",
        ),
        pytest.param(
            b'{"oslo.version": "2.1", "oslo.message": "{}"}',
            "unsupported envelope version '2.1'",
            id="version-2.1",
        ),
        pytest.param(
            b'{"oslo.version": "2.0", "oslo.message": {"a": 1}}',
            "must be a JSON string",
            id="message-not-string",
        ),
        pytest.param(
            b'{"oslo.version": "2.0", "oslo.message": "{nope"}', "is not JSON", id="inner-broken"
        ),
        pytest.param(
            b'{"oslo.version": "2.0", "oslo.message": "[1]"}', "must hold a JSON object", id="inner"
        ),
    ],
)
def test_malformed_bodies_are_named(body: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        wire.decode(body)


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        pytest.param({"args": {}}, "no method name", id="no-method"),
        pytest.param({"method": "", "args": {}}, "no method name", id="empty-method"),
        pytest.param(
            {"method": "m", "args": [1]}, "'args' of 'm' must be a JSON object", id="args"
        ),
        pytest.param({"method": "m", "namespace": 1}, "'namespace' must be a string", id="ns"),
        pytest.param({"method": "m", "version": 1.0}, "'version' must be a string", id="version"),
    ],
)
def test_bad_requests_are_named(inner: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        wire.parse_request(inner)


def test_size_limits() -> None:
    inner = wire.request("m", {"blob": "x" * 1000}, {})
    with pytest.raises(MessageTooLarge, match="larger than max_message_size"):
        wire.encode(inner, max_size=500)
    body = wire.encode(inner)
    with pytest.raises(MessageTooLarge):
        wire.decode(body, max_size=500)


def test_unserializable_argument_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        wire.encode(wire.request("m", {"x": object()}, {}))


# --- JSON as oslo's peers write it (stdlib json: NaN, Infinity, integers of any size) -----------


def oslo_body(inner: dict[str, Any]) -> bytes:
    """A body as oslo.messaging writes it: jsonutils.dumps inside kombu's json.dumps."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def oslo_read(body: bytes) -> Any:
    """A body as oslo.messaging reads it."""
    return json.loads(json.loads(body)["oslo.message"])


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON values, NaN equal to NaN, 1 not equal to 1.0, -0.0 not equal to 0.0."""
    return json.dumps(left) == json.dumps(right)


EDGE_VALUES = [
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="infinity"),
    pytest.param(-math.inf, id="-infinity"),
    pytest.param(2**63 - 1, id="int64-max"),
    pytest.param(2**63, id="int64-max+1"),
    pytest.param(-(2**63), id="int64-min"),
    pytest.param(-(2**63) - 1, id="int64-min-1"),
    pytest.param(2**64 - 1, id="uint64-max"),
    pytest.param(2**64, id="uint64-max+1"),
    pytest.param(2**70, id="2**70"),
    pytest.param(-(2**200), id="-2**200"),
    pytest.param(-0.0, id="-0.0"),
    pytest.param(1.7976931348623157e308, id="max-float"),
    pytest.param(9.3e18, id="float-above-2**63"),
    pytest.param(5e-324, id="min-subnormal"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param([1, [math.nan, {"k": 2**70}]], id="nested"),
]


@pytest.mark.parametrize("value", EDGE_VALUES)
def test_values_from_an_oslo_peer_arrive_exactly(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    request = wire.parse_request(wire.decode(oslo_body({"method": "m", "args": {"v": value}})))
    assert same_json(request.args["v"], expected)
    reply = wire.parse_reply(wire.decode(oslo_body(wire.reply("m1", result=value))))
    assert same_json(reply.result, expected)


@pytest.mark.parametrize("value", EDGE_VALUES)
def test_values_steward_sends_reach_an_oslo_peer_exactly(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    assert same_json(
        oslo_read(wire.encode(wire.request("m", {"v": value}, {})))["args"]["v"], expected
    )
    assert same_json(oslo_read(wire.encode(wire.reply("m1", result=value)))["result"], expected)
    notification = {"event_type": "e", "payload": {"v": value}, "priority": "INFO"}
    assert same_json(oslo_read(wire.encode(notification))["payload"]["v"], expected)
    assert same_json(wire.decode(oslo_body(notification))["payload"]["v"], expected)


def test_nan_and_big_integers_are_written_as_oslo_writes_them() -> None:
    text = orjson.loads(wire.encode(wire.request("m", {"n": math.nan, "big": 2**70}, {})))
    message = text["oslo.message"]
    assert '"n": NaN' in message
    assert f'"big": {2**70}' in message


def test_legacy_body_with_nan_and_big_integers_is_read_exactly() -> None:
    inner = wire.decode(json.dumps({"method": "m", "args": {"n": math.nan, "b": 2**70}}).encode())
    assert math.isnan(inner["args"]["n"])
    assert inner["args"]["b"] == 2**70
    assert type(inner["args"]["b"]) is int


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_deeper_than_orjson_writes_is_sent_as_oslo_would() -> None:
    value = nested(400)  # orjson refuses to write beyond 254 levels; Python's json does not
    body = wire.encode(wire.request("m", {"v": value}, {}))
    assert oslo_read(body)["args"]["v"] == value
    assert wire.decode(body)["args"]["v"] == value
    with pytest.raises(TypeError, match="nested too deeply to be sent as JSON"):
        wire.encode(wire.request("m", {"v": nested(50_000)}, {}))


def test_failures_carry_nan_and_big_integers() -> None:
    failure = wire.serialize_failure(ValueError(math.nan, 2**70))
    again = wire.deserialize_failure(failure)
    assert type(again) is ValueError
    assert math.isnan(again.args[0])
    assert again.args[1] == 2**70


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b'{"method": "m", "args": {"n": nan}}', "body is not JSON", id="nan-lowercase"
        ),
        pytest.param(b'{"method": "m", "args": {"n": NaN', "body is not JSON", id="truncated"),
        pytest.param(b'{"method": "m", "args": {"n": -Inf}}', "body is not JSON", id="-inf"),
        pytest.param(b'{"method": "\xff"}', "body is not UTF-8 text", id="not-utf8"),
        pytest.param(b"[" * 100_000, "nested too deeply", id="deep"),
        pytest.param(
            oslo_body({"method": "m"})[:-3] + b'NaN"}', "'oslo.message' is not JSON", id="inner"
        ),
    ],
)
def test_malformed_json_is_still_named(body: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        wire.decode(body)


edge_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [-0.0, 5e-324, 1.7976931348623157e308, float(2**63), -float(2**63), 9.3e18]
)
edge_integers = (
    st.integers()
    | st.integers(-(2**600), 2**600)
    | st.sampled_from([2**63, -(2**63), 2**64]).flatmap(
        lambda edge: st.integers(edge - 3, edge + 3)
    )
)
# Every code point, lone surrogates included (the stdlib writes them as \\ud800 escapes).
every_character = st.characters(exclude_categories=())
lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
edge_text = st.text(every_character | lone_surrogates, max_size=12)
json_edge_scalars = st.none() | st.booleans() | edge_integers | edge_floats | edge_text
json_edge_values = st.recursive(
    json_edge_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edge_text, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=400)
@given(json_edge_values)
def test_edge_values_round_trip_as_python_json_does(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    assert same_json(wire.loads(wire.dumps(value)), expected)
    assert same_json(json.loads(wire.dumps(value)), expected)
    assert same_json(wire.loads(json.dumps(value)), expected)
    # Both directions between steward and an oslo peer, in a request and in a reply.
    body = wire.encode(wire.request("m", {"v": value}, {}))
    assert same_json(oslo_read(body)["args"]["v"], expected)
    assert same_json(wire.parse_request(wire.decode(body)).args["v"], expected)
    oslo_reply = oslo_body(wire.reply("m1", result=value))
    assert same_json(wire.parse_reply(wire.decode(oslo_reply)).result, expected)


@settings(max_examples=300)
@given(st.dictionaries(edge_text, json_edge_values, max_size=6), st.booleans())
def test_decode_survives_edge_values_in_any_field(inner: dict[str, Any], legacy: bool) -> None:
    body = json.dumps(inner).encode() if legacy else oslo_body(inner)
    with contextlib.suppress(MalformedMessage):
        decoded = wire.decode(body)
        with contextlib.suppress(MalformedMessage):
            wire.parse_request(decoded)
        with contextlib.suppress(MalformedMessage):
            wire.parse_reply(decoded)


def test_reply_shape_matches_oslo() -> None:
    inner = wire.reply("m1", result={"a": 1})
    assert list(inner) == ["result", "failure", "ending", "_msg_id", "_unique_id"]
    reply = wire.parse_reply(inner)
    assert (reply.msg_id, reply.result, reply.failure, reply.ending) == ("m1", {"a": 1}, None, True)


def raise_key_error() -> None:
    raise KeyError("k")


def test_failure_round_trip_for_builtins_and_steward_errors() -> None:
    try:
        raise_key_error()
    except KeyError as exc:
        failure = wire.serialize_failure(exc)
    data = orjson.loads(failure)
    assert data["class"] == "KeyError"
    assert data["module"] == "builtins"
    assert data["args"] == ["k"]
    assert data["tb"][0].startswith("Traceback")
    again = wire.deserialize_failure(failure)
    assert type(again) is KeyError
    assert again.args == ("k",)
    assert "Remote traceback" in again.__notes__[0]

    no_method = wire.deserialize_failure(wire.serialize_failure(NoSuchMethod("reboot")))
    assert isinstance(no_method, NoSuchMethod)
    assert no_method.method == "reboot"
    assert str(no_method) == "Endpoint does not support RPC method reboot"


# What an oslo.messaging 18.3.1 server sends for these failures, captured on RabbitMQ (the
# traceback shortened): oslo's class, module and message, and the message alone in `args`.
def oslo_failure(module: str, cls: str, message: str) -> str:
    tb = ["Traceback (most recent call last):\n", f"{module}.{cls}: {message}\n"]
    data = {"class": cls, "module": module, "message": message, "tb": tb}
    return json.dumps({**data, "args": [message], "kwargs": {}})


OSLO_DISPATCHER = "oslo_messaging.rpc.dispatcher"


@pytest.mark.parametrize(
    ("exc", "module", "cls"),
    [
        pytest.param(NoSuchMethod("nope"), OSLO_DISPATCHER, "NoSuchMethod", id="no-such-method"),
        pytest.param(
            UnsupportedVersion("2.0", "whoami"), OSLO_DISPATCHER, "UnsupportedVersion", id="version"
        ),
        pytest.param(
            UnsupportedVersion("2.0"), OSLO_DISPATCHER, "UnsupportedVersion", id="version-only"
        ),
        pytest.param(
            MessagingTimeout("Timed out waiting for a reply to message ID abc"),
            "oslo_messaging.exceptions",
            "MessagingTimeout",
            id="timeout",
        ),
        pytest.param(
            InvalidArguments("whoami(): unexpected argument `bogus`"),
            "builtins",
            "TypeError",
            id="invalid-arguments",
        ),
    ],
)
def test_errors_oslo_knows_are_sent_as_an_oslo_server_sends_them(
    exc: Exception, module: str, cls: str
) -> None:
    failure = wire.serialize_failure(exc)
    data = orjson.loads(failure)
    # What oslo's client reads, as an oslo server writes it for the same failure.
    assert (data["class"], data["module"], data["message"]) == (cls, module, str(exc))
    assert (data["args"], data["kwargs"]) == ([str(exc)], {})
    assert list(data)[:6] == ["class", "module", "message", "tb", "args", "kwargs"]
    # A steward caller gets steward's class back, with its own args.
    again = wire.deserialize_failure(failure)
    assert type(again) is type(exc)
    assert again.args == exc.args
    assert str(again) == str(exc)
    assert "Remote traceback" in again.__notes__[0]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        pytest.param(
            oslo_failure(
                OSLO_DISPATCHER, "NoSuchMethod", "Endpoint does not support RPC method nope"
            ),
            NoSuchMethod("nope"),
            id="no-such-method",
        ),
        pytest.param(
            oslo_failure(
                OSLO_DISPATCHER,
                "UnsupportedVersion",
                "Endpoint does not support RPC version 2.0. Attempted method: whoami",
            ),
            UnsupportedVersion("2.0", "whoami"),
            id="version",
        ),
        pytest.param(
            oslo_failure(
                OSLO_DISPATCHER, "UnsupportedVersion", "Endpoint does not support RPC version 2.0"
            ),
            UnsupportedVersion("2.0"),
            id="version-only",
        ),
        pytest.param(
            oslo_failure("oslo_messaging.exceptions", "MessagingTimeout", "Timed out: abc"),
            MessagingTimeout("Timed out: abc"),
            id="timeout",
        ),
    ],
)
def test_oslo_errors_arrive_as_steward_errors_without_importing_oslo(
    failure: str, expected: Exception
) -> None:
    again = wire.deserialize_failure(failure)  # nothing allowed: mapped by name
    assert type(again) is type(expected)
    assert again.args == expected.args
    assert str(again) == orjson.loads(failure)["message"]
    assert again.__notes__ == [
        "Remote traceback:\nTraceback (most recent call last):\n"
        f"{orjson.loads(failure)['module']}.{type(expected).__name__}: {again}"
    ]


def test_a_type_error_is_invalid_arguments_only_when_steward_says_so() -> None:
    plain = wire.deserialize_failure(oslo_failure("builtins", "TypeError", "f() got 'x'"))
    assert type(plain) is TypeError
    assert plain.args == ("f() got 'x'",)
    data = orjson.loads(wire.serialize_failure(InvalidArguments("f(): unexpected argument `x`")))
    assert data["steward"] == {
        "class": "InvalidArguments",
        "args": ["f(): unexpected argument `x`"],
    }
    # The steward key names one of the classes sent under another name, under those names only.
    for own in ({"class": "ConfigError", "args": ["x"]}, {"class": "NoSuchMethod", "args": ["x"]}):
        assert type(wire.deserialize_failure(json.dumps({**data, "steward": own}))) is TypeError


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            {"class": "NoSuchMethod", "module": OSLO_DISPATCHER, "message": "gone"},
            id="other-wording",
        ),
        pytest.param(
            {
                "class": "UnsupportedVersion",
                "module": OSLO_DISPATCHER,
                "message": "Endpoint does not support RPC version 2.0",
                "steward": {"class": "UnsupportedVersion", "args": ["3.0"]},
            },
            id="steward-args-disagree-with-message",
        ),
    ],
)
def test_a_mapped_error_never_changes_the_remote_message(data: dict[str, Any]) -> None:
    again = wire.deserialize_failure(json.dumps({"tb": [], "args": [], **data}))
    if isinstance(again, RemoteError):
        assert (again.exc_type, again.value) == (data["class"], data["message"])
    else:
        assert str(again) == data["message"]


@given(st.sampled_from(["NoSuchMethod", "UnsupportedVersion"]), st.text(max_size=40))
def test_oslo_dispatch_errors_keep_any_message(cls: str, rest: str) -> None:
    kind = "method" if cls == "NoSuchMethod" else "version"
    message = f"Endpoint does not support RPC {kind} {rest}"
    again = wire.deserialize_failure(oslo_failure(OSLO_DISPATCHER, cls, message))
    if isinstance(again, RemoteError):
        assert (again.exc_type, again.value) == (cls, message)
    else:
        assert type(again).__name__ == cls
        assert str(again) == message


NAMES = st.sampled_from(
    ["NoSuchMethod", "UnsupportedVersion", "MessagingTimeout", "InvalidArguments", "TypeError"]
)
MODULES = st.sampled_from([OSLO_DISPATCHER, "oslo_messaging.exceptions", "builtins"])
JSON_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=10)


@given(
    cls=NAMES,
    module=MODULES,
    message=st.text(max_size=30),
    own=st.none() | JSON_VALUES | st.fixed_dictionaries({"class": NAMES | JSON_VALUES}),
    own_args=st.none() | JSON_VALUES | st.lists(JSON_VALUES, max_size=3),
)
def test_any_failure_under_mapped_names_keeps_its_message(
    cls: str, module: str, message: str, own: Any, own_args: Any
) -> None:
    if isinstance(own, dict):
        own["args"] = own_args
    data = {"class": cls, "module": module, "message": message, "tb": [], "args": [message]}
    again = wire.deserialize_failure(json.dumps({**data, "kwargs": {}, "steward": own}))
    if isinstance(again, RemoteError):
        assert (again.exc_type, again.value) == (cls, message)
    elif type(again) is TypeError:
        assert again.args == (message,)
    else:
        assert str(again) == message


def test_steward_errors_oslo_has_no_name_for_keep_theirs() -> None:
    data = orjson.loads(wire.serialize_failure(ConfigError("option `x` is wrong")))
    assert (data["class"], data["module"], data["args"]) == (
        "ConfigError",
        "steward.errors",
        ["option `x` is wrong"],
    )
    assert "steward" not in data


class Unlisted(Exception):
    pass


def test_exceptions_from_modules_not_allowed_arrive_as_remote_error() -> None:
    failure = wire.serialize_failure(Unlisted("nope"))
    remote = wire.deserialize_failure(failure)
    assert isinstance(remote, RemoteError)
    assert remote.exc_type == "Unlisted"
    assert remote.value == "nope"
    allowed = wire.deserialize_failure(failure, [Unlisted.__module__])
    assert type(allowed) is Unlisted


def test_a_failure_never_imports_a_module_that_is_not_allowed() -> None:
    assert "this" not in sys.modules  # `import this` prints the Zen of Python
    failure = orjson.dumps(
        {"class": "Zen", "module": "this", "message": "m", "tb": [], "args": [], "kwargs": {}}
    ).decode()
    assert isinstance(wire.deserialize_failure(failure), RemoteError)
    assert "this" not in sys.modules


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"class": "SystemExit", "module": "builtins"}, id="not-an-exception"),
        pytest.param({"class": "open", "module": "builtins"}, id="not-a-class"),
        pytest.param({"class": "os.system", "module": "builtins"}, id="dotted"),
        pytest.param(
            {"class": "KeyError", "module": "builtins", "kwargs": {"nope": 1}}, id="bad-kwargs"
        ),
    ],
)
def test_unusable_failures_become_remote_errors(data: dict[str, Any]) -> None:
    failure = orjson.dumps({"message": "m", "tb": ["line\n"], **data}).decode()
    assert isinstance(wire.deserialize_failure(failure), RemoteError)


def test_non_json_failure_is_a_remote_error() -> None:
    remote = wire.deserialize_failure("not json")
    assert isinstance(remote, RemoteError)
    assert remote.value == "not json"


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_decode_raises_only_malformed_message_on_arbitrary_bytes(body: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        wire.parse_request(wire.decode(body))


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_decode_survives_arbitrary_envelopes(inner: dict[str, Any]) -> None:
    body = orjson.dumps({"oslo.version": "2.0", "oslo.message": orjson.dumps(inner).decode()})
    decoded = wire.decode(body)
    assert decoded == inner
    with contextlib.suppress(MalformedMessage):
        wire.parse_request(decoded)
    with contextlib.suppress(MalformedMessage):
        wire.parse_reply(decoded)
