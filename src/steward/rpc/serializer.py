"""Serializer: the hook that turns user types into JSON and back, on both sides of a call.

As oslo.messaging's ``Serializer``: the client calls :meth:`Serializer.serialize_entity` on each
argument and :meth:`Serializer.deserialize_entity` on the result; the server does the reverse;
:meth:`Serializer.serialize_context` / :meth:`Serializer.deserialize_context` carry the request
context. The default serializer passes JSON values through, sends versioned objects
(:mod:`steward.objects`) as their primitives, and carries a
:class:`~steward.context.RequestContext` as oslo.context's dict.
"""

from __future__ import annotations

import typing

from steward.context import RequestContext
from steward.objects.convert import to_primitives

__all__ = ["NoOpSerializer", "Serializer"]


class Serializer:
    """Base serializer: JSON values pass through, objects as primitives; contexts as dicts.

    Subclass it to carry your own types (override the ``*_entity`` methods) or your own context
    class (override the ``*_context`` methods). ``context`` is the request's context, for
    serializers that depend on who asks.
    """

    def serialize_entity(self, context: RequestContext | None, entity: object) -> object:
        """Return a JSON-ready form of ``entity`` (an argument or a result).

        Versioned objects in it go as their primitives (at their own versions: an
        :class:`~steward.objects.serializer.ObjectSerializer` backports them).
        """
        return to_primitives(entity)

    def deserialize_entity(self, context: RequestContext | None, entity: object) -> object:
        """Return the object that the JSON value ``entity`` stands for."""
        return entity

    def serialize_context(self, context: RequestContext | None) -> dict[str, typing.Any]:
        """Return the context as the dict that travels in ``_context_*`` fields."""
        return context.to_dict() if context is not None else {}

    def deserialize_context(self, context: dict[str, typing.Any]) -> RequestContext:
        """Return the context a server's method receives from the sent dict."""
        return RequestContext.from_dict(context)


NoOpSerializer = Serializer
"""oslo.messaging's name for the pass-through serializer."""
