"""The request context, and the current one in a context variable.

A :class:`RequestContext` says who asked for the work in progress (user, project, roles), and
carries the request id that ties together every log line, RPC hop and notification of one
request. It travels inside RPC messages as oslo.messaging's ``_context_<key>`` fields, so
:meth:`RequestContext.to_dict` uses oslo.context's keys (``user``, ``project_id``, ``project``,
``is_admin``, ``request_id``...) plus the ones nova adds (``user_id``, ``read_deleted``,
``timestamp``...), and :meth:`RequestContext.from_dict` reads what oslo.context and nova send.
Keys it does not know are kept in :attr:`RequestContext.extra` and sent on again, never dropped.

While a request is handled, its context is the *current* one (:func:`get_current`), held in a
:class:`contextvars.ContextVar`, so it follows the work across ``await`` and into executor threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import logging
import typing
import uuid
from collections.abc import Iterator

from steward.redact import shorten

__all__ = [
    "RequestContext",
    "RequestContextFilter",
    "bind",
    "generate_request_id",
    "get_admin_context",
    "get_current",
]

# nova serialises the timestamp with this format (nova.utils.strtime).
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_READ_DELETED = ("no", "yes", "only")
_FLAGS = ("is_admin", "read_only", "show_deleted", "is_admin_project")
_BOOL = frozenset({bool})
_STR = frozenset({str})

# oslo.context's short keys for fields steward (and nova) name with an ``_id`` suffix.
_OSLO_ALIASES = {
    "user": "user_id",
    "project": "project_id",
    "tenant": "project_id",
    "domain": "domain_id",
    "user_domain": "user_domain_id",
    "project_domain": "project_domain_id",
}
# Keys to_dict() writes that are derived from fields, so from_dict() must not keep them as extras.
_DERIVED_KEYS = frozenset({*_OSLO_ALIASES, "user_identity"})


def generate_request_id() -> str:
    """Return a new request id in oslo.context's form, ``req-<uuid4>``."""
    return f"req-{uuid.uuid4()}"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(kw_only=True, slots=True)
