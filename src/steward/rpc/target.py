"""Target: where a message goes, and what a server or endpoint accepts.

As oslo.messaging's ``Target``: a client's target names the ``topic`` and optionally one
``server`` on it, or ``fanout`` to every server; the ``namespace`` and ``version`` it sends select
the endpoint. A server's target names the ``topic`` and ``server`` it listens on. An endpoint's
target (a ``target`` class attribute) names the ``namespace`` and ``version`` it implements.
"""

from __future__ import annotations

import dataclasses
import re

from steward.errors import InvalidTarget
from steward.redact import shorten

__all__ = ["Target", "is_version", "parse_version", "version_is_compatible"]

# At most nine digits a part: a version comes from the wire too, and int() of a long run of
# digits is slow (and refused past 4300 digits).
_VERSION = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
# Topic and server names end up in routing keys, subjects and queue names.
_NAME = re.compile(r"^[A-Za-z0-9_\-.:@]+$")


def is_version(version: str) -> bool:
    """Return whether ``version`` has the ``"MAJOR.MINOR"`` shape :func:`parse_version` reads."""
    return _VERSION.match(version) is not None


def parse_version(version: str) -> tuple[int, int]:
    """Return ``(major, minor)`` of ``"X.Y"``; raises :class:`InvalidTarget` otherwise."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        shown = shorten(version) if isinstance(version, str) else version
        raise InvalidTarget(f"a version must be 'MAJOR.MINOR' such as '1.0', got {shown!r}")
    return int(match.group(1)), int(match.group(2))


def version_is_compatible(implemented: str, requested: str) -> bool:
    """Return whether an endpoint at ``implemented`` can serve a request for ``requested``.

    Same major version, and the implemented minor at least the requested one (oslo's rule).
    """
    implemented_major, implemented_minor = parse_version(implemented)
    requested_major, requested_minor = parse_version(requested)
    return implemented_major == requested_major and implemented_minor >= requested_minor


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes, or what a server or endpoint accepts.

    ``topic`` is the service's topic (``"compute"``); ``server`` one host on it; ``fanout``
    sends a cast to every server of the topic; ``namespace`` and ``version`` (``"MAJOR.MINOR"``)
    choose the endpoint; ``exchange`` overrides the ``control_exchange`` setting on RabbitMQ.
    Construction checks the shape of each field and raises :class:`InvalidTarget`.
    """

    topic: str | None = None
    server: str | None = None
    namespace: str | None = None
    version: str = "1.0"
    fanout: bool = False
    exchange: str | None = None

    def __init__(  # noqa: PLR0917 - oslo's positional order: Target("compute", "host1")
        self,
        topic: str | None = None,
        server: str | None = None,
        namespace: str | None = None,
        version: str = "1.0",
        fanout: bool = False,
        exchange: str | None = None,
    ) -> None:
        for name, value in (("topic", topic), ("server", server), ("exchange", exchange)):
            if value is not None and (not isinstance(value, str) or not _NAME.match(value)):
                raise InvalidTarget(
                    f"`{name}` must be a non-empty name of letters, digits and _-.:@, "
                    f"got {value!r}",
                )
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidTarget(f"`namespace` must be a string or None, got {namespace!r}")
        if not isinstance(fanout, bool):
            raise InvalidTarget(f"`fanout` must be True or False, got {fanout!r}")
        parse_version(version)
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "server", server)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "fanout", fanout)
        object.__setattr__(self, "exchange", exchange)

    def replace(self, **changes: object) -> Target:
        """Return a copy with ``changes`` applied (checked like a new Target)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        parts = [f"{field.name}={getattr(self, field.name)}" for field in dataclasses.fields(self)]
        return "<Target " + ", ".join(parts) + ">"
