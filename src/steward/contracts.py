"""RPC contracts: fingerprints of APIs and objects, an AsyncAPI export, a check for CI.

A rolling upgrade is safe when every change to what crosses the wire comes with a version bump:
a method's arguments or result, an object's fields. :func:`describe_api` reads an endpoint class
(a manager) the way the dispatcher serves it: its public methods, their arguments and results
from the type hints, its ``target`` version and namespace. :func:`contract` fingerprints those
APIs and every versioned object they reach (as oslo's ``ObjectVersionChecker`` does for objects,
methods included); :func:`compare` tells what changed without its version changing, which is
what ``steward api check`` fails on. :func:`asyncapi` writes an AsyncAPI 3.0 document of an API:
a channel per topic, an operation per method, JSON Schemas of the arguments, results and objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import typing

import orjson
import pydantic

from steward.objects import VersionedObject
from steward.objects._fields import Field
from steward.objects.convert import objects_in

__all__ = [
    "ApiDescription",
    "MethodDescription",
    "asyncapi",
    "compare",
    "contract",
    "describe_api",
    "dumps",
    "object_fingerprint",
]

Contract = dict[str, typing.Any]
"""A contract file's content: ``{"apis": {...}, "objects": {...}}`` (see :func:`contract`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class MethodDescription:
    """One RPC method: its arguments (name -> type, required) and its result type."""

    name: str
    arguments: dict[str, tuple[typing.Any, bool]]
    result: typing.Any

    def signature(self) -> str:
        """Return the method's signature as text: what its fingerprint is taken of."""
        arguments = ", ".join(
            f"{name}: {_type_text(annotation)}{'' if required else ' = ...'}"
            for name, (annotation, required) in self.arguments.items()
        )
        return f"{self.name}({arguments}) -> {_type_text(self.result)}"


@dataclasses.dataclass(frozen=True, slots=True)
class ApiDescription:
    """An endpoint class's RPC API: name, namespace, version and methods."""

    name: str
    namespace: str | None
    version: str
    methods: dict[str, MethodDescription]

    def objects(self) -> dict[str, type[VersionedObject]]:
        """Return every versioned object the API's signatures reach, nested ones included."""
        found: dict[str, type[VersionedObject]] = {}
        for method in self.methods.values():
            for annotation in [*(a for a, _ in method.arguments.values()), method.result]:
                for obj_cls in objects_in(annotation):
                    _collect(obj_cls, found)
        return found


def describe_api(endpoint: type) -> ApiDescription:
    """Return the RPC API of ``endpoint`` (a class), as the dispatcher would serve it."""
    private: typing.Collection[str] = getattr(endpoint, "__rpc_private__", frozenset())
    methods: dict[str, MethodDescription] = {}
    for name, member in inspect.getmembers(endpoint, inspect.isfunction):
        if name.startswith("_") or name in private:
            continue
        methods[name] = _describe_method(name, member)
    target = getattr(endpoint, "target", None)
    return ApiDescription(
        name=f"{endpoint.__module__}:{endpoint.__qualname__}",
        namespace=getattr(target, "namespace", None),
        version=str(getattr(target, "version", None) or "1.0"),
        methods=dict(sorted(methods.items())),
    )


