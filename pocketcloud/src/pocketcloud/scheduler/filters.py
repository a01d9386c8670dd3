"""Scheduler filters: which compute hosts can take a server at all (nova's names).

Each filter keeps the hosts that pass it; the ``scheduler_enabled_filters`` setting says which run,
in order. When a filter leaves no host, the scheduler raises
:class:`~pocketcloud.errors.NoValidHost` naming that filter and what it looked for, so the
server's fault says why.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

from pocketcloud.errors import NoValidHost
from pocketcloud.objects import RequestSpec
from pocketcloud.scheduler.host_state import HostState

__all__ = [
    "FILTERS",
    "AvailabilityZoneFilter",
    "ComputeFilter",
    "DiskFilter",
    "HostFilter",
    "RamFilter",
    "filter_hosts",
]


class HostFilter(typing.Protocol):
    """A filter: whether one host can take the server, and what it looked for."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        """Return whether ``host`` can take the server ``spec`` describes."""
        ...

    def describe(self, spec: RequestSpec) -> str:
        """Say what a host needs to pass, for a fault message."""
        ...


class ComputeFilter:
    """Hosts whose compute service is enabled and up (heartbeats within service_down_time)."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        """Pass an enabled host that is up."""
        return host.enabled and host.up

    def describe(self, spec: RequestSpec) -> str:
        """Say what it looks for."""
        return "an enabled compute service that is up"


class RamFilter:
    """Hosts with at least the server's RAM free."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        """Pass a host with enough free RAM."""
        return host.free_ram_mb >= spec.ram_mb

    def describe(self, spec: RequestSpec) -> str:
        """Say what it looks for."""
        return f"{spec.ram_mb} MB of free RAM"


class DiskFilter:
    """Hosts with at least the server's disk free."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        """Pass a host with enough free disk."""
        return host.free_disk_gb >= spec.disk_gb

    def describe(self, spec: RequestSpec) -> str:
        """Say what it looks for."""
        return f"{spec.disk_gb} GB of free disk"


class AvailabilityZoneFilter:
    """Hosts in the availability zone the server asked for (any host if it asked for none)."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        """Pass a host in the requested zone."""
        return spec.availability_zone is None or host.availability_zone == spec.availability_zone

    def describe(self, spec: RequestSpec) -> str:
        """Say what it looks for."""
        return f"availability zone {spec.availability_zone!r}"


FILTERS: dict[str, type[HostFilter]] = {
    "ComputeFilter": ComputeFilter,
    "AvailabilityZoneFilter": AvailabilityZoneFilter,
    "RamFilter": RamFilter,
    "DiskFilter": DiskFilter,
}
"""The filters by the names the ``scheduler_enabled_filters`` setting uses."""


def filter_hosts(
    hosts: Sequence[HostState], spec: RequestSpec, filters: Sequence[tuple[str, HostFilter]]
) -> list[HostState]:
    """Return the hosts that pass every filter; raise :class:`NoValidHost` when none does."""
    if not hosts:
        raise NoValidHost("No valid host was found: no compute host has reported its resources yet")
    remaining = list(hosts)
    for name, host_filter in filters:
        remaining = [host for host in remaining if host_filter.host_passes(host, spec)]
        if not remaining:
            raise NoValidHost(
                f"No valid host was found: {name} left none of {len(hosts)} compute hosts "
                f"(it looks for {host_filter.describe(spec)})"
            )
    return remaining
