"""The network managers: FlatManager and VlanManager, over one driver API.

As nova-network's: a :class:`NetworkManager` owns the networks and their fixed IPs; which kind
runs is a setting (``network_manager``). Both hand out fixed IPs from a network's CIDR the same
way and differ in how a network is laid out on the host:

* :class:`FlatManager` puts every network on one shared bridge (``flat_network_bridge``),
  optionally enslaving ``flat_interface``; networks have no VLAN.
* :class:`VlanManager` gives each network a VLAN of its own (the next free one from
  ``vlan_start``, or the one asked for) with a VLAN interface on ``vlan_interface`` and a bridge
  ``br<vlan>`` around it.

The layout is built through the network driver (:mod:`pocketcloud.network.driver`) when a network
is created, and built again at start-up, so the host matches the tables after a restart.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import typing
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import steward
from pocketcloud.database import serialized_session
from pocketcloud.errors import (
    InvalidInput,
    NetworkConflict,
    NetworkNotFound,
    NetworkSetupFailed,
)
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.network import ipam
from pocketcloud.network.driver import NetworkDriver
from pocketcloud.network.tables import fixed_ips, networks
from pocketcloud.objects import NetworkInfo, NetworkRecord, wire
from steward.context import RequestContext
from steward.db import utcnow
from steward.redact import shorten
from steward.rpc import Target

__all__ = ["MANAGERS", "FlatManager", "NetworkManager", "VlanManager"]

LOG = logging.getLogger(__name__)

# An allocation that lost a race to a writer outside the lock tries again, this many times.
_ALLOCATION_ATTEMPTS = 8


def _record(row: sa.RowMapping) -> NetworkRecord:
    return NetworkRecord.model_validate(dict(row))


class NetworkManager(CloudManager):
    """Owns networks and fixed IPs; subclasses say how a network is laid out on the host."""

    target = Target(version="1.0")
    kind: typing.ClassVar[str] = ""

    def __init__(self, host: str | None = None, **options: typing.Unpack[ManagerOptions]) -> None:
        super().__init__(host, service_name="network", **options)
        self.driver: NetworkDriver | None = None
        self._creating = asyncio.Lock()
        self._allocating = asyncio.Lock()

    async def init_host(self, service_ref: object | None) -> None:
        """Load the network driver and lay out every existing network again."""
        settings = self.cloud_settings
        # Only the linux driver takes a namespace; other drivers keep the host/data_dir contract.
        options: dict[str, object] = {}
        if settings.network_namespace is not None:
            options["namespace"] = settings.network_namespace
        self.driver = steward.load_driver(
            "network",
            settings.network_driver,
            NetworkDriver,
            host=self.host,
            data_dir=settings.data_dir,
            **options,
        )
        for record in await self._networks():
            await self._lay_out(record)

    def _require_driver(self) -> NetworkDriver:
        if self.driver is None:
            raise RuntimeError(f"{type(self).__name__}.init_host() has not run")
        return self.driver

    # --- networks --------------------------------------------------------------------------

    async def create_network(
        self, context: RequestContext, name: str, cidr: str, vlan: int | None = None
    ) -> dict[str, typing.Any]:
        """Create network ``name`` on ``cidr`` and lay it out on the host; return its record.

        Raises :class:`InvalidInput` for a CIDR that is malformed, not IPv4 or of a size outside
        /16-/29, :class:`NetworkConflict` when it overlaps an existing network, and
        :class:`NetworkSetupFailed` when the driver cannot build it (then nothing of it is kept).
        """
        network = ipam.parse_cidr(cidr)
        # The check and the insert are one transaction under the database's lock, so creations
        # in this process or any other cannot both find a range or VLAN free (the asyncio lock
        # only spares this process's connections from queueing for it).
        async with self._creating:
            try:
                async with serialized_session(self.db, "networks") as session:
                    existing = await self._networks(session)
                    record = self._new_record(context, name, network, vlan, existing)
                    await session.execute(sa.insert(networks).values(**record.model_dump()))
            except IntegrityError as exc:
                # Only a writer that skipped the lock gets here (the unique indexes on the VLAN
                # and the VLAN bridge stop it): say what the network collides with.
                self._new_record(context, name, network, vlan, await self._networks())
                raise NetworkConflict(
                    f"network {shorten(name)!r} ({cidr}) conflicts with one created meanwhile; "
                    "try again"
                ) from exc
        try:
            await self._lay_out(record)
        except Exception as exc:
            # A network the host does not have must not be handed out: forget the record.
            LOG.exception("Laying out network %s failed; forgetting it", name)
            async with self.db.session() as session:
                await session.execute(sa.delete(networks).where(networks.c.id == record.id))
            raise NetworkSetupFailed(
                f"the {self.kind} network {name!r} could not be built on host {self.host} "
                f"({type(exc).__name__}; the network service's log says why); it was not created"
            ) from exc
        LOG.info("Created %s network %s (%s) on bridge %s", self.kind, name, cidr, record.bridge)
        return wire(record)

    def _new_record(
        self,
        context: RequestContext,
        name: str,
        network: ipaddress.IPv4Network,
        vlan: int | None,
        existing: list[NetworkRecord],
    ) -> NetworkRecord:
        """Return the record of a new network beside ``existing``; raise NetworkConflict."""
        for other in existing:
            if network.overlaps(ipaddress.ip_network(other.cidr)):
                raise NetworkConflict(
                    f"{network} overlaps {_shown(other, context, cidr=True)}; choose another range"
                )
        bridge, vlan = self._choose_layout(context, vlan, existing)
        return NetworkRecord(
            id=str(uuid.uuid4()),
            name=name,
            cidr=str(network),
            gateway=str(ipam.gateway_of(network)),
            bridge=bridge,
            vlan=vlan,
            manager=self.kind,
            created_at=utcnow(),
            project_id=context.project_id,
        )

    def _choose_layout(
        self, context: RequestContext, vlan: int | None, existing: list[NetworkRecord]
    ) -> tuple[str, int | None]:
        """Return the bridge and VLAN a new network gets; subclasses decide."""
        raise NotImplementedError

    async def _lay_out(self, record: NetworkRecord) -> None:
        """Build the network's bridge (and VLAN) on the host; subclasses decide how."""
        raise NotImplementedError

    async def list_networks(self, context: RequestContext) -> list[dict[str, typing.Any]]:
        """Return every network, oldest first."""
        return [wire(record) for record in await self._networks()]

    async def get_network(self, context: RequestContext, network_id: str) -> dict[str, typing.Any]:
        """Return network ``network_id``; raises :class:`NetworkNotFound`."""
        return wire(await self._network(network_id))

    async def _networks(self, session: AsyncSession | None = None) -> list[NetworkRecord]:
        """Return every network, oldest first, read in ``session`` (None: a session of its own)."""
        query = sa.select(networks).order_by(networks.c.created_at, networks.c.id)
        if session is None:
            async with self.db.session() as own:
                rows = (await own.execute(query)).mappings().all()
        else:
            rows = (await session.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def _network(self, network_id: str) -> NetworkRecord:
        query = sa.select(networks).where(networks.c.id == network_id)
        async with self.db.session() as session:
            row = (await session.execute(query)).mappings().first()
        if row is None:
            raise NetworkNotFound(f"network {network_id!r} does not exist")
        return _record(row)

    # --- fixed IPs -------------------------------------------------------------------------

    async def allocate_for_instance(
        self, context: RequestContext, server_id: str, network_id: str, host: str
    ) -> dict[str, typing.Any]:
        """Give server ``server_id`` (on compute ``host``) a fixed IP on ``network_id``.

        Asking again for the same server returns the address it has. Raises
        :class:`NetworkNotFound` and :class:`~pocketcloud.errors.NoMoreAddresses`.
        """
        record = await self._network(network_id)
        async with self._allocating:
            for _ in range(_ALLOCATION_ATTEMPTS):
                taken = await self._take_address(record, server_id, host)
                if taken is not None:
                    address, mac = taken
                    break
            else:
                raise NetworkConflict(f"{record.cidr} is busy allocating addresses; try again")
        await self._require_driver().plug(record.bridge, port=server_id, address=address, mac=mac)
        LOG.info("Allocated %s on %s to server %s", address, record.name, server_id)
        info = NetworkInfo(
            network_id=record.id,
            network_name=record.name,
            address=address,
            cidr=record.cidr,
            gateway=record.gateway,
            bridge=record.bridge,
            vlan=record.vlan,
            mac=mac,
        )
        return wire(info)

    async def _take_address(
        self, record: NetworkRecord, server_id: str, host: str
    ) -> tuple[str, str] | None:
        """Return the server's address and MAC, allocating the lowest free address if needed.

        None: another allocation took that address meanwhile (the caller tries again).
        """
        query = sa.select(fixed_ips).where(fixed_ips.c.network_id == record.id)
        try:
            # Reading the taken addresses and inserting the new one is one transaction under the
            # network's lock: allocations from other processes wait instead of racing.
            async with serialized_session(self.db, f"fixed-ips:{record.id}") as session:
                rows = (await session.execute(query)).mappings().all()
                for row in rows:
                    if row["server_id"] == server_id:
                        return row["address"], row["mac"]
                network = ipaddress.IPv4Network(record.cidr)
                address = str(ipam.first_free_address(network, (row["address"] for row in rows)))
                mac = ipam.random_mac()
                await session.execute(
                    sa.insert(fixed_ips).values(
                        network_id=record.id,
                        address=address,
                        server_id=server_id,
                        host=host,
                        mac=mac,
                        allocated_at=utcnow(),
                    )
                )
        except IntegrityError:
            # The unique (network, address) and (network, server) indexes stopped a writer that
            # skipped the lock; the next attempt sees its row.
            LOG.debug("An address on %s was taken concurrently; trying again", record.name)
            return None
        return address, mac

    async def deallocate_for_instance(self, context: RequestContext, server_id: str) -> None:
        """Release every fixed IP of server ``server_id``; nothing happens if it has none."""
        query = (
            sa.select(fixed_ips.c.address, networks.c.bridge)
            .join(networks, networks.c.id == fixed_ips.c.network_id)
            .where(fixed_ips.c.server_id == server_id)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
            await session.execute(sa.delete(fixed_ips).where(fixed_ips.c.server_id == server_id))
        for address, bridge in rows:
            await self._require_driver().unplug(bridge, port=server_id)
            LOG.info("Released %s of server %s", address, server_id)

    async def list_fixed_ips(
        self, context: RequestContext, network_id: str
    ) -> list[dict[str, typing.Any]]:
        """Return the allocated addresses of ``network_id``: address, server, host, MAC."""
        await self._network(network_id)
        query = (
            sa.select(fixed_ips.c.address, fixed_ips.c.server_id, fixed_ips.c.host, fixed_ips.c.mac)
            .where(fixed_ips.c.network_id == network_id)
            .order_by(fixed_ips.c.id)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).mappings().all()
        return [dict(row) for row in rows]


class FlatManager(NetworkManager):
    """Every network on one shared bridge, ``flat_network_bridge``; no VLANs."""

    kind = "flat"

    def _choose_layout(
        self, context: RequestContext, vlan: int | None, existing: list[NetworkRecord]
    ) -> tuple[str, int | None]:
        if vlan is not None:
            raise InvalidInput(
                "FlatManager does not use VLANs; leave `vlan` out, or run the network service "
                "with network_manager=vlan"
            )
        return self.cloud_settings.flat_network_bridge, None

    async def _lay_out(self, record: NetworkRecord) -> None:
        network = ipaddress.IPv4Network(record.cidr)
        await self._require_driver().ensure_bridge(
            record.bridge,
            interface=self.cloud_settings.flat_interface,
            gateway=f"{record.gateway}/{network.prefixlen}",
        )


class VlanManager(NetworkManager):
    """A VLAN per network: interface ``vlan<N>`` on ``vlan_interface``, inside bridge ``br<N>``."""

    kind = "vlan"

    def _choose_layout(
        self, context: RequestContext, vlan: int | None, existing: list[NetworkRecord]
    ) -> tuple[str, int | None]:
        users = {record.vlan: record for record in existing if record.vlan is not None}
        # A flat network left by FlatManager holds its bridge too (br100 by default).
        bridges = {record.bridge: record for record in existing}
        if vlan is None:
            vlan = self.cloud_settings.vlan_start
            while vlan in users or f"br{vlan}" in bridges:
                vlan += 1
            if vlan > 4094:  # noqa: PLR2004 - the highest VLAN id (IEEE 802.1Q)
                raise NetworkConflict("every VLAN id from vlan_start to 4094 is taken")
        elif vlan in users:
            raise NetworkConflict(
                f"VLAN {vlan} is taken by {_shown(users[vlan], context)}; "
                "choose another VLAN or leave it out"
            )
        elif (holder := bridges.get(f"br{vlan}")) is not None:
            raise NetworkConflict(
                f"bridge br{vlan} of VLAN {vlan} is used by {_shown(holder, context)}; "
                "choose another VLAN or leave it out"
            )
        return f"br{vlan}", vlan

    async def _lay_out(self, record: NetworkRecord) -> None:
        if record.vlan is None:
            LOG.warning("Network %s has no VLAN (made by FlatManager?); skipped", record.name)
            return
        driver = self._require_driver()
        interface = await driver.ensure_vlan(record.vlan, parent=self.cloud_settings.vlan_interface)
        network = ipaddress.IPv4Network(record.cidr)
        await driver.ensure_bridge(
            record.bridge, interface=interface, gateway=f"{record.gateway}/{network.prefixlen}"
        )


MANAGERS: dict[str, type[NetworkManager]] = {"flat": FlatManager, "vlan": VlanManager}
"""The network managers by the ``network_manager`` setting's value."""


def _shown(other: NetworkRecord, context: RequestContext, *, cidr: bool = False) -> str:
    """Name ``other`` (and its ``cidr``) in a conflict, unless it is another project's.

    Another project's network is not the caller's to know of: neither its name nor its range.
    An admin sees every network; networks with no project are shared by all.
    """
    if not (context.is_admin or other.project_id in {None, context.project_id}):
        return "a network of another project"
    return f"network {shorten(other.name)!r}" + (f" ({other.cidr})" if cidr else "")
