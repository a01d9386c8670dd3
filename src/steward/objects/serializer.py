"""Versioned objects on RPC: to primitives on the way out, back to objects on the way in.

Every steward serializer sends a :class:`~steward.objects.VersionedObject` (in an argument or a
result, inside lists and dicts too) as its primitive, and an endpoint argument annotated with an
object class receives the object (:func:`steward.objects.convert.objects_from`, used by the
dispatcher). What the
:class:`ObjectSerializer` adds, as oslo.versionedobjects' ``VersionedObjectSerializer`` does:

* every object primitive that comes back (a call's result, an argument of an endpoint not
  annotated with its class) is turned into its object when its class is registered here;
* ``version_manifest`` (object name -> version) backports the objects that leave to what the
  other side knows — nova's ``[upgrade_levels]`` pinning, for objects.

A primitive newer than this process knows raises
:class:`~steward.errors.IncompatibleObjectVersion`, as OVO does.
"""

from __future__ import annotations

import typing

from steward.objects.convert import from_primitives, to_primitives
from steward.rpc.serializer import Serializer

if typing.TYPE_CHECKING:
    from steward.context import RequestContext

__all__ = ["ObjectSerializer"]


class ObjectSerializer(Serializer):
    """Objects out as primitives (backported by ``version_manifest``), primitives in as objects.

    Give it to an :class:`~steward.rpc.RPCClient` so results come back as objects, and a version
    manifest so objects leave at the versions the servers know.
    """

    def __init__(self, version_manifest: typing.Mapping[str, str] | None = None) -> None:
        self.version_manifest = dict(version_manifest or {})

    def serialize_entity(self, context: RequestContext | None, entity: object) -> object:
        """Return ``entity`` with its objects as primitives, at the manifest's versions."""
        return to_primitives(entity, self.version_manifest)

    def deserialize_entity(self, context: RequestContext | None, entity: object) -> object:
        """Return ``entity`` with every registered object primitive made into its object."""
        return from_primitives(entity)