class RequestContext:
    """Who is asking, and under which request id.

    ``request_id`` is generated (``req-<uuid4>``) when not given; ``timestamp`` defaults to now
    (UTC). ``auth_token`` is never shown: it is left out of ``repr`` and so of log lines.
    ``read_deleted`` is nova's: ``"no"`` (default), ``"yes"`` or ``"only"``. The flags
    (``is_admin``, ``read_only``, ``show_deleted``, ``is_admin_project``) must be booleans and
    ``roles`` a list of strings, else ``TypeError``: a context restored from a message with
    ``is_admin: "yes"`` is refused, never taken for its truth value.
    """

    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    user_name: str | None = None
    project_name: str | None = None
    system_scope: str | None = None
    roles: list[str] = dataclasses.field(default_factory=list)
    is_admin: bool = False
    is_admin_project: bool = True
    read_only: bool = False
    show_deleted: bool = False
    read_deleted: str = "no"
    request_id: str = dataclasses.field(default_factory=generate_request_id)
    global_request_id: str | None = None
    resource_uuid: str | None = None
    timestamp: datetime.datetime = dataclasses.field(default_factory=_utcnow)
    auth_token: str | None = dataclasses.field(default=None, repr=False)
    extra: dict[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # A context restored from a message is who asks and what they may do: a flag that is not
        # a boolean ("yes", 1) is refused, never taken for its truth value. (One expression for
        # the usual case: this runs for every request a server handles.)
        flags = (self.is_admin, self.read_only, self.show_deleted, self.is_admin_project)
        if not _BOOL.issuperset(map(type, flags)):
            self._refuse_flags()
        if type(self.roles) is not list or not _STR.issuperset(map(type, self.roles)):
            self._refuse_roles()
        if self.read_deleted not in _READ_DELETED:
            raise ValueError(
                f"`read_deleted` must be one of {', '.join(_READ_DELETED)}, "
                f"got {shorten(repr(self.read_deleted))}"
            )

    def _refuse_flags(self) -> None:
        for name in _FLAGS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(
                    f"`{name}` must be true or false, got {type(value).__name__} "
                    f"{shorten(repr(value))}"
                )

    def _refuse_roles(self) -> None:
        if not isinstance(self.roles, list) or not all(
            isinstance(role, str) for role in self.roles
        ):
            raise TypeError(f"`roles` must be a list of strings, got {shorten(repr(self.roles))}")

    @property
    def user_identity(self) -> str:
        """oslo.context's ``"user project domain user_domain project_domain"``, ``-`` if unset."""
        parts = (
            self.user_id,
            self.project_id,
            self.domain_id,
            self.user_domain_id,
            self.project_domain_id,
        )
        return " ".join(part or "-" for part in parts)

    def to_dict(self) -> dict[str, typing.Any]:
        """Return the context as oslo.context and nova write it, extras included.

        The result is JSON-ready: the timestamp is a string in nova's format.
        """
        values: dict[str, typing.Any] = {
            # oslo.context 6.x to_dict(), in its order.
            "user": self.user_id,
            "project_id": self.project_id,
            "system_scope": self.system_scope,
            "project": self.project_id,
            "domain": self.domain_id,
            "user_domain": self.user_domain_id,
            "project_domain": self.project_domain_id,
            "is_admin": self.is_admin,
            "read_only": self.read_only,
            "show_deleted": self.show_deleted,
            "auth_token": self.auth_token,
            "request_id": self.request_id,
            "global_request_id": self.global_request_id,
            "resource_uuid": self.resource_uuid,
            "roles": list(self.roles),
            "user_identity": self.user_identity,
            "is_admin_project": self.is_admin_project,
            # What nova's RequestContext adds.
            "user_id": self.user_id,
            "user_name": self.user_name,
            "project_name": self.project_name,
            "read_deleted": self.read_deleted,
            "timestamp": self.timestamp.strftime(_TIMESTAMP_FORMAT),
        }
        for key, value in self.extra.items():
            values.setdefault(key, value)
        return values

    @classmethod
    def from_dict(cls, values: typing.Mapping[str, typing.Any]) -> RequestContext:
        """Build a context from what :meth:`to_dict`, oslo.context or nova produced.

        Accepts oslo's ``user``/``project``/``tenant`` and nova's ``user_id``/``project_id``.
        Keys it does not know land in :attr:`extra`.
        """
        remaining = dict(values)
        kwargs: dict[str, typing.Any] = {}
        for name in _field_names(cls):
            if name in remaining:
                kwargs[name] = remaining.pop(name)
        for alias, name in _OSLO_ALIASES.items():
            if kwargs.get(name) is None and remaining.get(alias) is not None:
                kwargs[name] = remaining[alias]
        for key in _DERIVED_KEYS:
            remaining.pop(key, None)
        # A null where a default exists (request id, roles, flags) means "use the default".
        for name in ("request_id", "roles", "read_deleted", *_FLAGS):
            if kwargs.get(name, ...) is None:
                del kwargs[name]
        timestamp = kwargs.pop("timestamp", None)
        if timestamp is not None:
            kwargs["timestamp"] = _parse_timestamp(timestamp)
        return cls(**kwargs, extra=remaining)

    def elevated(self, *, read_deleted: str | None = None) -> RequestContext:
        """Return a copy with admin rights (nova's ``elevated()``), same request id."""
        roles = self.roles if "admin" in self.roles else [*self.roles, "admin"]
        return dataclasses.replace(
            self,
            is_admin=True,
            roles=roles,
            read_deleted=read_deleted or self.read_deleted,
            extra=dict(self.extra),
        )


_FIELD_NAMES: dict[type[RequestContext], tuple[str, ...]] = {}


def _field_names(cls: type[RequestContext]) -> tuple[str, ...]:
    """Return the fields ``from_dict`` fills by name (once per class: it runs per request)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        names = _FIELD_NAMES[cls] = tuple(field.name for field in fields if field.name != "extra")
    return names


def _parse_timestamp(value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(
                f"`timestamp` must be an ISO 8601 time, got {shorten(repr(value))}"
            ) from exc
    else:
        raise TypeError(f"`timestamp` must be a string or datetime, got {shorten(repr(value))}")
    # nova writes naive UTC times.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def get_admin_context(*, read_deleted: str = "no") -> RequestContext:
    """Return a context with admin rights and no user, for the service's own work."""
    return RequestContext(is_admin=True, roles=["admin"], read_deleted=read_deleted)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "steward_request_context", default=None
)


def get_current() -> RequestContext | None:
    """Return the context of the request being handled here, or None outside any request."""
    return _current.get()


@contextlib.contextmanager
def bind(context: RequestContext | None) -> Iterator[RequestContext | None]:
    """Make ``context`` the current one inside the ``with`` block, then restore the previous."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (``-`` outside a request) to every log record it sees.

    Install it on a handler and put ``%(request_id)s`` in the format: each line of one request,
    across RPC hops and threads, then carries the same id without code passing it by hand.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        context = _current.get()
        # A request id comes with the request, from whoever sent it: a prefix of it at most.
        record.request_id = shorten(str(context.request_id)) if context is not None else "-"
        return True
