"""The dispatcher: from a request to the endpoint method that serves it, with checked arguments.

The rules are oslo.messaging's: an endpoint serves a request when its namespace equals the
request's and its version is compatible (same major, minor at least the requested). If one
endpoint is compatible but lacks the method, the caller gets :class:`NoSuchMethod`; if none is
compatible, :class:`UnsupportedVersion`. Only public methods are callable (no leading ``_``), and an
endpoint may list more names to hide in ``__rpc_private__`` (managers hide their lifecycle hooks).

Better than oslo: the arguments are validated against the method's type hints with pydantic
before it runs, and the caller gets :class:`InvalidArguments` naming each bad argument. The
validator and the lookup are built once per method, not per message.

A method is called as ``method(context, **args)``; the context is also the current one while it
runs. ``async def`` methods run on the loop, plain ``def`` ones in the executor.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import pydantic

from steward.context import bind
from steward.errors import InvalidArguments, NoSuchMethod, UnsupportedVersion
from steward.redact import shorten
from steward.rpc.serializer import Serializer
from steward.rpc.target import Target, version_is_compatible
from steward.rpc.wire import Request

__all__ = ["Dispatcher"]

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class _Method:
    """A callable endpoint method and its argument validator, built once."""

    name: str
    fn: Callable[..., object]
    is_async: bool
    validator: type[pydantic.BaseModel]
    fields: tuple[str, ...]
    takes_extra: bool


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
        context = self.serializer.deserialize_context(request.context)
        deserialize = self.serializer.deserialize_entity
        args = {name: deserialize(context, value) for name, value in request.args.items()}
        kwargs = _validate(method, args)
        with bind(context):
            if method.is_async:
                result = await typing.cast("typing.Awaitable[object]", method.fn(context, **kwargs))
            else:
                loop = asyncio.get_running_loop()
                call = functools.partial(
                    contextvars.copy_context().run, method.fn, context, **kwargs
                )
                result = await loop.run_in_executor(self.executor, call)
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
    fields: dict[str, typing.Any] = {}
    takes_extra = False
    for parameter in parameters[1:]:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_extra = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        annotation = hints.get(parameter.name, typing.Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    validator = pydantic.create_model(
        f"{name}_arguments",
        __config__=pydantic.ConfigDict(
            extra="allow" if takes_extra else "forbid", arbitrary_types_allowed=True
        ),
        **fields,
    )
    return _Method(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        validator=validator,
        fields=tuple(fields),
        takes_extra=takes_extra,
    )


def _validate(method: _Method, args: dict[str, object]) -> dict[str, object]:
    try:
        model = method.validator.model_validate(args)
    except pydantic.ValidationError as exc:
        raise InvalidArguments(_describe(method.name, exc)) from None
    kwargs = {name: getattr(model, name) for name in method.fields}
    if method.takes_extra and model.model_extra:
        kwargs.update(model.model_extra)
    return kwargs


def _describe(method: str, exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "missing":
            problems.append(f"missing required argument `{name}`")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unexpected argument `{name}`")
        else:
            problems.append(f"argument `{name}`: {error['msg']}, got {error['input']!r:.80}")
    return f"{method}(): " + "; ".join(problems)
