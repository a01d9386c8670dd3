"""VersionedObject: typed data with a version, compatible with oslo.versionedobjects on the wire.

A subclass declares its fields as annotated attributes (see :mod:`steward.objects._fields`) and
its ``VERSION``; it is registered by name (its class name, or ``name=`` in the class statement)
and version as it is defined. Its primitive is OVO's::

    {"nova_object.name": "Instance", "nova_object.namespace": "nova",
     "nova_object.version": "1.2", "nova_object.data": {...}, "nova_object.changes": [...]}

with ``OBJ_SERIAL_NAMESPACE`` ("nova_object") as the keys' prefix and ``OBJ_PROJECT_NAMESPACE``
("nova") as the namespace, so a nova-shaped object crosses between steward and OpenStack
services. OVO's method names are kept: :meth:`~VersionedObject.obj_to_primitive`,
:meth:`~VersionedObject.obj_from_primitive`, :meth:`~VersionedObject.obj_what_changed`,
:meth:`~VersionedObject.obj_reset_changes`, :meth:`~VersionedObject.obj_make_compatible`.

Backporting (``obj_to_primitive(target_version=...)``) drops the fields the target version does
not know (``Since``) without hand-written code, backports nested objects to the version their
parent's version implies (``obj_relationships``, as OVO's), then calls
:meth:`~VersionedObject.obj_make_compatible` for whatever else changed. A primitive newer than
the newest registered version of its object raises
:class:`~steward.objects.IncompatibleObjectVersion`, as OVO does.
"""

from __future__ import annotations

import copy
import dataclasses
import typing

from steward.errors import IncompatibleObjectVersion, ObjectError, UnsupportedObjectError
from steward.objects._fields import Field, fields_of

__all__ = [
    "IncompatibleObjectVersion",
    "ObjectError",
    "UnsupportedObjectError",
    "VersionedObject",
    "VersionedObjectRegistry",
    "parse_version",
]


_LONGEST_VERSION = 19  # two 9-digit numbers and a dot: int() of anything longer is refused


def parse_version(version: str) -> tuple[int, int]:
    """Return ``"MAJOR.MINOR"`` as a pair of ints; raise ValueError for anything else."""
    major, dot, minor = version.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit() or len(version) > _LONGEST_VERSION:
        raise ValueError(f"an object version is 'MAJOR.MINOR', got {version!r}")
    return int(major), int(minor)


class VersionedObjectRegistry:
    """Object classes by namespace, name and version."""

    _classes: typing.ClassVar[
        dict[tuple[str, str], dict[tuple[int, int], type[VersionedObject]]]
    ] = {}

    @classmethod
    def register(cls, obj_cls: type[VersionedObject]) -> None:
        """Register ``obj_cls`` under its namespace, name and version (a redefinition wins)."""
        key = (obj_cls.OBJ_PROJECT_NAMESPACE, obj_cls.obj_name())
        cls._classes.setdefault(key, {})[parse_version(obj_cls.VERSION)] = obj_cls

    @classmethod
    def versions(cls, namespace: str, name: str) -> dict[tuple[int, int], type[VersionedObject]]:
        """Return the registered classes of object ``name``, by version."""
        return dict(cls._classes.get((namespace, name), {}))

    @classmethod
    def lookup(cls, namespace: str, name: str, version: str) -> type[VersionedObject]:
        """Return the class that can read ``version`` of ``name``: the newest of that major.

        Raises :class:`UnsupportedObjectError` for an unknown object,
        :class:`IncompatibleObjectVersion` when every known version is older (or of another
        major).
        """
        known = cls._classes.get((namespace, name))
        if not known:
            raise UnsupportedObjectError(f"unsupported object type {namespace}.{name}")
        wanted = parse_version(version)
        same_major = [ver for ver in known if ver[0] == wanted[0] and ver >= wanted]
        if not same_major:
            newest = max(known)
            raise IncompatibleObjectVersion(name, version, f"{newest[0]}.{newest[1]}")
        return known[max(same_major)]


_MISSING = dataclasses.MISSING


