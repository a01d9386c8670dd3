"""The dispatcher: from a request to the endpoint method that serves it, with checked arguments.

The rules are oslo.messaging's: an endpoint serves a request when its namespace equals the
request's and its version is compatible (same major, minor at least the requested). If one
endpoint is compatible but lacks the method, the caller gets :class:`NoSuchMethod`; if none is
compatible, :class:`UnsupportedVersion`. Only public methods are callable (no leading ``_``), and an
endpoint may list more names to hide in ``__rpc_private__`` (managers hide their lifecycle hooks).

Better than oslo: the arguments are validated against the method's type hints with pydantic
before it runs, and the caller gets :class:`InvalidArguments` naming each bad argument, the type
it expects and what came. The checks are strict on JSON types: ``"12"``, ``true`` and ``12.0`` are
not an ``int``, ``1`` is not a ``bool``, ``5`` is not a ``str``. A value whose JSON form is a
string still becomes its type (an ISO 8601 string a ``datetime``, a string a ``UUID``, ``Decimal``
or ``Enum`` member, an array a ``tuple`` or ``set``): each argument is validated as pydantic
validates JSON in strict mode (the argument written back as JSON — the value the peer sent).
An argument the serializer turned into an object is validated as that object, strictly. A method
marked :func:`lenient` gets pydantic's lax conversions instead (``"12"`` becomes ``12``), as
before. A request context that cannot be restored (``is_admin: "yes"``) is refused the same way.
The validators and the lookup are built once per method, not per message.

A method is called as ``method(context, **args)``; the context is also the current one while it
runs. ``async def`` methods run on the loop, plain ``def`` ones in the executor.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import types
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import pydantic

from steward._aio import in_thread
from steward.context import RequestContext, bind
from steward.errors import (
    InvalidArguments,
    NoSuchMethod,
    UnsupportedObjectError,
    UnsupportedVersion,
)
from steward.objects.convert import holds_objects, objects_from
from steward.redact import shorten
from steward.rpc import wire
from steward.rpc.serializer import Serializer
from steward.rpc.target import Target, version_is_compatible
from steward.rpc.wire import Request

__all__ = ["Dispatcher", "lenient"]

LOG = logging.getLogger(__name__)

# An InvalidArguments message names at most this many problems, then says how many more.
_PROBLEMS_SHOWN = 5

F = typing.TypeVar("F", bound=Callable[..., object])

_LENIENT_MARK = "__steward_rpc_lenient__"
# Types whose strict check is the same for a Python value as for its JSON form: no need to write
# the value back as JSON to check it.
_PLAIN_TYPES: frozenset[object] = frozenset({str, int, float, bool, type(None), list, dict})
# pydantic's errors for what its JSON mode cannot check, though the Python value can be checked.
_NEEDS_PYTHON = frozenset({"json_invalid", "needs_python_object"})
_JSON_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def lenient(fn: F, /) -> F:
    """Mark an endpoint method whose arguments are converted leniently, as pydantic's lax mode.

    By default the dispatcher is strict on JSON types (``"12"`` is not an ``int``). Under this
    mark, ``"12"`` becomes ``12``, ``1`` becomes ``True``, ``1700000000`` a ``datetime``: for
    methods whose callers are known to send such values. Put it on the method (inside or
    outside other decorators)::

        @lenient
        def resize(self, context: RequestContext, vcpus: int) -> None: ...
    """
    setattr(fn, _LENIENT_MARK, True)
    return fn


@dataclasses.dataclass(frozen=True, slots=True)
class _Argument:
    """One argument of an endpoint method: how to check it, built once."""

    name: str
    expected: str
    adapter: pydantic.TypeAdapter[typing.Any] | None  # None: annotated Any, nothing to check
    plain: bool  # a type checked the same from Python as from JSON (see _PLAIN_TYPES)
    required: bool
    objects: typing.Any = None  # the annotation, when it holds versioned objects to make


@dataclasses.dataclass(frozen=True, slots=True)
class _Method:
    """A callable endpoint method and its argument checks, built once."""

    name: str
    fn: Callable[..., object]
    is_async: bool
    arguments: dict[str, _Argument]
    takes_extra: bool
    lenient: bool


def _endpoint_target(endpoint: object) -> Target:
    target = getattr(endpoint, "target", None)
    return target if isinstance(target, Target) else Target()


class Dispatcher:
    """Finds and runs endpoint methods for requests. See the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[object],
        *,
        serializer: Serializer | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.serializer = serializer if serializer is not None else Serializer()
        self.executor = executor
        self._targets = [_endpoint_target(endpoint) for endpoint in self.endpoints]
        self._methods: dict[tuple[str | None, str, str], _Method] = {}

    def resolve(self, namespace: str | None, version: str, method: str) -> _Method:
        """Return the method serving ``(namespace, version, method)``, from the cache if seen."""
        key = (namespace, version, method)
        found = self._methods.get(key)
        if found is None:
            found = self._methods[key] = self._lookup(namespace, version, method)
        return found

    def _lookup(self, namespace: str | None, version: str, method: str) -> _Method:
        compatible = False
        for endpoint, target in zip(self.endpoints, self._targets, strict=True):
            if target.namespace != namespace or not version_is_compatible(target.version, version):
                continue
            compatible = True
            if method.startswith("_") or method in getattr(endpoint, "__rpc_private__", ()):
                continue
            # Only methods the endpoint's class defines: not instance attributes that happen to
            # be callable (an app object, a client), nor classes.
            defined = inspect.getattr_static(type(endpoint), method, None)
            if not (inspect.isfunction(defined) or isinstance(defined, staticmethod | classmethod)):
                continue
            fn = getattr(endpoint, method)
            return _build_method(method, fn)
        # The names come from the caller: the failure carries (and logs) no more than a prefix.
        if compatible:
            raise NoSuchMethod(shorten(method))
        raise UnsupportedVersion(shorten(version), shorten(method))

    async def dispatch(self, request: Request) -> object:
        """Run the request's method and return its serialized result.

        Raises :class:`UnsupportedVersion`, :class:`NoSuchMethod`, :class:`InvalidArguments`, or
        whatever the method raises.
        """
        method = self.resolve(request.namespace, request.version, request.method)
        try:
            context = self.serializer.deserialize_context(request.context)
        except (TypeError, ValueError) as exc:
            raise InvalidArguments(
                f"{method.name}(): the request context cannot be used: {exc}"
            ) from exc
        kwargs = _validate(method, context, request.args, self.serializer)
        with bind(context):
            if method.is_async:
                result = await typing.cast("typing.Awaitable[object]", method.fn(context, **kwargs))
            else:
                result = await in_thread(self.executor, method.fn, context, **kwargs)
        return self.serializer.serialize_entity(context, result)


