"""The RPC benchmark's pieces (RabbitMQ and NATS) (:mod:`benchmarks.rpc` runs them).

Each measured system has a server and a client that run in processes of their own
(``python -m benchmarks._rpc``, :mod:`benchmarks._rpc.__main__`):

* :mod:`~benchmarks._rpc.measure` - the four measurements, the same for every system, and
  :class:`~benchmarks._rpc.measure.Counts` (how many calls and casts);
* :mod:`~benchmarks._rpc.steward_peer`, :mod:`~benchmarks._rpc.oslo_peer`,
  :mod:`~benchmarks._rpc.raw_peer` and :mod:`~benchmarks._rpc.raw_acked_peer` - one system's
  server and client each;
* :mod:`~benchmarks._rpc.nats_peer` - the raw nats-py request/reply, NATS's limit (steward on
  NATS is :mod:`~benchmarks._rpc.steward_peer` with a ``nats://`` URL);
* :mod:`~benchmarks._rpc.broker` - the benchmark's own vhost on the machine's RabbitMQ, and
  a namespace of its own on the machine's NATS;
* :mod:`~benchmarks._rpc.memory` - the in-process figures: a ``memory://`` call and a bare
  asyncio request/reply pair (also used by :mod:`benchmarks.rpc_tracing`).
"""

from __future__ import annotations

import dataclasses
import importlib.util

__all__ = ["NATS_SYSTEMS", "SYSTEMS", "System", "system"]


@dataclasses.dataclass(frozen=True, slots=True)
class System:
    """One measured system: its name, the module of its peers, and what it runs on."""

    key: str
    """Its name on the peers' command line and in the JSON's column keys."""
    name: str
    """Its name in the tables."""
    peer: str
    """Module of :mod:`benchmarks._rpc` with its ``serving`` and ``connected``."""
    needs: tuple[str, ...]
    """Modules that must be importable for it to run."""
    uvloop: bool = False
    """Both of its processes run on uvloop's event loop."""

    def missing(self) -> list[str]:
        """Return the modules it needs that are not installed."""
        return [name for name in self.needs if importlib.util.find_spec(name) is None]


SYSTEMS = (
    System("oslo", "oslo.messaging", "oslo_peer", ("oslo_messaging",)),
    System("raw", "raw aio-pika", "raw_peer", ("aio_pika",)),
    System("raw_uvloop", "raw aio-pika+uvloop", "raw_peer", ("aio_pika", "uvloop"), uvloop=True),
    System(
        "raw_acked",
        "raw+uvloop, acks+confirms",
        "raw_acked_peer",
        ("aio_pika", "uvloop"),
        uvloop=True,
    ),
    System("steward", "steward", "steward_peer", ()),
    System("steward_uvloop", "steward+uvloop", "steward_peer", ("uvloop",), uvloop=True),
)
"""Every system on RabbitMQ, in the order of the tables (each repetition starts one further
along)."""

NATS_SYSTEMS = (
    System("steward_nats", "steward on NATS", "steward_peer", ("nats",)),
    System("raw_nats", "raw nats-py", "nats_peer", ("nats",)),
)
"""Every system on NATS (core NATS, no JetStream), in the order of the NATS table."""


def system(key: str) -> System:
    """Return the system ``key``; raise :class:`LookupError` naming the known ones."""
    every = (*SYSTEMS, *NATS_SYSTEMS)
    for known in every:
        if known.key == key:
            return known
    raise LookupError(f"no system {key!r}; expected one of {', '.join(s.key for s in every)}")
