"""The NATS transport's options: ``settings.nats`` (nats://).

Each option also answers to its flat name, as before the options had a section of their own:
``nats_jetstream = true`` in a config file, ``STEWARD_NATS_JETSTREAM`` in the environment,
``nats_jetstream=True`` as a keyword. Read once, when a transport is made.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel, ConfigDict

from steward.config._option import option

__all__ = ["NatsSettings"]


class NatsSettings(BaseModel):
    """Options of the NATS transport, under ``settings.nats``; frozen like every setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    jetstream: bool = option(
        False,
        "Casts and notifications through JetStream, at-least-once (off: core NATS, "
        "at-most-once). A transport URL's ?jetstream= overrides it.",
        flat="nats_jetstream",
    )
    stream_storage: typing.Literal["file", "memory"] = option(
        "file",
        "JetStream: where the stream keeps messages (memory: lost on restart).",
        flat="nats_stream_storage",
    )
    stream_replicas: int = option(
        1, "JetStream: copies of the stream in a cluster.", flat="nats_stream_replicas", ge=1, le=5
    )
    stream_max_age: float = option(
        0.0,
        "JetStream: seconds a message may wait in the stream; 0: no limit.",
        flat="nats_stream_max_age",
        ge=0,
    )
    ack_wait: float = option(
        30.0,
        "JetStream: seconds after which the unsettled messages of a consumer that died or lost "
        "its connection are redelivered to another.",
        flat="nats_ack_wait",
        gt=0,
    )
    reconnect_wait: float = option(
        2.0,
        "Seconds between reconnection attempts to a server.",
        flat="nats_reconnect_wait",
        gt=0,
    )