class VersionedObject:
    """Base of versioned objects; see the module docstring.

    ``obj_relationships`` maps a field holding objects to ``[(parent version, child version),
    ...]``: backported to a parent version, the child goes at the child version of the highest
    parent version not above it (OVO's rule).
    """

    VERSION: typing.ClassVar[str] = "1.0"
    OBJ_SERIAL_NAMESPACE: typing.ClassVar[str] = "versioned_object"
    OBJ_PROJECT_NAMESPACE: typing.ClassVar[str] = "versionedobjects"
    obj_relationships: typing.ClassVar[dict[str, list[tuple[str, str]]]] = {}
    obj_fields: typing.ClassVar[dict[str, Field]] = {}
    _obj_name: typing.ClassVar[str | None] = None

    def __init_subclass__(
        cls, *, name: str | None = None, register: bool = True, **kwargs: object
    ) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls._obj_name = name
        elif "_obj_name" not in cls.__dict__:
            cls._obj_name = None
        parse_version(cls.VERSION)  # a malformed VERSION fails at the class statement
        cls.obj_fields = fields_of(cls)
        for field_name in cls.obj_fields:  # values live in _obj_values, not the class
            if field_name in cls.__dict__:
                delattr(cls, field_name)
        if register:
            VersionedObjectRegistry.register(cls)

    def __init__(self, **values: object) -> None:
        object.__setattr__(self, "_obj_values", {})
        object.__setattr__(self, "_obj_changes", set())
        unknown = set(values) - set(self.obj_fields)
        if unknown:
            raise TypeError(f"{self.obj_name()} has no field {sorted(unknown)[0]!r}")
        for field in self.obj_fields.values():
            if field.name in values:
                setattr(self, field.name, values[field.name])
            elif field.has_default:
                setattr(self, field.name, field.make_default())

    @classmethod
    def obj_name(cls) -> str:
        """Return the object's name on the wire: its class name unless the class says another."""
        return cls._obj_name or cls.__name__

    # --- values and changes ----------------------------------------------------------------

    def __getattr__(self, name: str) -> typing.Any:  # noqa: ANN401 - a field of any type
        # Reached for every field (values live in _obj_values) and for unknown names.
        if name in type(self).obj_fields:
            values = self.__dict__.get("_obj_values", {})
            if name in values:
                return values[name]
            return self.obj_load_attr(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        field = self.obj_fields.get(name)
        if field is None:
            object.__setattr__(self, name, value)
            return
        try:
            checked = field.validate(value)
        except ValueError as exc:  # pydantic's ValidationError is one
            raise ValueError(f"{self.obj_name()}.{name}: {exc}") from exc
        self._obj_values[name] = checked
        self._obj_changes.add(name)

    def __delattr__(self, name: str) -> None:
        if name in self.obj_fields:
            self._obj_values.pop(name, None)
            self._obj_changes.discard(name)
            return
        object.__delattr__(self, name)

    def obj_load_attr(self, attrname: str) -> typing.Any:  # noqa: ANN401 - a field of any type
        """Load an unset field (OVO's hook: lazy loading); by default the field is missing."""
        raise NotImplementedError(f"Cannot load '{attrname}' in the base class")

    def obj_attr_is_set(self, attrname: str) -> bool:
        """Return whether field ``attrname`` has a value."""
        return attrname in self._obj_values

    def obj_what_changed(self) -> set[str]:
        """Return the fields changed since the last reset, nested objects' changes included."""
        changed = set(self._obj_changes)
        for name, value in self._obj_values.items():
            if _has_changes(value):
                changed.add(name)
        return changed

    def obj_get_changes(self) -> dict[str, typing.Any]:
        """Return the changed fields and their values."""
        return {name: self._obj_values[name] for name in self.obj_what_changed()}

    def obj_reset_changes(
        self, fields: typing.Iterable[str] | None = None, *, recursive: bool = False
    ) -> None:
        """Forget the changes of ``fields`` (default: all); ``recursive``: of nested ones too."""
        names = set(self._obj_values) if fields is None else set(fields)
        if recursive:
            for name in names:
                for child in _objects_in(self._obj_values.get(name)):
                    child.obj_reset_changes(recursive=True)
        self._obj_changes.difference_update(names)

    def obj_clone(self) -> typing.Self:
        """Return a deep copy, changes included."""
        return copy.deepcopy(self)

    # --- primitives ------------------------------------------------------------------------

    def obj_to_primitive(
        self,
        target_version: str | None = None,
        version_manifest: typing.Mapping[str, str] | None = None,
    ) -> dict[str, typing.Any]:
        """Return the object as OVO's primitive, backported to ``target_version`` if given.

        ``version_manifest`` (object name -> version) pins nested objects, as OVO's does.
        """
        version = self.VERSION if target_version is None else target_version
        target = parse_version(version)
        if target > parse_version(self.VERSION):
            raise IncompatibleObjectVersion(self.obj_name(), version, self.VERSION)
        key = self.OBJ_SERIAL_NAMESPACE
        data: dict[str, typing.Any] = {}
        for name, value in self._obj_values.items():
            field = self.obj_fields[name]
            if field.since is not None and parse_version(field.since) > target:
                continue
            child = self._child_version(field, version, version_manifest)
            data[name] = field.to_primitive(value, child)
        primitive: dict[str, typing.Any] = {
            f"{key}.name": self.obj_name(),
            f"{key}.namespace": self.OBJ_PROJECT_NAMESPACE,
            f"{key}.version": version,
            f"{key}.data": data,
        }
        changes = sorted(name for name in self.obj_what_changed() if name in data)
        if changes:
            primitive[f"{key}.changes"] = changes
        if target_version is not None and target_version != self.VERSION:
            self.obj_make_compatible(data, target_version)
        return primitive

    def _child_version(
        self,
        field: Field,
        parent_version: str,
        version_manifest: typing.Mapping[str, str] | None,
    ) -> str | None:
        child_cls = field.object_class()
        if child_cls is None:
            return None
        if version_manifest is not None and child_cls.obj_name() in version_manifest:
            return version_manifest[child_cls.obj_name()]
        steps = self.obj_relationships.get(field.name)
        if not steps or parent_version == self.VERSION:
            return None
        wanted = parse_version(parent_version)
        fitting = [child for parent, child in steps if parse_version(parent) <= wanted]
        return fitting[-1] if fitting else None

    def obj_make_compatible(self, primitive: dict[str, typing.Any], target_version: str) -> None:
        """Change ``primitive`` (the data) for ``target_version``: the hook for what ``Since``
        and ``obj_relationships`` do not cover (a renamed field, a changed meaning).
        """  # noqa: D205 - the hook's contract needs both lines

    @classmethod
    def obj_from_primitive(cls, primitive: typing.Mapping[str, typing.Any]) -> VersionedObject:
        """Build the object a primitive describes, with the class registered for its version.

        Raises :class:`IncompatibleObjectVersion` for a version newer than this process knows,
        :class:`UnsupportedObjectError` for an unknown object or a malformed primitive.
        """
        key = cls._serial_key(primitive)
        try:
            name = primitive[f"{key}.name"]
            namespace = primitive[f"{key}.namespace"]
            version = primitive[f"{key}.version"]
            data = primitive[f"{key}.data"]
        except KeyError as exc:
            raise UnsupportedObjectError(
                f"not a versioned object primitive: {exc} missing"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(item, str) for item in (name, namespace, version)
        ):
            raise UnsupportedObjectError("a versioned object primitive with malformed keys")
        obj_cls = VersionedObjectRegistry.lookup(namespace, name, version)
        values: dict[str, typing.Any] = {}
        for field_name, value in data.items():
            field = obj_cls.obj_fields.get(field_name)
            if field is None:
                continue  # a field this version drops (a newer minor): OVO ignores it too
            try:
                values[field_name] = field.from_primitive(value)
            except ValueError as exc:  # pydantic's ValidationError is one
                raise UnsupportedObjectError(f"{name}.{field_name}: {exc}") from exc
        changes = {change for change in primitive.get(f"{key}.changes", []) if change in values}
        obj = obj_cls.__new__(obj_cls)
        object.__setattr__(obj, "_obj_values", values)
        object.__setattr__(obj, "_obj_changes", changes)
        return obj

    @staticmethod
    def _serial_key(primitive: typing.Mapping[str, typing.Any]) -> str:
        for key in primitive:
            if isinstance(key, str) and key.endswith(".name"):
                return key[: -len(".name")]
        raise UnsupportedObjectError("not a versioned object primitive: no '<namespace>.name'")

    def __repr__(self) -> str:
        values = ", ".join(
            f"{name}={self._obj_values[name]!r}" if name in self._obj_values else f"{name}=<?>"
            for name in self.obj_fields
        )
        return f"{self.obj_name()}({values})"

    if typing.TYPE_CHECKING:
        _obj_values: dict[str, typing.Any]
        _obj_changes: set[str]


def _objects_in(value: object) -> typing.Iterator[VersionedObject]:
    if isinstance(value, VersionedObject):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _objects_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _objects_in(item)


def _has_changes(value: object) -> bool:
    return any(child.obj_what_changed() for child in _objects_in(value))
