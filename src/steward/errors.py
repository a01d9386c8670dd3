"""Every public exception steward raises, in one hierarchy.

::

    StewardError
    ├── ConfigError (ValueError)           a setting is missing, malformed or out of range
    ├── DriverNotFound (LookupError)       no driver of that kind has that name
    ├── DriverLoadError (ImportError)      a driver was found but could not be loaded or built
    ├── MissingDependency (ImportError)    an optional library a feature needs is not installed
    ├── SchemaOutOfDate                    the database schema is behind this steward's migrations
    ├── ServiceNotFound (LookupError)      no service record for that host and binary
    ├── ServiceStartError                  a service could not start (a hook or a step failed)
    ├── ServiceFailed                      a running service failed (a task of it died) and stopped
    ├── BindingError (RuntimeError)        a manager was handed its collaborators twice, or late
    ├── PeriodicTaskError                  a periodic task was declared wrongly
    │   └── InvalidPeriodicTaskArg (ValueError, TypeError)
    ├── ObjectError                        a versioned object could not be built, read or sent
    │   ├── IncompatibleObjectVersion      an object version newer than this process knows
    │   └── UnsupportedObjectError         an object (or namespace) this process has no class for
    └── MessagingError                     anything RPC (oslo.messaging's names)
        ├── InvalidTransportURL (ValueError)   unknown scheme or malformed transport URL
        ├── InvalidTarget (ValueError)     a Target that cannot be sent to (no topic, call+fanout)
        ├── RPCVersionCapError             asked for a version above the client's version_cap
        ├── MessagingTimeout (TimeoutError)    no reply within the call's timeout
        ├── MessageDeliveryFailure         the transport could not hand the message over
        │   └── MessageUndeliverable       no server listens where a request was sent
        ├── MalformedMessage (ValueError)  bytes from the wire that are not a steward/oslo message
        ├── MessageTooLarge (ValueError)   a message above max_message_size
        ├── TransportClosed                the transport was closed while in use
        ├── RemoteError                    a remote exception whose class may not be imported here
        └── RPCDispatchError               the server could not run the requested method
            ├── UnsupportedVersion         no endpoint has that namespace and a compatible version
            ├── NoSuchMethod (AttributeError)  the endpoint has no public method of that name
            └── InvalidArguments (TypeError)   arguments do not match the method's signature

Names follow oslo.messaging where it has one (``MessagingTimeout``, ``RemoteError``,
``UnsupportedVersion``...). Each exception that mixes in a stdlib type does so where it is one, so
``except ValueError`` keeps working for callers that do not know steward.

An exception's ``args`` are its constructor's arguments (its message is built by ``__str__``), so
one raised by a remote method is re-created on the caller's side as ``cls(*args)``. Four travel
under the names an oslo.messaging server gives the same failure, so that oslo callers re-create
their own classes: ``NoSuchMethod`` and ``UnsupportedVersion`` (``oslo_messaging.rpc.dispatcher``),
``MessagingTimeout`` (``oslo_messaging.exceptions``) and ``InvalidArguments`` (``TypeError``); a
steward caller gets steward's back, from a steward or an oslo server (docs/rpc.md, "Errors").
"""

from __future__ import annotations

__all__ = [
    "BindingError",
    "ConfigError",
    "DriverLoadError",
    "DriverNotFound",
    "IncompatibleObjectVersion",
    "InvalidArguments",
    "InvalidPeriodicTaskArg",
    "InvalidTarget",
    "InvalidTransportURL",
    "MalformedMessage",
    "MessageDeliveryFailure",
    "MessageTooLarge",
    "MessageUndeliverable",
    "MessagingError",
    "MessagingTimeout",
    "MissingDependency",
    "NoSuchMethod",
    "ObjectError",
    "PeriodicTaskError",
    "RPCDispatchError",
    "RPCVersionCapError",
    "RemoteError",
    "SchemaOutOfDate",
    "ServiceFailed",
    "ServiceNotFound",
    "ServiceStartError",
    "StewardError",
    "TransportClosed",
    "UnsupportedObjectError",
    "UnsupportedVersion",
]


class StewardError(Exception):
    """The root of every exception steward raises on purpose."""


class ConfigError(StewardError, ValueError):
    """A setting has a value steward cannot use.

    Raised by :func:`steward.config.load_settings` (and so by every command that loads settings).
    The message names the option, the value that came and where it came from, and what is allowed.
    """


