"""Versioned objects in RPC values: to primitives, and back by annotation or by registry.

Used by every serializer (:meth:`steward.rpc.Serializer.serialize_entity` sends objects as their
primitives), by the dispatcher (an argument annotated with an object class receives the object:
:func:`objects_from`) and by :class:`~steward.objects.serializer.ObjectSerializer`.
"""

from __future__ import annotations

import types
import typing

from steward.errors import UnsupportedObjectError
from steward.objects.base import VersionedObject, VersionedObjectRegistry

__all__ = ["from_primitives", "holds_objects", "objects_from", "objects_in", "to_primitives"]


def to_primitives(
    value: object, version_manifest: typing.Mapping[str, str] | None = None
) -> object:
    """Return ``value`` with every object in it as its primitive (the same value if none).

    ``version_manifest`` backports each object to the version it names for its class.
    """
    if isinstance(value, VersionedObject):
        target = version_manifest.get(value.obj_name()) if version_manifest else None
        return value.obj_to_primitive(target_version=target, version_manifest=version_manifest)
    if isinstance(value, list | tuple):
        items = [to_primitives(item, version_manifest) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        converted = {key: to_primitives(item, version_manifest) for key, item in value.items()}
        return value if all(converted[k] is value[k] for k in value) else converted
    return value


def from_primitives(value: object) -> object:
    """Return ``value`` with every registered object primitive in it made into its object."""
    if isinstance(value, dict):
        if _is_object_primitive(value):
            return VersionedObject.obj_from_primitive(value)
        return {key: from_primitives(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_primitives(item) for item in value]
    return value


def _is_object_primitive(value: dict[str, typing.Any]) -> bool:
    for key in value:
        if isinstance(key, str) and key.endswith(".name"):
            prefix = key.removesuffix(".name")
            namespace, name = value.get(f"{prefix}.namespace"), value.get(key)
            return (
                isinstance(namespace, str)
                and isinstance(name, str)
                and f"{prefix}.data" in value
                and bool(VersionedObjectRegistry.versions(namespace, name))
            )
    return False


def _strip(annotation: object) -> object:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _strip(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def objects_in(annotation: object) -> list[type[VersionedObject]]:
    """Return the versioned object classes ``annotation`` names: itself, or inside it."""
    if isinstance(annotation, type) and issubclass(annotation, VersionedObject):
        return [annotation]
    found: list[type[VersionedObject]] = []
    for arg in typing.get_args(annotation):
        found.extend(objects_in(arg))
    return found


def holds_objects(annotation: object) -> bool:
    """Return whether an argument of type ``annotation`` carries versioned objects."""
    return bool(objects_in(annotation))


def objects_from(annotation: object, value: object) -> object:
    """Return ``value`` (JSON from the wire) with the objects ``annotation`` names made.

    A value that is not an object's primitive where one is expected is left as it is, for the
    argument check to refuse by name; an unknown object raises
    :class:`~steward.errors.UnsupportedObjectError`, a too new one
    :class:`~steward.errors.IncompatibleObjectVersion`.
    """
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, VersionedObject):
        if isinstance(value, dict):
            try:
                return VersionedObject.obj_from_primitive(value)
            except UnsupportedObjectError:
                if any(isinstance(key, str) and key.endswith(".name") for key in value):
                    raise
        return value
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is list and args and isinstance(value, list):
        return [objects_from(args[0], item) for item in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):  # noqa: PLR2004 - K, V
        return {key: objects_from(args[1], item) for key, item in value.items()}
    return value