def _build_method(name: str, fn: Callable[..., object]) -> _Method:
    original = inspect.unwrap(fn)
    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise InvalidArguments(
            f"{name}() cannot be called over RPC: it must take the request context as its "
            f"first argument, as def {name}(self, context, ...)"
        )
    try:
        hints = typing.get_type_hints(original, include_extras=True)
    except (NameError, TypeError) as exc:
        LOG.warning("Type hints of %s() cannot be resolved (%s); not checking them", name, exc)
        hints = {}
    arguments: dict[str, _Argument] = {}
    takes_extra = False
    for parameter in parameters[1:]:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_extra = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        annotation = hints.get(parameter.name, typing.Any)
        arguments[parameter.name] = _Argument(
            name=parameter.name,
            expected=_type_name(annotation),
            adapter=None if annotation in (typing.Any, object) else _adapter(annotation),
            plain=_is_plain(annotation),
            required=parameter.default is inspect.Parameter.empty,
            objects=annotation if holds_objects(annotation) else None,
        )
    return _Method(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        arguments=arguments,
        takes_extra=takes_extra,
        lenient=bool(getattr(fn, _LENIENT_MARK, False) or getattr(original, _LENIENT_MARK, False)),
    )


def _adapter(annotation: typing.Any) -> pydantic.TypeAdapter[typing.Any]:  # noqa: ANN401 - a hint
    try:
        # Classes of the application's own (not pydantic models) are checked with isinstance.
        return pydantic.TypeAdapter(
            annotation, config=pydantic.ConfigDict(arbitrary_types_allowed=True)
        )
    except pydantic.PydanticUserError:
        # A pydantic model or dataclass, or a TypedDict, brings its own configuration.
        return pydantic.TypeAdapter(annotation)


