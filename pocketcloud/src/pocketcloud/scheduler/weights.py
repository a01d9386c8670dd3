"""Scheduler weighers: among the hosts that passed the filters, which is best.

As nova's: each weigher gives every host a raw figure, normalised to 0..1 across the hosts and
multiplied by its multiplier; the host with the highest sum wins, ties going to the first name.
The RAM weigher with a positive ``ram_weight_multiplier`` spreads servers (more free RAM is
better); a negative one stacks them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pocketcloud.scheduler.host_state import HostState

__all__ = ["normalize", "weigh_hosts"]


def normalize(values: Sequence[float]) -> list[float]:
    """Scale ``values`` to 0..1 (all zero when they are all equal), as nova's weighers do."""
    low, high = min(values), max(values)
    if high == low:
        return [0.0 for _ in values]
    return [(value - low) / (high - low) for value in values]


def weigh_hosts(hosts: Sequence[HostState], *, ram_weight_multiplier: float) -> list[HostState]:
    """Return ``hosts`` best first by free RAM times ``ram_weight_multiplier``."""
    if not hosts:
        return []
    weights = [
        ram_weight_multiplier * weight
        for weight in normalize([float(host.free_ram_mb) for host in hosts])
    ]
    ranked = sorted(zip(weights, hosts, strict=True), key=lambda pair: (-pair[0], pair[1].host))
    return [host for _, host in ranked]
