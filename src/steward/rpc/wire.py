"""The message format on the wire: oslo.messaging's 2.0 envelope, requests, replies, failures.

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
  Nothing else named by a message is ever imported. No pickle.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import os
import traceback
import typing
from collections.abc import Iterable, Mapping

import orjson

from steward.errors import MalformedMessage, MessageTooLarge, RemoteError
from steward.redact import shorten
from steward.rpc.target import is_version

__all__ = [
    "ENVELOPE_VERSION",
    "Reply",
    "Request",
    "decode",
    "deserialize_failure",
    "encode",
    "new_id",
    "parse_reply",
    "parse_request",
    "reply",
    "request",
    "salvage_reply_address",
    "serialize_failure",
]

ENVELOPE_VERSION = "2.0"
_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
_CONTEXT_PREFIX = "_context_"
_OPTIONS = orjson.OPT_NON_STR_KEYS
_ALWAYS_ALLOWED = frozenset({"builtins", "steward.errors"})

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


def encode(inner: Mapping[str, typing.Any], *, max_size: int | None = None) -> bytes:
    """Wrap ``inner`` in the 2.0 envelope and return the body's bytes.

    Raises ``TypeError`` naming the value that JSON cannot carry, and :class:`MessageTooLarge`
    when the body exceeds ``max_size``.
    """
    try:
        message = orjson.dumps(inner, default=_default, option=_OPTIONS).decode()
    except orjson.JSONEncodeError as exc:
        # orjson's own message is generic; the default hook's names the value.
        raise TypeError(str(exc.__cause__ or exc)) from exc
    body = orjson.dumps({_VERSION_KEY: ENVELOPE_VERSION, _MESSAGE_KEY: message})
    if max_size is not None and len(body) > max_size:
        raise MessageTooLarge(len(body), max_size)
    return body


def decode(body: bytes, *, max_size: int | None = None) -> JSONDict:
    """Return the inner dict of a body; raises :class:`MalformedMessage` saying what is wrong."""
    if max_size is not None and len(body) > max_size:
        raise MessageTooLarge(len(body), max_size)
    try:
        outer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(outer, dict):
        raise MalformedMessage(f"body must be a JSON object, got {type(outer).__name__}")
    if _VERSION_KEY not in outer or _MESSAGE_KEY not in outer:
        return outer  # oslo's legacy 1.0 format: the inner dict itself
    version = outer[_VERSION_KEY]
    if version != ENVELOPE_VERSION:  # oslo accepts major 2, minor <= 0: "2.0" only
        raise MalformedMessage(
            f"unsupported envelope version {version!r:.80}; steward speaks {ENVELOPE_VERSION!r}"
        )
    message = outer[_MESSAGE_KEY]
    if not isinstance(message, str):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} must be a JSON string, got {message!r:.80}")
    try:
        inner = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is not JSON: {exc}") from exc
    if not isinstance(inner, dict):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} must hold a JSON object")
    return inner


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
    for key, value in context.items():
        inner[_CONTEXT_PREFIX + key] = value
    return inner


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
        outer = orjson.loads(body)
        if isinstance(outer, dict) and isinstance(outer.get(_MESSAGE_KEY), str):
            outer = orjson.loads(outer[_MESSAGE_KEY])
    except orjson.JSONDecodeError:
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
    if isinstance(timeout, bool) or not isinstance(timeout, int | float | None):
        timeout = None
    context = {
        key[len(_CONTEXT_PREFIX) :]: value
        for key, value in inner.items()
        if key.startswith(_CONTEXT_PREFIX)
    }
    return Request(
        method=method,
        args=args,
        context=context,
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


def serialize_failure(exc: BaseException) -> str:
    """Return ``exc`` in oslo's failure format: a JSON string with class, module and traceback."""
    cls = type(exc)
    data: JSONDict = {
        "class": cls.__name__.removesuffix("_Remote"),
        "module": cls.__module__.removesuffix("_Remote"),
        "message": str(exc),
        "tb": traceback.format_exception(exc),
        "args": list(exc.args),
        "kwargs": dict(getattr(exc, "kwargs", None) or {}),
    }
    try:
        return orjson.dumps(data, option=_OPTIONS).decode()
    except TypeError:
        data["args"] = [repr(arg) for arg in exc.args]
        data["kwargs"] = {str(key): repr(value) for key, value in data["kwargs"].items()}
        return orjson.dumps(data).decode()


def deserialize_failure(  # noqa: PLR0911 - each way a failure can be unusable returns early
    failure: str, allowed_modules: Iterable[str] = ()
) -> Exception:
    """Return the exception a failure stands for, or :class:`RemoteError` if not allowed.

    The class is re-created as ``cls(*args, **kwargs)`` only when its module is ``builtins``,
    ``steward.errors`` or in ``allowed_modules`` and it is an ``Exception``; the remote traceback
    is added as a note. Anything else, or anything that fails to re-create, is a ``RemoteError``.
    """
    try:
        data = orjson.loads(failure)
    except orjson.JSONDecodeError:
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
    remote = RemoteError(name, message, tb_text)
    if module_name not in _ALWAYS_ALLOWED and module_name not in set(allowed_modules):
        return remote
    args, kwargs = data.get("args") or [], data.get("kwargs") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not name.isidentifier():
        return remote
    try:
        module = builtins if module_name == "builtins" else importlib.import_module(module_name)
        cls = getattr(module, name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            return remote
        exc = cls(*args, **kwargs)
    except Exception:  # noqa: BLE001 - any failure to re-create means "not re-creatable"
        return remote
    if tb_text:
        exc.add_note(f"Remote traceback:\n{tb_text.rstrip()}")
    return exc