def _is_plain(annotation: object) -> bool:
    """Say if pydantic's strict check of ``annotation`` is the same from Python as from JSON.

    True for str, int, float, bool and None, and lists, string-keyed dicts, unions and
    ``Annotated`` constraints of those: their JSON values are already what a strict Python
    check expects. Not for datetimes, UUIDs, tuples, models...: those need the JSON mode.
    """
    if annotation in _PLAIN_TYPES or annotation is typing.Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _is_plain(args[0])
    if origin is dict:
        return len(args) == 2 and args[0] is str and _is_plain(args[1])  # noqa: PLR2004 - K, V
    if origin in (list, typing.Union, types.UnionType):
        return bool(args) and all(_is_plain(arg) for arg in args)
    return False


def _type_name(annotation: object) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "").replace("datetime.", "")


def _validate(
    method: _Method,
    context: RequestContext,
    raw: dict[str, typing.Any],
    serializer: Serializer,
) -> dict[str, object]:
    """Return the method's keyword arguments from the request's, or raise InvalidArguments."""
    deserialize = serializer.deserialize_entity
    kwargs: dict[str, object] = {}
    problems: list[str] = []
    for name, value in raw.items():
        argument = method.arguments.get(name)
        converted = deserialize(context, value)
        if argument is not None and argument.objects is not None:
            # An object arrives as its class (a too new one raises IncompatibleObjectVersion).
            try:
                converted = objects_from(argument.objects, converted)
            except UnsupportedObjectError as exc:
                problems.append(f"argument `{name}` ({argument.expected}): {exc}")
                continue
        if argument is None:
            if method.takes_extra:
                kwargs[name] = converted
            else:
                problems.append(f"unexpected argument `{shorten(name)}`")
            continue
        if argument.adapter is None:
            kwargs[name] = converted
            continue
        try:
            kwargs[name] = _check(argument, argument.adapter, converted, value, method.lenient)
        except pydantic.ValidationError as exc:
            problems.extend(_describe(argument, exc, as_json=converted is value))
    problems.extend(
        f"missing required argument `{argument.name}`"
        for argument in method.arguments.values()
        if argument.required and argument.name not in raw
    )
    if problems:
        # The caller chooses how many arguments (and list items) are wrong: name a few.
        shown = problems[:_PROBLEMS_SHOWN]
        if len(problems) > _PROBLEMS_SHOWN:
            shown.append(f"and {len(problems) - _PROBLEMS_SHOWN} more problems")
        raise InvalidArguments(f"{method.name}(): " + "; ".join(shown))
    return kwargs


def _check(
    argument: _Argument,
    adapter: pydantic.TypeAdapter[typing.Any],
    converted: object,
    value: object,
    lenient: bool,
) -> object:
    if lenient:
        return adapter.validate_python(converted)
    if converted is not value or argument.plain:
        # An object the serializer made is checked as that object; a plain type is checked the
        # same way from Python as from JSON, without writing the value back.
        return adapter.validate_python(converted, strict=True)
    try:
        # pydantic's strict mode for JSON input: a string becomes a datetime, UUID, Decimal or
        # Enum, an array a tuple, but "12" does not become an int.
        return adapter.validate_json(wire.dumps(value), strict=True)
    except pydantic.ValidationError as exc:
        if exc.errors(include_url=False)[0]["type"] not in _NEEDS_PYTHON:
            raise
    # A class of the application's own (checked with isinstance), or lone surrogates, which
    # pydantic's JSON reader refuses although the value came as JSON.
    return adapter.validate_python(value, strict=True)


def _describe(argument: _Argument, exc: pydantic.ValidationError, *, as_json: bool) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        value = error["input"]
        kind = (_JSON_NAMES.get(type(value)) if as_json else None) or type(value).__qualname__
        came = f"{kind} {shorten(repr(value))}" if kind != "null" else "null"
        if error["loc"]:
            path = ".".join([argument.name, *(str(part) for part in error["loc"])])
            where = f"argument `{shorten(path)}` ({argument.name}: {argument.expected})"
        else:
            where = f"argument `{argument.name}` must be {argument.expected}"
        problems.append(f"{where}: {error['msg']}, got {came}")
    return problems