def _describe_method(name: str, fn: typing.Callable[..., object]) -> MethodDescription:
    original = inspect.unwrap(fn)
    hints = typing.get_type_hints(original, include_extras=True)
    parameters = list(inspect.signature(original).parameters.values())[2:]  # self, context
    arguments = {
        parameter.name: (
            hints.get(parameter.name, typing.Any),
            parameter.default is inspect.Parameter.empty,
        )
        for parameter in parameters
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    return MethodDescription(name, arguments, hints.get("return", typing.Any))


# --- fingerprints and the contract file --------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def object_fingerprint(obj_cls: type[VersionedObject]) -> str:
    """Return ``"<VERSION>-<hash of the fields>"``, as OVO's ``ObjectVersionChecker`` does."""
    fields = [_field_text(field) for field in obj_cls.obj_fields.values()]
    return f"{obj_cls.VERSION}-{_digest(';'.join(fields))}"


def _field_text(field: Field) -> str:
    nullable = " | None" if field.nullable else ""
    since = f" since {field.since}" if field.since else ""
    return f"{field.name}: {_type_text(field.annotation)}{nullable}{since}"


def contract(apis: typing.Iterable[ApiDescription]) -> Contract:
    """Return the contract of ``apis`` and of every object they reach, ready to store as JSON."""
    apis = list(apis)
    objects: dict[str, type[VersionedObject]] = {}
    for api in apis:
        objects.update(api.objects())
    return {
        "apis": {
            api.name: {
                "namespace": api.namespace,
                "version": api.version,
                "methods": {
                    name: {
                        "signature": method.signature(),
                        "fingerprint": _digest(method.signature()),
                    }
                    for name, method in api.methods.items()
                },
            }
            for api in apis
        },
        "objects": {
            key: {"version": obj_cls.VERSION, "fingerprint": object_fingerprint(obj_cls)}
            for key, obj_cls in sorted(objects.items())
        },
    }


def compare(stored: Contract, current: Contract) -> tuple[list[str], list[str]]:
    """Return ``(errors, notes)``: changes made without a version bump, and bumped changes.

    An error names what changed: a method added, removed or with another signature in an API
    whose version stayed, an object whose fields changed while its VERSION stayed.
    """
    errors: list[str] = []
    notes: list[str] = []
    for name, api in current["apis"].items():
        before = stored.get("apis", {}).get(name)
        if before is None:
            notes.append(f"API {name} {api['version']} is new")
            continue
        changes = _method_changes(before["methods"], api["methods"])
        if not changes:
            continue
        if before["version"] == api["version"]:
            errors.extend(f"API {name} {api['version']}: {change}" for change in changes)
        else:
            notes.append(f"API {name} {before['version']} -> {api['version']}: {len(changes)} "
                         "changes")  # fmt: skip
    removed = stored.get("apis", {}).keys() - current["apis"].keys()
    errors.extend(f"API {name} was removed" for name in sorted(removed))
    for name, obj in current["objects"].items():
        before = stored.get("objects", {}).get(name)
        if before is None:
            notes.append(f"object {name} {obj['version']} is new")
        elif before["fingerprint"] != obj["fingerprint"]:
            if before["version"] == obj["version"]:
                errors.append(
                    f"object {name} {obj['version']}: its fields changed; bump its VERSION "
                    "(and mark new fields Since(the new version))"
                )
            else:
                notes.append(f"object {name} {before['version']} -> {obj['version']}")
    return errors, notes


def _method_changes(before: dict[str, typing.Any], after: dict[str, typing.Any]) -> list[str]:
    changes = [
        f"method {name} added: {after[name]['signature']}" for name in after.keys() - before.keys()
    ]
    changes += [f"method {name} removed" for name in before.keys() - after.keys()]
    changes += [
        f"method {name} changed: {before[name]['signature']} -> {after[name]['signature']}"
        for name in before.keys() & after.keys()
        if before[name]["fingerprint"] != after[name]["fingerprint"]
    ]
    return sorted(changes)


def dumps(content: Contract) -> bytes:
    """Return a contract as the JSON stored in a repository (sorted, indented, a last newline)."""
    return orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


# --- AsyncAPI ----------------------------------------------------------------------------------


def asyncapi(api: ApiDescription, *, topic: str, title: str | None = None) -> dict[str, typing.Any]:
    """Return an AsyncAPI 3.0 document of ``api`` served on ``topic``.

    One channel per address a server consumes (``topic``, ``topic.{server}``, the fanout), one
    operation per method (a call's reply goes to the caller's ``_reply_q``), each message's
    payload the oslo request body (``method``, ``args``, ``version``, ``namespace``); the objects
    as schemas of their primitives.
    """
    schemas: dict[str, typing.Any] = {
        key: _object_schema(obj_cls) for key, obj_cls in sorted(api.objects().items())
    }
    messages = {name: _request_message(api, method) for name, method in api.methods.items()}
    replies = {f"{name}_reply": _reply_message(method) for name, method in api.methods.items()}
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title or f"{api.name} RPC API",
            "version": api.version,
            "description": f"steward RPC (oslo.messaging's wire format) on topic {topic!r}.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "topic": {"address": topic, "messages": channel_messages},
            "server": {
                "address": f"{topic}.{{server}}",
                "parameters": {"server": {"description": "The host a server runs on."}},
                "messages": channel_messages,
            },
            "fanout": {"address": f"{topic}_fanout", "messages": channel_messages},
            "reply": {
                "address": None,
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in replies},
            },
        },
        "operations": {
            name: {
                "action": "receive",
                "channel": {"$ref": "#/channels/topic"},
                "summary": method.signature(),
                "messages": [{"$ref": f"#/channels/topic/messages/{name}"}],
                "reply": {
                    "address": {"location": "$message.payload#/_reply_q"},
                    "channel": {"$ref": "#/channels/reply"},
                    "messages": [{"$ref": f"#/channels/reply/messages/{name}_reply"}],
                },
            }
            for name, method in api.methods.items()
        },
        "components": {"messages": {**messages, **replies}, "schemas": schemas},
    }


