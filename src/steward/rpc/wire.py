r"""The message format on the wire: oslo.messaging's 2.0 envelope, requests, replies, failures.

Every transport carries the same bytes, so ``memory://`` exercises exactly what RabbitMQ does.
The format is oslo.messaging's (``shared/reference/oslo-wire.md``), so steward and oslo services
understand each other:

* a body is ``{"oslo.version": "2.0", "oslo.message": "<inner dict as a JSON string>"}``; a body
  that is a plain JSON object without those keys is oslo's legacy 1.0 format and accepted as is;
* a request's inner dict has ``method``, ``args``, optionally ``namespace`` and ``version``,
  ``_msg_id``/``_reply_q``/``_timeout`` for a call, ``_unique_id`` always, and the request
  context flattened into ``_context_<key>`` fields;
* a reply's has ``result``, ``failure`` (null or a JSON string), ``ending``, ``_msg_id`` and
  ``_unique_id``;
* a failure is ``{"class", "module", "message", "tb", "args", "kwargs"}``. The caller re-creates
  the exception only when its module is allowed (``builtins``, ``steward.errors`` and the
  ``allowed_remote_exmods`` setting), and otherwise raises :class:`~steward.errors.RemoteError`.
  Nothing else named by a message is ever imported. No pickle. The failures both sides know
  (no such method, unsupported version, timeout, unexpected arguments) travel under the names an
  oslo server gives them, and come back as steward's classes from either peer.

JSON is read and written as oslo.messaging's peers do (``oslo_serialization.jsonutils``, the
stdlib ``json`` underneath): ``NaN``, ``Infinity`` and ``-Infinity`` tokens, integers of any
size and lone surrogates (``"\ud800"`` escapes) travel exactly. orjson is the fast path; the
stdlib takes over for a message orjson cannot carry exactly. Where orjson fails, that is free: it
refuses to write an integer beyond 64 bits or a lone surrogate, and to read those tokens or
surrogates. Where it would silently change a value — write a non-finite float as ``null``, read
an integer beyond 64 bits as a float — the floats among the user's values (a request's ``args``,
a reply's ``result``, a notification's ``payload``) are looked for; containers of strings, ints
and nulls are passed over in C, so a 1 MiB string costs nothing. The request context's own
fields are not looked at (see docs/rpc.md).

One piece past 400 lines: the envelope, requests, replies and failures are one format, read and
written by the same exact-JSON functions, and a change to one (a key, a version) is a change to
the others a reader must see together.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import json
import os
import re
import traceback
import typing
from collections.abc import Collection, Iterable, Mapping

import orjson

from steward.errors import (
    InvalidArguments,
    MalformedMessage,
    MessageTooLarge,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    UnsupportedVersion,
)
from steward.redact import shorten
from steward.rpc.target import is_version

__all__ = [
    "ENVELOPE_VERSION",
    "Reply",
    "Request",
    "decode",
    "deserialize_failure",
    "dumps",
    "encode",
    "loads",
    "new_id",
    "pack_context",
    "parse_reply",
    "parse_request",
    "reply",
    "request",
    "salvage_reply_address",
    "serialize_failure",
    "unpack_context",
]

ENVELOPE_VERSION = "2.0"
_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
_CONTEXT_PREFIX = "_context_"
_DAY = 86400.0  # a call-monitor timeout beyond a day is no timeout: ignored
_OPTIONS = orjson.OPT_NON_STR_KEYS
_ALWAYS_ALLOWED = frozenset({"builtins", "steward.errors"})
# orjson decodes an integer outside [-2**63, 2**64) as a float and encodes a non-finite float as
# null: a float outside (-2**63, 2**63), or NaN, is where the stdlib must take over.
_WIDE = float(2**63)
# Where a message holds the user's values, the only ones that may be floats steward did not make.
_PAYLOAD_KEYS = ("args", "result", "payload")

JSONDict = dict[str, typing.Any]


def new_id() -> str:
    """Return a fresh message id: 32 hex digits of randomness, as oslo's uuid4 ``.hex``.

    ``os.urandom`` directly: a third of ``uuid4().hex``'s cost, on every message.
    """
    return os.urandom(16).hex()


def _default(value: object) -> object:
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable: {value!r:.80}")


def _stdlib_default(value: object) -> object:
    # The stdlib fallback knows fewer types than orjson (datetimes, UUIDs, enums, dataclasses):
    # give it what orjson makes of them.
    try:
        return orjson.loads(orjson.dumps(value, default=_default, option=_OPTIONS))
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc.__cause__ or exc)) from exc


def _has_inexact_float(value: object) -> bool:
    """Say if ``value`` holds a float orjson does not carry exactly (see ``_WIDE``)."""
    if type(value) in _SCALARS:
        return False
    stack: list[object] = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        if type(item) is float:
            if not -_WIDE < item < _WIDE:
                return True
            continue
        if isinstance(item, dict):
            values: Collection[object] = item.values()
        elif isinstance(item, list | tuple):
            values = item
        else:
            continue
        # A container of strings, ints, booleans and nulls (most of any message) is passed
        # over in C; only one that holds floats or containers is looked at value by value.
        if _SCALARS.issuperset(map(type, values)):
            continue
        for child in values:
            if type(child) not in _SCALARS:
                push(child)
    return False


_SCALARS = frozenset({str, int, bool, type(None)})


def _payload_is_inexact(inner: Mapping[str, object]) -> bool:
    for key in _PAYLOAD_KEYS:
        value = inner.get(key)
        if type(value) in _SCALARS or (
            isinstance(value, dict) and _SCALARS.issuperset(map(type, value.values()))
        ):
            continue  # the usual arguments and results, without a call
        if _has_inexact_float(value):
            return True
    return False


def dumps(value: object) -> bytes:
    """Return ``value`` as JSON bytes, carried exactly as oslo's ``jsonutils.dumps`` carries it.

    ``NaN``/``Infinity`` stay tokens and integers of any size stay integers, where orjson would
    write ``null`` or refuse; otherwise the bytes are orjson's. Raises ``TypeError`` naming the
    value that JSON cannot carry.
    """
    try:
        text = orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        return _stdlib_dumps(value, exc)
    return _stdlib_dumps(value, None) if _has_inexact_float(value) else text


def _stdlib_dumps(value: object, error: orjson.JSONEncodeError | None) -> bytes:
    try:
        # jsonutils.dumps's own settings: allow_nan, ensure_ascii (so lone surrogates are \u
        # escapes and the text is ASCII), ", " and ": " separators.
        return json.dumps(value, default=_stdlib_default).encode()
    except (TypeError, ValueError) as exc:
        # orjson's message is generic; the default hook's names the value.
        cause = error.__cause__ if error is not None and error.__cause__ is not None else exc
        raise TypeError(str(cause)) from exc
    except RecursionError as exc:
        raise TypeError("value is nested too deeply to be sent as JSON") from exc


def loads(data: bytes | str, *, what: str = "data") -> typing.Any:  # noqa: ANN401 - JSON
    """Return the value of a JSON document as the stdlib's ``json.loads`` (and oslo) reads it.

    orjson reads it unless it holds what only the stdlib reads exactly (``NaN``, ``Infinity``,
    lone surrogates, integers beyond 64 bits). Raises :class:`MalformedMessage` starting with
    ``what`` when it is not JSON.
    """
    value, exact = _read(data, what)
    return value if exact or not _has_inexact_float(value) else _stdlib_loads(data, what)


def _read(data: bytes | str, what: str) -> tuple[typing.Any, bool]:
    """Return the value and whether the stdlib read it (so that it is exact already)."""
    try:
        return orjson.loads(data), False
    except orjson.JSONDecodeError:
        return _stdlib_loads(data, what), True


def _stdlib_loads(data: bytes | str, what: str) -> typing.Any:  # noqa: ANN401 - JSON
    try:
        # kombu decodes a body as UTF-8 before json.loads: no UTF-16/32 detection here.
        text = data.decode() if isinstance(data, bytes) else data
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"{what} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"{what} is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedMessage(f"{what} is nested too deeply to be read") from exc


def encode(inner: Mapping[str, typing.Any], *, max_size: int | None = None) -> bytes:
    """Wrap ``inner`` in the 2.0 envelope and return the body's bytes.

    Raises ``TypeError`` naming the value that JSON cannot carry, and :class:`MessageTooLarge`
    when the body exceeds ``max_size``.
    """
    try:
        # Decoded at once: holding the bytes too while the body is built costs a large message
        # a fresh allocation (and its page faults) per call.
        message = orjson.dumps(inner, default=_default, option=_OPTIONS).decode()
    except orjson.JSONEncodeError as exc:
        message = _stdlib_dumps(inner, exc).decode()
    else:
        if _payload_is_inexact(inner):
            message = _stdlib_dumps(inner, None).decode()
    body = orjson.dumps({_VERSION_KEY: ENVELOPE_VERSION, _MESSAGE_KEY: message})
    if max_size is not None and len(body) > max_size:
        raise MessageTooLarge(len(body), max_size)
    return body


def decode(body: bytes, *, max_size: int | None = None) -> JSONDict:
    """Return the inner dict of a body; raises :class:`MalformedMessage` saying what is wrong."""
    if max_size is not None and len(body) > max_size:
        raise MessageTooLarge(len(body), max_size)
    outer, exact = _read(body, "body")
    if not isinstance(outer, dict):
        raise MalformedMessage(f"body must be a JSON object, got {type(outer).__name__}")
    if _VERSION_KEY not in outer or _MESSAGE_KEY not in outer:
        # oslo's legacy 1.0 format: the inner dict itself
        return outer if exact or not _payload_is_inexact(outer) else _stdlib_loads(body, "body")
    version = outer[_VERSION_KEY]
    if version != ENVELOPE_VERSION:  # oslo accepts major 2, minor <= 0: "2.0" only
        raise MalformedMessage(
            f"unsupported envelope version {version!r:.80}; steward speaks {ENVELOPE_VERSION!r}"
        )
    message = outer[_MESSAGE_KEY]
    if not isinstance(message, str):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} must be a JSON string, got {message!r:.80}")
    what = repr(_MESSAGE_KEY)
    inner, exact = _read(message, what)
    if not isinstance(inner, dict):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} must hold a JSON object")
    return inner if exact or not _payload_is_inexact(inner) else _stdlib_loads(message, what)


def request(
    method: str,
    args: Mapping[str, object],
    context: Mapping[str, object],
    *,
    namespace: str | None = None,
    version: str | None = None,
    msg_id: str | None = None,
    reply_q: str | None = None,
    call_monitor_timeout: float | None = None,
) -> JSONDict:
    """Build a request's inner dict in oslo's key order; ``msg_id`` makes it a call."""
    inner: JSONDict = {"method": method, "args": dict(args)}
    if namespace is not None:
        inner["namespace"] = namespace
    if version is not None:
        inner["version"] = version
    if msg_id is not None:
        inner["_msg_id"] = msg_id
        inner["_reply_q"] = reply_q
        inner["_timeout"] = call_monitor_timeout
    inner["_unique_id"] = new_id()
    pack_context(inner, context)
    return inner


def pack_context(inner: JSONDict, context: Mapping[str, object]) -> None:
    """Add ``context`` to ``inner`` as ``_context_<key>`` fields (requests and notifications).

    oslo's ``pack_context``; :func:`unpack_context` reads them back.
    """
    for key, value in context.items():
        inner[_CONTEXT_PREFIX + key] = value


def unpack_context(inner: Mapping[str, object]) -> JSONDict:
    """Return the context dict a request's or notification's ``_context_<key>`` fields carry."""
    return {
        key[len(_CONTEXT_PREFIX) :]: value
        for key, value in inner.items()
        if key.startswith(_CONTEXT_PREFIX)
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """A request as a server reads it."""

    method: str
    args: JSONDict
    context: JSONDict
    namespace: str | None
    version: str
    msg_id: str | None
    reply_q: str | None
    unique_id: str | None
    call_monitor_timeout: float | None


def reply_address(inner: Mapping[str, object]) -> tuple[str, str] | None:
    """Return ``(msg_id, reply_q)`` if a (possibly malformed) request asks for a reply."""
    msg_id, reply_q = inner.get("_msg_id"), inner.get("_reply_q")
    if isinstance(msg_id, str) and msg_id and isinstance(reply_q, str) and reply_q:
        return msg_id, reply_q
    return None


def salvage_reply_address(body: bytes) -> tuple[str, str] | None:
    """Return ``(msg_id, reply_q)`` from a body :func:`decode` refused, if they can be read.

    A body with an envelope version steward does not speak, or an envelope that is otherwise
    off, may still name its caller's reply address; the server answers it with the error rather
    than leave it to time out. Anything unreadable gives None.
    """
    try:
        outer = loads(body)
        if isinstance(outer, dict) and isinstance(outer.get(_MESSAGE_KEY), str):
            outer = loads(outer[_MESSAGE_KEY])
    except MalformedMessage:
        return None
    return reply_address(outer) if isinstance(outer, dict) else None


def parse_request(inner: JSONDict) -> Request:
    """Check and split a request's inner dict; raises :class:`MalformedMessage`."""
    method = inner.get("method")
    if not isinstance(method, str) or not method:
        raise MalformedMessage(f"request has no method name: 'method' is {method!r:.80}")
    args = inner.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise MalformedMessage(
            f"'args' of {shorten(method)!r} must be a JSON object, got {args!r:.80}"
        )
    namespace = inner.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise MalformedMessage(f"'namespace' must be a string, got {namespace!r:.80}")
    version = inner.get("version") or "1.0"
    if not isinstance(version, str) or not is_version(version):
        raise MalformedMessage(f"'version' must be a string such as '1.0', got {version!r:.80}")
    address = reply_address(inner)
    unique_id = inner.get("_unique_id")
    timeout = inner.get("_timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < _DAY:
        timeout = None  # oslo ignores what it cannot use too; NaN and inf are not timeouts
    return Request(
        method=method,
        args=args,
        context=unpack_context(inner),
        namespace=namespace,
        version=version,
        msg_id=address[0] if address else None,
        reply_q=address[1] if address else None,
        unique_id=unique_id if isinstance(unique_id, str) else None,
        call_monitor_timeout=timeout,
    )


def reply(
    msg_id: str, *, result: object = None, failure: str | None = None, ending: bool = True
) -> JSONDict:
    """Build a reply's inner dict (one message per call, ``ending`` true, as oslo 18)."""
    return {
        "result": result,
        "failure": failure,
        "ending": ending,
        "_msg_id": msg_id,
        "_unique_id": new_id(),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A reply as a caller reads it."""

    msg_id: str
    result: object
    failure: str | None
    ending: bool
    unique_id: str | None


def parse_reply(inner: JSONDict) -> Reply:
    """Check a reply's inner dict; raises :class:`MalformedMessage`."""
    msg_id = inner.get("_msg_id")
    if not isinstance(msg_id, str) or not msg_id:
        raise MalformedMessage(f"reply has no '_msg_id': {msg_id!r:.80}")
    failure = inner.get("failure")
    if failure is not None and not isinstance(failure, str):
        # Some peers send the failure as an object rather than a JSON string.
        failure = orjson.dumps(failure, default=str).decode()
    unique_id = inner.get("_unique_id")
    return Reply(
        msg_id=msg_id,
        result=inner.get("result"),
        failure=failure,
        ending=bool(inner.get("ending", True)),
        unique_id=unique_id if isinstance(unique_id, str) else None,
    )


# Where steward and oslo.messaging name the same failure differently, the wire carries the name an
# oslo server sends for it, with the args oslo's class is re-created from (its message: oslo's
# NoSuchMethod(method) and UnsupportedVersion(version, method) keep only the message in `args`), so
# an oslo caller that allows the module gets its own class, and one that does not gets the
# RemoteError an oslo server's failure gives it. An unexpected argument is a TypeError from an oslo
# server (Python's call of the method): InvalidArguments travels as one. Steward's own class and
# args ride along under the "steward" key, which oslo's failure reader never looks at.
_OSLO_DISPATCHER = "oslo_messaging.rpc.dispatcher"
_OSLO_EXCEPTIONS = "oslo_messaging.exceptions"
_WIRE_NAMES: dict[type[Exception], tuple[str, str]] = {
    NoSuchMethod: (_OSLO_DISPATCHER, "NoSuchMethod"),
    UnsupportedVersion: (_OSLO_DISPATCHER, "UnsupportedVersion"),
    MessagingTimeout: (_OSLO_EXCEPTIONS, "MessagingTimeout"),
    InvalidArguments: ("builtins", "TypeError"),
}
_STEWARD_KEY = "steward"
_BY_STEWARD_NAME = {cls.__name__: cls for cls in _WIRE_NAMES}
# oslo's messages for its dispatch errors (unchanged since 2013), read back into steward's fields.
_NO_SUCH_METHOD = re.compile(r"Endpoint does not support RPC method (?P<method>.*)", re.DOTALL)
_UNSUPPORTED_VERSION = re.compile(
    r"Endpoint does not support RPC version (?P<version>.*?)"
    r"(?:\. Attempted method: (?P<method>.*))?",
    re.DOTALL,
)


def _no_such_method(message: str) -> Exception | None:
    found = _NO_SUCH_METHOD.fullmatch(message)
    return NoSuchMethod(found["method"]) if found else None


def _unsupported_version(message: str) -> Exception | None:
    found = _UNSUPPORTED_VERSION.fullmatch(message)
    return UnsupportedVersion(found["version"], found["method"]) if found else None


# The failures of an oslo server (or of a steward one without the "steward" key) that steward
# re-creates as its own class, whatever the caller allows: no oslo module is imported.
_FROM_OSLO: dict[tuple[str, str], typing.Callable[[str], Exception | None]] = {
    (_OSLO_DISPATCHER, "NoSuchMethod"): _no_such_method,
    (_OSLO_DISPATCHER, "UnsupportedVersion"): _unsupported_version,
    (_OSLO_EXCEPTIONS, "MessagingTimeout"): MessagingTimeout,
}


def serialize_failure(exc: BaseException) -> str:
    """Return ``exc`` in oslo's failure format: a JSON string with class, module and traceback.

    steward's ``NoSuchMethod``, ``UnsupportedVersion``, ``MessagingTimeout`` and
    ``InvalidArguments`` are named as an oslo server names the same failure (oslo's dispatcher and
    exceptions modules, ``builtins.TypeError``), with steward's own class and args under the
    ``"steward"`` key (see :func:`deserialize_failure`).
    """
    cls = type(exc)
    wire_names = _WIRE_NAMES.get(type(exc)) if isinstance(exc, Exception) else None
    message = str(exc)
    if wire_names is not None:
        module, name = wire_names
        args: list[object] = [message]
        kwargs: dict[object, object] = {}
    else:
        module, name = cls.__module__.removesuffix("_Remote"), cls.__name__.removesuffix("_Remote")
        args, kwargs = list(exc.args), dict(getattr(exc, "kwargs", None) or {})
    data: JSONDict = {
        "class": name,
        "module": module,
        "message": message,
        "tb": traceback.format_exception(exc),
        "args": args,
        "kwargs": kwargs,
    }
    if wire_names is not None:
        data[_STEWARD_KEY] = {"class": cls.__name__, "args": list(exc.args)}
    try:
        return dumps(data).decode()
    except TypeError:
        data["args"] = [repr(arg) for arg in args]
        data["kwargs"] = {str(key): repr(value) for key, value in kwargs.items()}
        if wire_names is not None:
            data[_STEWARD_KEY]["args"] = [repr(arg) for arg in exc.args]
        return dumps(data).decode()


def deserialize_failure(failure: str, allowed_modules: Iterable[str] = ()) -> Exception:
    """Return the exception a failure stands for, or :class:`RemoteError` if not allowed.

    oslo's ``NoSuchMethod``, ``UnsupportedVersion`` (``oslo_messaging.rpc.dispatcher``) and
    ``MessagingTimeout`` (``oslo_messaging.exceptions``) become steward's classes of those names,
    read from the message, and a failure with the ``"steward"`` key the steward class it names
    (an ``InvalidArguments`` sent as ``builtins.TypeError``); either only when its message reads
    exactly as the remote one. Otherwise the class is re-created as ``cls(*args, **kwargs)`` only
    when its module is ``builtins``, ``steward.errors`` or in ``allowed_modules`` and it is an
    ``Exception``. The remote traceback is added as a note. Anything else, or anything that fails
    to re-create, is a ``RemoteError``.
    """
    try:
        data = loads(failure, what="failure")
    except MalformedMessage:
        return RemoteError("UnknownError", failure, "")
    if not isinstance(data, dict):
        return RemoteError("UnknownError", failure, "")
    name = str(data.get("class") or "UnknownError")
    module_name = str(data.get("module") or "")
    message = str(data.get("message") or "")
    tb = data.get("tb") or []
    tb_text = "".join(str(line) for line in tb) if isinstance(tb, list) else str(tb)
    if module_name == "exceptions":  # Python 2 peers
        module_name = "builtins"
    exc = _as_steward_error(data, module_name, name, message)
    if exc is None:
        exc = _recreate(data, module_name, name, allowed_modules)
    if exc is None:
        return RemoteError(name, message, tb_text)
    if tb_text:
        exc.add_note(f"Remote traceback:\n{tb_text.rstrip()}")
    return exc


def _as_steward_error(data: JSONDict, module: str, name: str, message: str) -> Exception | None:
    """Return the steward error a failure named by oslo's names stands for, or None."""
    own = data.get(_STEWARD_KEY)
    exc: Exception | None = None
    if isinstance(own, dict):
        cls = _BY_STEWARD_NAME.get(str(own.get("class")))
        args = own.get("args")
        if cls is not None and _WIRE_NAMES[cls] == (module, name) and isinstance(args, list):
            try:
                exc = cls(*args)
            except TypeError:
                exc = None
    if exc is None:
        parse = _FROM_OSLO.get((module, name))
        exc = parse(message) if parse is not None else None
    # Only ever a message the caller would read from the remote exception itself.
    return exc if exc is not None and str(exc) == message else None


def _recreate(
    data: JSONDict, module_name: str, name: str, allowed_modules: Iterable[str]
) -> Exception | None:
    """Return ``cls(*args, **kwargs)`` of a failure whose module is allowed, or None."""
    if module_name not in _ALWAYS_ALLOWED and module_name not in set(allowed_modules):
        return None
    args, kwargs = data.get("args") or [], data.get("kwargs") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not name.isidentifier():
        return None
    try:
        module = builtins if module_name == "builtins" else importlib.import_module(module_name)
        cls = getattr(module, name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            return None
        return cls(*args, **kwargs)
    except Exception:  # noqa: BLE001 - any failure to re-create means "not re-creatable"
        return None
