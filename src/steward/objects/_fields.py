"""A versioned object's fields: read from annotations, converted to and from OVO primitives.

A field is an annotated class attribute. Its type says how its value travels, as an
oslo.versionedobjects field class would: ``bool``, ``int``, ``float``, ``str`` as themselves,
``UUID`` as its string, ``datetime`` as OVO's ``DateTimeField`` (``2026-01-02T03:04:05Z``: UTC,
whole seconds), an :class:`enum.Enum` as its value, a nested object as its own primitive, and
``list[T]`` / ``dict[str, T]`` of any of these. ``T | None`` is nullable. ``Annotated[T,
Since("1.1")]`` says the field came with version 1.1 of its object: older versions never carry it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import inspect
import types
import typing
import uuid

import pydantic

if typing.TYPE_CHECKING:
    from steward.objects.base import VersionedObject

__all__ = ["Field", "Since", "default_factory", "fields_of", "isotime"]

_T = typing.TypeVar("_T")

_LAX = pydantic.ConfigDict(arbitrary_types_allowed=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Since:
    """``Annotated[T, Since("1.1")]``: the field exists from that version of its object on."""

    version: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Factory:
    make: typing.Callable[[], object]


def default_factory(factory: typing.Callable[[], _T]) -> _T:
    """Return a field default made anew for each object by calling ``factory``.

    ``tags: list[str] = default_factory(list)``: each object gets a list of its own.
    """
    return typing.cast("_T", _Factory(factory))


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One field of a versioned object: its name, its type, and what it needs to travel."""

    name: str
    annotation: typing.Any
    nullable: bool
    since: str | None
    default: typing.Any  # dataclasses.MISSING when the field has none
    adapter: pydantic.TypeAdapter[typing.Any]

    @property
    def has_default(self) -> bool:
        """Whether an object made without this field gets a value for it."""
        return self.default is not dataclasses.MISSING

    def make_default(self) -> object:
        """Return a new default value (a copy, or what the factory makes)."""
        if isinstance(self.default, _Factory):
            return self.default.make()
        return copy.deepcopy(self.default)

    def validate(self, value: object) -> object:
        """Return ``value`` as the field's type (lax: ``"3"`` for an int is 3), or raise."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"field {self.name!r} is not nullable")
        return _utc(self.adapter.validate_python(value))

    def to_primitive(self, value: object, child_version: str | None) -> object:
        """Return ``value`` as OVO sends it; nested objects at ``child_version`` when given."""
        return _to_primitive(value, child_version)

    def from_primitive(self, primitive: object) -> object:
        """Return the field's value from what OVO sent."""
        if primitive is None:
            return None
        return self.validate(_from_primitive(self.annotation, primitive))

    def object_class(self) -> type[VersionedObject] | None:
        """Return the nested object class this field holds (itself, in a list or dict), if any."""
        return _object_class(self.annotation)


def fields_of(cls: type) -> dict[str, Field]:
    """Return the fields ``cls`` declares (its own and inherited), in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    inherited: dict[str, Field] = getattr(cls, "obj_fields", {})  # the parent's, already read
    found: dict[str, Field] = {}
    for klass in reversed(cls.__mro__):
        for name in inspect.get_annotations(klass):
            if name.startswith(("_", "obj_")) or name.isupper() or name not in hints:
                continue
            annotation = hints[name]
            if typing.get_origin(annotation) is typing.ClassVar:
                continue
            if name in cls.__dict__:
                default = cls.__dict__[name]
            elif name in inherited:
                default = inherited[name].default
            else:
                default = dataclasses.MISSING
            found[name] = _field(name, annotation, default)
    return found


def _field(name: str, annotation: object, default: object) -> Field:
    since = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        since = next((extra.version for extra in extras if isinstance(extra, Since)), None)
    inner, nullable = _strip_none(annotation)
    return Field(
        name=name,
        annotation=inner,
        nullable=nullable,
        since=since,
        default=default,
        adapter=pydantic.TypeAdapter(typing.cast("typing.Any", inner), config=_LAX),
    )


def _strip_none(annotation: object) -> tuple[object, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007 - built at run time
    return annotation, False


def _is_object_class(annotation: object) -> bool:
    from steward.objects.base import VersionedObject  # noqa: PLC0415 - base imports this module

    return isinstance(annotation, type) and issubclass(annotation, VersionedObject)


def _object_class(annotation: object) -> type[VersionedObject] | None:
    if _is_object_class(annotation):
        return typing.cast("type[VersionedObject]", annotation)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args:
        return _object_class(args[0])
    if typing.get_origin(annotation) is dict and len(args) == 2:  # noqa: PLR2004 - key and value
        return _object_class(args[1])
    return None


def _to_primitive(value: object, child_version: str | None) -> object:
    from steward.objects.base import VersionedObject  # noqa: PLC0415 - base imports this module

    if isinstance(value, VersionedObject):
        return value.obj_to_primitive(target_version=child_version)
    if isinstance(value, list):
        return [_to_primitive(item, child_version) for item in value]
    if isinstance(value, dict):
        return {key: _to_primitive(item, child_version) for key, item in value.items()}
    return _scalar_to_primitive(value)


def _scalar_to_primitive(value: object) -> object:
    if isinstance(value, datetime.datetime):
        return isotime(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _from_primitive(annotation: object, primitive: object) -> object:
    annotation, _ = _strip_none(annotation)
    if primitive is None:
        return None
    if _is_object_class(annotation):
        from steward.objects.base import VersionedObject  # noqa: PLC0415 - base imports this

        if not isinstance(primitive, dict):
            raise ValueError(f"a {annotation!r} travels as an object primitive, got {primitive!r}")
        return VersionedObject.obj_from_primitive(primitive)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args and isinstance(primitive, list):
        return [_from_primitive(args[0], item) for item in primitive]
    if typing.get_origin(annotation) is dict and len(args) == 2 and isinstance(primitive, dict):  # noqa: PLR2004 - key and value
        return {key: _from_primitive(args[1], item) for key, item in primitive.items()}
    return primitive


def isotime(value: datetime.datetime) -> str:
    """Return ``value`` as OVO's DateTimeField sends it: UTC, whole seconds, a ``Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: object) -> object:
    """Return a naive datetime as UTC (as OVO takes it); any other value as it is."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value