def _request_message(api: ApiDescription, method: MethodDescription) -> dict[str, typing.Any]:
    args = {name: _schema(annotation) for name, (annotation, _) in method.arguments.items()}
    required = [name for name, (_, is_required) in method.arguments.items() if is_required]
    return {
        "name": method.name,
        "summary": method.signature(),
        "payload": {
            "type": "object",
            "required": ["method", "args"],
            "properties": {
                "method": {"const": method.name},
                "args": {"type": "object", "properties": args, "required": required},
                "version": {"type": "string", "description": f"at most {api.version}"},
                "namespace": {"const": api.namespace},
                "_reply_q": {"type": "string", "description": "a call's reply address"},
            },
        },
    }


def _reply_message(method: MethodDescription) -> dict[str, typing.Any]:
    return {
        "name": f"{method.name}_reply",
        "payload": {
            "type": "object",
            "properties": {
                "result": _schema(method.result),
                "failure": {"type": ["string", "null"]},
                "ending": {"type": "boolean"},
            },
        },
    }


def _schema(annotation: object) -> dict[str, typing.Any]:
    """Return the JSON Schema of a value of ``annotation`` as it travels."""
    if annotation is typing.Any:
        return {}
    if not objects_in(annotation):
        return _plain_schema(annotation)
    if isinstance(annotation, type):
        return {"$ref": f"#/components/schemas/{_key(annotation)}"}
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is list and args:
        return {"type": "array", "items": _schema(args[0])}
    if origin is dict and len(args) == 2:  # noqa: PLR2004 - key and value
        return {"type": "object", "additionalProperties": _schema(args[1])}
    return {"anyOf": [_schema(arg) for arg in args]}  # a union with objects


def _plain_schema(annotation: object) -> dict[str, typing.Any]:
    """Return pydantic's JSON Schema of a type holding no versioned object."""
    try:
        adapter = pydantic.TypeAdapter(typing.cast("typing.Any", annotation))
        schema = adapter.json_schema(mode="serialization")
    except (pydantic.PydanticUserError, pydantic.errors.PydanticSchemaGenerationError, TypeError):
        return {"description": _type_text(annotation)}
    return typing.cast("dict[str, typing.Any]", _inline_defs(schema))


def _inline_defs(schema: dict[str, typing.Any]) -> object:
    """Resolve pydantic's local ``$defs`` so a schema stands alone inside another document."""
    defs = schema.pop("$defs", {})

    def resolve(node: object) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def _object_schema(obj_cls: type[VersionedObject]) -> dict[str, typing.Any]:
    key = obj_cls.OBJ_SERIAL_NAMESPACE
    data: dict[str, typing.Any] = {}
    for field in obj_cls.obj_fields.values():
        schema = _schema(field.annotation)
        if field.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if field.since:
            schema = {**schema, "description": f"since version {field.since}"}
        data[field.name] = schema
    return {
        "type": "object",
        "description": f"{obj_cls.obj_name()} {obj_cls.VERSION} (fingerprint "
        f"{object_fingerprint(obj_cls)})",
        "required": [f"{key}.name", f"{key}.version", f"{key}.data"],
        "properties": {
            f"{key}.name": {"const": obj_cls.obj_name()},
            f"{key}.namespace": {"const": obj_cls.OBJ_PROJECT_NAMESPACE},
            f"{key}.version": {"type": "string"},
            f"{key}.data": {"type": "object", "properties": data},
            f"{key}.changes": {"type": "array", "items": {"type": "string"}},
        },
    }


# --- types ---------------------------------------------------------------------------------------


def _key(obj_cls: type[VersionedObject]) -> str:
    return f"{obj_cls.OBJ_PROJECT_NAMESPACE}.{obj_cls.obj_name()}"


def _collect(obj_cls: type[VersionedObject], found: dict[str, type[VersionedObject]]) -> None:
    if _key(obj_cls) in found:
        return
    found[_key(obj_cls)] = obj_cls
    for field in obj_cls.obj_fields.values():
        for nested in objects_in(field.annotation):
            _collect(nested, found)


def _type_text(annotation: object) -> str:
    if isinstance(annotation, type) and issubclass(annotation, VersionedObject):
        return f"{annotation.obj_name()}@{annotation.OBJ_PROJECT_NAMESPACE}"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if args:
        name = getattr(origin, "__qualname__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join(_type_text(arg) for arg in args)}]"
    return str(annotation).replace("typing.", "")