class DriverNotFound(StewardError, LookupError):
    """No driver of the requested kind is registered under the requested name.

    Raised by :func:`steward.drivers.load_driver`; :attr:`available` lists the names that exist.
    """

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        super().__init__(kind, name, available)
        self.kind = kind
        self.name = name
        self.available = available

    def __str__(self) -> str:
        listed = ", ".join(self.available) if self.available else "none are installed"
        return (
            f"no {self.kind!r} driver named {self.name!r}; available {self.kind!r} drivers: "
            f"{listed} (or give a 'module:Class' path)"
        )


class DriverLoadError(StewardError, ImportError):
    """A driver's module or class could not be imported, or is not the kind asked for.

    Raised by :func:`steward.drivers.load_driver`, chained to the original error.
    """


class MissingDependency(StewardError, ImportError):
    """A feature needs a library of one of steward's extras, and it is not installed.

    Raised where the feature is first used (:func:`steward.rpc.get_transport` for a broker URL,
    the debug console, metrics, tracing export, a PostgreSQL database), chained to the
    ``ModuleNotFoundError``. The message names the extra: ``pip install 'steward-rpc[amqp]'``.
    """


class SchemaOutOfDate(StewardError):
    """The database schema is older than this steward's; run ``steward db upgrade``.

    Raised by :meth:`steward.db.Database.ensure_schema` at service start-up on a database
    steward does not upgrade by itself (anything but the embedded SQLite).
    """


class ServiceNotFound(StewardError, LookupError):
    """The registry has no record of a service with that host and binary."""

    def __init__(self, host: str, binary: str) -> None:
        super().__init__(host, binary)
        self.host = host
        self.binary = binary

    def __str__(self) -> str:
        return f"no service {self.binary!r} on host {self.host!r} in the registry"


class ServiceStartError(StewardError):
    """A service could not start; what it had started was stopped again.

    Raised by :meth:`steward.service.Service.start`, chained to the hook's or step's error.
    """


class ServiceFailed(StewardError):
    """A running service failed: a task of it died of an error, and the service was stopped.

    Raised by :meth:`steward.service.Service.wait` and :meth:`~steward.service.Service.serve`,
    chained to the task's error (also kept in :attr:`~steward.service.Service.failure`).
    """


class BindingError(StewardError, RuntimeError):
    """A manager or periodic scheduler was handed its collaborators twice, or after it started.

    Raised by :meth:`steward.Manager.bind` and :meth:`steward.PeriodicScheduler.bind`: a manager
    is run by one service, which hands it the collaborators once, when it wraps it.
    """


class PeriodicTaskError(StewardError):
    """A periodic task is declared in a way steward cannot schedule."""


class InvalidPeriodicTaskArg(PeriodicTaskError, ValueError, TypeError):
    """An argument of :func:`steward.periodic_task` has the wrong type or value.

    The name follows oslo.service's ``InvalidPeriodicTaskArg``; it is both a ``ValueError`` and a
    ``TypeError`` so either ``except`` clause catches it.
    """


class ObjectError(StewardError):
    """A versioned object could not be built, read or sent."""


class IncompatibleObjectVersion(ObjectError):
    """A primitive names a version of its object that this process does not know (too new).

    Raised by :meth:`steward.objects.VersionedObject.obj_from_primitive` (so by a server given
    such an object as an argument), with OVO's words.
    """

    def __init__(self, objname: str, objver: str, supported: str) -> None:
        super().__init__(objname, objver, supported)  # the args re-create it across RPC
        self.objname = objname
        self.objver = objver
        self.supported = supported

    def __str__(self) -> str:
        return (
            f"Version {self.objver} of {self.objname} is not supported, supported version is "
            f"{self.supported}"
        )


class UnsupportedObjectError(ObjectError):
    """A primitive names an object (or namespace) this process has no class for."""


class MessagingError(StewardError):
    """The root of RPC and notification errors (oslo.messaging's ``MessagingException``)."""


class InvalidTransportURL(MessagingError, ValueError):
    """``transport_url`` has an unknown scheme or cannot be parsed.

    Raised by :func:`steward.rpc.get_transport`; the message lists the known schemes.
    """


