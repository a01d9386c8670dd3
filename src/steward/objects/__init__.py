"""Versioned objects: typed data that survives rolling upgrades, OVO-compatible on the wire.

::

    class Flavor(VersionedObject):
        OBJ_SERIAL_NAMESPACE = "nova_object"
        OBJ_PROJECT_NAMESPACE = "nova"
        VERSION = "1.1"

        name: str
        vcpus: int
        extra_specs: Annotated[dict[str, str] | None, Since("1.1")] = None

    flavor = Flavor(name="m1.small", vcpus=1)
    flavor.obj_to_primitive(target_version="1.0")  # no extra_specs: 1.0 does not know it

See :mod:`steward.objects.base` for the object, :mod:`steward.objects._fields` for how each field
type travels.
"""

from __future__ import annotations

from steward.objects._fields import Field, Since, default_factory, isotime
from steward.objects.base import (
    IncompatibleObjectVersion,
    ObjectError,
    UnsupportedObjectError,
    VersionedObject,
    VersionedObjectRegistry,
)

__all__ = [
    "Field",
    "IncompatibleObjectVersion",
    "ObjectError",
    "Since",
    "UnsupportedObjectError",
    "VersionedObject",
    "VersionedObjectRegistry",
    "default_factory",
    "isotime",
]
