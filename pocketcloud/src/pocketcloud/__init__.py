"""pocketcloud: a small compute, volume and network control plane built on steward.

It runs the seed's own examples as a working system: an ``api`` (REST, OpenAPI), a ``scheduler``
(filters and weighers over the compute hosts' reported resources), ``compute`` (instances through
the ``fake`` or ``process`` driver), ``volume`` (``fake`` or ``file`` driver) and ``network``
(FlatManager or VlanManager over a network driver). Each is a steward service wrapping a manager
that owns its tables and is the only code that changes them (*smart managers, dumb data*); they
ask each other through versioned RPC API classes, as nova's ``rpcapi.py`` modules do.

``pocketcloud up`` runs all of it in one process (:mod:`pocketcloud.allinone`), or one process
per service on a broker (:mod:`pocketcloud.services`, also the ``pocketcloud-<service>``
commands). This package imports nothing itself: a guest process of the ``process`` driver starts
with it, and stays light.
"""

from __future__ import annotations

__all__ = ["TOPICS"]

TOPICS = ("api", "network", "volume", "scheduler", "compute")
"""The services' topics, in the order an all-in-one process starts them."""