class InvalidTarget(MessagingError, ValueError):
    """A :class:`~steward.rpc.Target` cannot be used for what was asked.

    Raised on the caller's side: a target without a topic, ``call`` with ``fanout=True``, a
    malformed version string.
    """

    def __init__(self, message: str, target: object = None) -> None:
        super().__init__(message)
        self.target = target


class RPCVersionCapError(MessagingError):
    """The call asks for a version above the client's ``version_cap``.

    Raised by :meth:`RPCClient.call` / ``cast`` before anything is sent; check
    :meth:`RPCClient.can_send_version` first to fall back to an older version.
    """

    def __init__(self, version: str, version_cap: str) -> None:
        super().__init__(version, version_cap)
        self.version = version
        self.version_cap = version_cap

    def __str__(self) -> str:
        return (
            f"requested message version {self.version} is above the version cap "
            f"{self.version_cap}; check can_send_version() and send an older version"
        )


class MessagingTimeout(MessagingError, TimeoutError):
    """No reply came within the call's timeout.

    Raised by :meth:`RPCClient.call`; a reply that comes later is logged and dropped.
    """


class MessageDeliveryFailure(MessagingError):
    """The transport could not hand a message to the broker (after its retries)."""


class MessageUndeliverable(MessageDeliveryFailure):
    """A request was sent where no server listens: no queue for its topic (or server) exists.

    Raised at once by :meth:`~steward.rpc.RPCClient.call` and :meth:`~steward.rpc.RPCClient.cast`
    instead of the request being dropped (a cast lost) or waited for (a call timing out): on
    RabbitMQ from the broker's return of the mandatory publish (``NO_ROUTE``), on NATS from its
    no-responders status, on ``memory://`` from the missing queue. A fanout to no server is not
    an error. oslo.messaging has an exception of this name for the same case.
    """

    def __init__(self, destination: str) -> None:
        super().__init__(destination)
        self.destination = destination

    def __str__(self) -> str:
        return (
            f"no server listens on {self.destination}: nothing consumes that topic "
            "(is the service running, and are the topic and server names right?)"
        )


class MalformedMessage(MessagingError, ValueError):
    """Bytes from the wire are not a message steward or oslo.messaging would send.

    Raised while decoding; a server logs it, answers with it when the message names a reply
    address, and keeps serving.
    """


class MessageTooLarge(MessagingError, ValueError):
    """A message is larger than ``max_message_size``; it is neither sent nor handled."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return (
            f"message of {self.size} bytes is larger than max_message_size ({self.limit} "
            f"bytes); send less data per call or raise the setting on both sides"
        )


class TransportClosed(MessagingError):
    """The transport was closed while a call, cast or listener was using it."""


class RemoteError(MessagingError):
    """An exception raised by the remote method whose class may not be re-created here.

    The client re-raises a remote exception as its own class only when the class's module is in
    ``allowed_remote_exmods`` (or is ``builtins`` or steward's own errors); anything else arrives
    as this, with the remote class name, message and traceback text. Nothing named by a message is
    ever imported otherwise.
    """

    def __init__(
        self,
        exc_type: str | None = None,
        value: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(exc_type, value, traceback)
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback

    def __str__(self) -> str:
        return f"Remote error: {self.exc_type} {self.value}\n{self.traceback}."


class RPCDispatchError(MessagingError):
    """The server received the request but could not run the method it names."""


class UnsupportedVersion(RPCDispatchError):
    """No endpoint has the requested namespace and a compatible version.

    Compatible means same major version and a minor version at least the requested one.
    """

    def __init__(self, version: str, method: str | None = None) -> None:
        super().__init__(version, method)
        self.version = version
        self.method = method

    def __str__(self) -> str:
        message = f"Endpoint does not support RPC version {self.version}"
        return f"{message}. Attempted method: {self.method}" if self.method else message


class NoSuchMethod(RPCDispatchError, AttributeError):
    """The matching endpoint has no public method of the requested name."""

    def __init__(self, method: str) -> None:
        super().__init__(method)
        self.method = method

    def __str__(self) -> str:
        return f"Endpoint does not support RPC method {self.method}"


class InvalidArguments(RPCDispatchError, TypeError):
    """The request's arguments do not fit the method's signature and type hints; nothing ran.

    The message names the method and each argument that is missing, unexpected or of the
    wrong type.
    """
