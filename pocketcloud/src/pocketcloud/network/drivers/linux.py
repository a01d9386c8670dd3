"""The ``linux`` network driver: real bridges, VLAN interfaces and server ports, built with ``ip``.

Everything is built inside a network namespace of pocketcloud's own, never in the host's: the
namespace is ``pocketcloud-<host>`` (the host name with anything but letters, digits, ``_``,
``.`` and ``-`` turned into ``-``) unless ``namespace`` names another. Every command runs as
``ip -netns <namespace> ...``; only ``ip netns add``, ``ip netns del`` and ``ip netns list`` work at
the host's level. ``ip`` runs without a shell, from an argument list, and every name is checked
(:class:`ValueError`) before any command runs.

Choices a reader might question:

* **The namespace outlives the service.** It is made on first use and kept when the network
  service stops, as a host's own networking would be; the manager lays its networks out again at
  start-up anyway, so nothing depends on it surviving. :meth:`LinuxNetworkDriver.destroy` deletes
  it, and everything in it, when an operator (or a test) asks. The driver holds no open resource,
  so it needs no ``close()`` and the manager's ``cleanup_host`` does not touch it.
* **Parents are stand-ins.** A VLAN's parent (``vlan_interface``) or ``flat_interface`` does not
  exist in a fresh namespace: the driver makes it as a ``dummy`` link, pocketcloud's stand-in for
  a physical NIC, or as a persistent ``tap`` (a NIC without a cable) on a kernel built without
  dummy links.
* **Port names are derived.** The manager names a port by its server's id, longer than the 15
  characters an interface name may have. As nova's ``"tap" + vif_id[:11]``, the bridge's end of
  the server's veth pair is ``tap<id[:11]>`` and the server's end (its NIC, with its MAC and
  address) is ``vif<id[:11]>``; the full id is the link's alias (``ifalias``), so an operator can
  tell whose port it is and a second port whose id begins the same is refused, not merged.
* **A server's address keeps its network's prefix.** ``plug`` gets a bare address; the server's
  end gets it with the prefix of the bridge's gateway address that contains it (``10.0.0.5/24``),
  or ``/32`` when no gateway does. It is added with ``noprefixroute``: both ends live in the same
  namespace, and the network's route stays the bridge's alone.

Every operation holds one lock, so the check-then-act steps of two calls never interleave. The
module is past 400 lines as one piece: the six operations share the namespace, that lock and the
one command runner, and make sense only together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import shlex
import shutil
import subprocess
import typing
from pathlib import Path

import orjson

__all__ = ["LinuxNetworkDriver", "NetworkDriverError"]

LOG = logging.getLogger(__name__)

_IP = "/usr/sbin/ip"
# IFNAMSIZ is 16 bytes with the terminating NUL.
_MAX_INTERFACE_NAME = 15
# The port id characters an interface name has room for: "tap" + 11 + the NUL (as nova).
_PORT_ID_CHARS = 11
_MAX_ALIAS = 255
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NAMESPACE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# What ip says when the kernel lacks a link type: newer kernels explain, older ones refuse.
_KIND_UNSUPPORTED = ("Unknown device type", "Operation not supported")

Link = dict[str, typing.Any]
"""One link as ``ip -json -details link show`` describes it."""


class NetworkDriverError(RuntimeError):
    """An ``ip`` command failed, or the namespace holds something the driver cannot use.

    ``command`` is the failed command's argument list (empty when no command failed),
    ``returncode`` its exit status and ``stderr`` what ``ip`` said.
    """

    def __init__(
        self,
        message: str,
        *,
        command: typing.Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.command = tuple(command)
        self.returncode = returncode
        self.stderr = stderr


def _check_name(name: str, what: str) -> str:
    """Return ``name`` if the kernel takes it as an interface name; raise ValueError if not."""
    problem = None
    if not name or len(name) > _MAX_INTERFACE_NAME:
        problem = f"must have 1 to {_MAX_INTERFACE_NAME} characters"
    elif name in {".", ".."} or any(c in "/:" or c.isspace() or not c.isprintable() for c in name):
        problem = "must not be '.' or '..' nor contain '/', ':', whitespace or control characters"
    if problem is not None:
        raise ValueError(f"{what} {name!r} is not a valid interface name: it {problem}")
    return name


def _check_vlan(vlan: int) -> int:
    if not 1 <= vlan <= 4094:  # noqa: PLR2004 - the highest VLAN id (IEEE 802.1Q)
        raise ValueError(f"a VLAN id must be an integer from 1 to 4094, got {vlan!r}")
    return vlan


def _parse_gateway(gateway: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    message = f"gateway must be an address with its prefix, as '10.0.0.1/24', got {gateway!r}"
    if "/" not in gateway:
        raise ValueError(message)
    try:
        return ipaddress.ip_interface(gateway)
    except ValueError as exc:
        raise ValueError(message) from exc


def _port_names(port: str) -> tuple[str, str]:
    """Return the bridge's end and the server's end of port ``port``: ``tap…`` and ``vif…``."""
    if not port or len(port) > _MAX_ALIAS or not port.isprintable() or port != port.strip():
        raise ValueError(
            f"port {port!r} must be 1 to {_MAX_ALIAS} printable characters, without surrounding "
            "whitespace (the manager passes the server's id)"
        )
    stem = port[:_PORT_ID_CHARS]
    return _check_name(f"tap{stem}", "port"), _check_name(f"vif{stem}", "port")


def _default_namespace(host: str) -> str:
    stem = _NAMESPACE_UNSAFE.sub("-", host).strip("-.")
    return f"pocketcloud-{stem}"[:64] if stem else "pocketcloud"


def _parse_json(output: bytes, command: typing.Sequence[str]) -> list[typing.Any]:
    """Return the list ``ip -json`` printed; it prints nothing at all for an empty list."""
    if not output.strip():
        return []
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError as exc:
        raise NetworkDriverError(
            f"`{shlex.join(command)}` printed something other than JSON: {exc}", command=command
        ) from exc
    if not isinstance(value, list):
        raise NetworkDriverError(
            f"`{shlex.join(command)}` printed a JSON {type(value).__name__}, expected a list",
            command=command,
        )
    return value


def _kind(link: Link) -> str | None:
    kind = link.get("linkinfo", {}).get("info_kind")
    return kind if isinstance(kind, str) else None


def _is_vlan_of(link: Link, vlan: int, parent: str) -> bool:
    info = link.get("linkinfo", {})
    return (
        info.get("info_kind") == "vlan"
        and info.get("info_data", {}).get("id") == vlan
        and link.get("link") == parent
    )


class LinuxNetworkDriver:
    """Builds bridges, VLAN interfaces and veth ports in a namespace of its own.

    Built by :func:`steward.load_driver` with ``host`` and ``data_dir`` (unused: the kernel keeps
    the state); ``namespace`` overrides the namespace's name (see the module docstring). Raises
    :class:`ValueError` for a namespace name ``ip`` would not take, and, from each operation,
    :class:`ValueError` for a bad argument and :class:`NetworkDriverError` when ``ip`` fails.
    """

    def __init__(
        self, *, host: str = "", data_dir: Path | None = None, namespace: str | None = None
    ) -> None:
        if namespace is None:
            namespace = _default_namespace(host)
        elif not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"`namespace` must be 1 to 64 letters, digits, '_', '.' or '-', starting with a "
                f"letter or digit, got {namespace!r}"
            )
        self.host = host
        self.namespace = namespace
        self._ip = shutil.which("ip") or _IP
        self._lock = asyncio.Lock()
        self._namespace_exists = False
        self._dummy_links = True

    # --- the protocol ----------------------------------------------------------------------

    async def ensure_vlan(self, vlan: int, *, parent: str) -> str:
        """Make ``vlan<vlan>`` on ``parent`` (made too if missing), up; return its name.

        An interface of that name that is not VLAN ``vlan`` of ``parent`` is made again. Raises
        :class:`NetworkDriverError` naming the missing kernel support when the kernel has no
        802.1Q VLANs.
        """
        _check_vlan(vlan)
        _check_name(parent, "parent")
        name = f"vlan{vlan}"
        async with self._lock:
            links = await self._ensure_links()
            await self._ensure_stand_in(parent, links)
            current = links.get(name)
            if current is not None and not _is_vlan_of(current, vlan, parent):
                LOG.warning(
                    "%s in %s is not VLAN %d of %s; making it again", name, self, vlan, parent
                )
                await self._netns_ip("link", "del", "dev", name)
                current = None
            if current is None:
                await self._add_vlan(name, vlan, parent)
            await self._netns_ip("link", "set", "dev", name, "up")
        return name

    async def ensure_bridge(
        self, bridge: str, *, interface: str | None = None, gateway: str | None = None
    ) -> None:
        """Make ``bridge`` (up), enslave ``interface`` and add ``gateway`` (``"10.0.0.1/24"``).

        An ``interface`` that does not exist is made as a stand-in NIC. Raises
        :class:`NetworkDriverError` when ``bridge`` names a link that is not a bridge.
        """
        _check_name(bridge, "bridge")
        if interface is not None:
            _check_name(interface, "interface")
        address = None if gateway is None else _parse_gateway(gateway)
        async with self._lock:
            links = await self._ensure_links()
            current = links.get(bridge)
            if current is None:
                await self._netns_ip("link", "add", "name", bridge, "type", "bridge")
                LOG.info("Made bridge %s in %s", bridge, self)
            elif _kind(current) != "bridge":
                raise NetworkDriverError(
                    f"{bridge!r} in namespace {self.namespace} is a {_kind(current) or 'plain'} "
                    "link, not a bridge; delete it or choose another bridge name"
                )
            await self._netns_ip("link", "set", "dev", bridge, "up")
            if interface is not None:
                await self._ensure_stand_in(interface, links)
                await self._netns_ip("link", "set", "dev", interface, "master", bridge)
            if address is not None:
                await self._netns_ip("address", "replace", str(address), "dev", bridge)

    async def plug(self, bridge: str, *, port: str, address: str, mac: str) -> None:
        """Give ``port`` a veth pair on ``bridge``; the server's end gets ``mac`` and ``address``.

        Plugging again sets the MAC and address again. Raises :class:`NetworkDriverError` when
        ``bridge`` does not exist or another port has the derived names.
        """
        _check_name(bridge, "bridge")
        tap, vif = _port_names(port)
        try:
            server_address = ipaddress.ip_address(address)
        except ValueError as exc:
            raise ValueError(f"address must be an IP address, got {address!r}") from exc
        if not _MAC.fullmatch(mac.lower()):
            raise ValueError(f"mac must look like 'fa:16:3e:01:02:03', got {mac!r}")
        async with self._lock:
            links = await self._ensure_links()
            if _kind(links.get(bridge, {})) != "bridge":
                raise NetworkDriverError(
                    f"bridge {bridge!r} does not exist in namespace {self.namespace}; "
                    "lay its network out (ensure_bridge) before plugging servers into it"
                )
            current = links.get(tap)
            if current is not None and current.get("ifalias", port) != port:
                raise NetworkDriverError(
                    f"port {port!r} would be named {tap}, which belongs to port "
                    f"{current['ifalias']!r}: two ports whose ids share their first 11 "
                    "characters cannot both be plugged"
                )
            if current is None:
                await self._netns_ip(
                    "link", "add", "name", tap, "type", "veth", "peer", "name", vif
                )
            for end in (tap, vif):
                await self._netns_ip("link", "set", "dev", end, "alias", port)
            prefix = await self._prefix_on(bridge, server_address)
            await self._netns_ip("link", "set", "dev", vif, "address", mac.lower())
            await self._netns_ip("address", "flush", "dev", vif, "scope", "global")
            await self._netns_ip(
                "address", "add", f"{server_address}/{prefix}", "dev", vif, "noprefixroute"
            )
            await self._netns_ip("link", "set", "dev", tap, "master", bridge, "up")
            await self._netns_ip("link", "set", "dev", vif, "up")
        LOG.info("Plugged %s (%s) into %s in %s", port, address, bridge, self)

    async def unplug(self, bridge: str, *, port: str) -> None:
        """Delete port ``port``'s veth pair if it is on ``bridge``; otherwise do nothing."""
        _check_name(bridge, "bridge")
        tap, _ = _port_names(port)
        async with self._lock:
            current = (await self._links()).get(tap)
            if current is None or current.get("ifalias", port) != port:
                return
            if current.get("master") not in {bridge, None}:
                LOG.warning("Port %s is on %s, not %s; left alone", port, current["master"], bridge)
                return
            # Deleting one end of a veth pair deletes both.
            await self._netns_ip("link", "del", "dev", tap)

    async def remove_bridge(self, bridge: str) -> None:
        """Delete ``bridge``; nothing happens if there is no bridge of that name."""
        _check_name(bridge, "bridge")
        async with self._lock:
            if _kind((await self._links()).get(bridge, {})) == "bridge":
                await self._netns_ip("link", "del", "dev", bridge)
                LOG.info("Deleted bridge %s in %s", bridge, self)

    async def remove_vlan(self, vlan: int, *, parent: str) -> None:
        """Delete ``vlan<vlan>`` if it is VLAN ``vlan`` of ``parent``; otherwise do nothing."""
        _check_vlan(vlan)
        _check_name(parent, "parent")
        name = f"vlan{vlan}"
        async with self._lock:
            current = (await self._links()).get(name)
            if current is not None and _is_vlan_of(current, vlan, parent):
                await self._netns_ip("link", "del", "dev", name)
                LOG.info("Deleted %s in %s", name, self)

    # --- for operators and tests -----------------------------------------------------------

    async def links(self) -> dict[str, Link]:
        """Return the namespace's links by name, as ``ip -json -details link show`` has them.

        Fields that matter: ``flags`` (``"UP"``), ``master``, ``link`` (a VLAN's parent),
        ``address`` (the MAC), ``ifalias`` and ``linkinfo`` (``info_kind``; a VLAN's
        ``info_data.id``). Empty before the namespace exists; never makes it.
        """
        async with self._lock:
            return await self._links()

    async def addresses(self) -> dict[str, list[str]]:
        """Return each link's global addresses in CIDR form (``"10.0.0.1/24"``), by link name."""
        async with self._lock:
            if not await self._exists():
                return {}
            command = ("-netns", self.namespace, "-json", "address", "show")
            entries = _parse_json(await self._run(*command), command)
        return {
            entry["ifname"]: [
                f"{info['local']}/{info['prefixlen']}"
                for info in entry.get("addr_info", [])
                if info.get("scope") == "global"
            ]
            for entry in entries
        }

    async def destroy(self) -> None:
        """Delete the namespace and everything in it; nothing happens if it does not exist."""
        async with self._lock:
            if self.namespace in await self._namespaces():
                await self._run("netns", "del", self.namespace)
                LOG.info("Deleted network namespace %s", self.namespace)
            self._namespace_exists = False

    def __repr__(self) -> str:
        return f"<LinuxNetworkDriver namespace={self.namespace!r}>"

    def __str__(self) -> str:
        return f"namespace {self.namespace}"

    # --- inside the lock -------------------------------------------------------------------

    async def _ensure_links(self) -> dict[str, Link]:
        """Make the namespace if missing; return its links."""
        if not await self._exists():
            try:
                await self._run("netns", "add", self.namespace)
            except NetworkDriverError:
                # Another process may have made it meanwhile; only its absence is an error.
                if self.namespace not in await self._namespaces():
                    raise
            else:
                LOG.info("Made network namespace %s for host %r", self.namespace, self.host)
            self._namespace_exists = True
        return await self._links()

    async def _links(self) -> dict[str, Link]:
        if not await self._exists():
            return {}
        command = ("-netns", self.namespace, "-json", "-details", "link", "show")
        return {link["ifname"]: link for link in _parse_json(await self._run(*command), command)}

    async def _exists(self) -> bool:
        if not self._namespace_exists:
            self._namespace_exists = self.namespace in await self._namespaces()
        return self._namespace_exists

    async def _namespaces(self) -> set[str]:
        command = ("-json", "netns", "list")
        return {entry["name"] for entry in _parse_json(await self._run(*command), command)}

    async def _ensure_stand_in(self, name: str, links: dict[str, Link]) -> None:
        """Make ``name`` as pocketcloud's stand-in for a physical NIC if missing; set it up."""
        if name not in links and self._dummy_links:
            try:
                await self._netns_ip("link", "add", "name", name, "type", "dummy")
            except NetworkDriverError as exc:
                if not any(reason in exc.stderr for reason in _KIND_UNSUPPORTED):
                    raise
                LOG.info("This kernel has no dummy links: stand-in NICs are persistent taps")
                self._dummy_links = False
            else:
                links[name] = {"ifname": name}
        if name not in links:
            await self._netns_ip("tuntap", "add", "dev", name, "mode", "tap")
            links[name] = {"ifname": name}
        await self._netns_ip("link", "set", "dev", name, "up")

    async def _add_vlan(self, name: str, vlan: int, parent: str) -> None:
        try:
            await self._netns_ip(
                "link", "add", "link", parent, "name", name, "type", "vlan", "id", str(vlan)
            )
        except NetworkDriverError as exc:
            if not any(reason in exc.stderr for reason in _KIND_UNSUPPORTED):
                raise
            raise NetworkDriverError(
                f"cannot make VLAN {vlan}: this kernel has no 802.1Q VLAN support "
                "(CONFIG_VLAN_8021Q, module 8021q); load the 8021q module, or run the network "
                f"service with network_manager=flat ({exc})",
                command=exc.command,
                returncode=exc.returncode,
                stderr=exc.stderr,
            ) from exc
        LOG.info("Made %s on %s in %s", name, parent, self)

    async def _prefix_on(
        self, bridge: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> int:
        """Return the prefix of the bridge address whose network holds ``address``, else /32."""
        command = ("-netns", self.namespace, "-json", "address", "show", "dev", bridge)
        for entry in _parse_json(await self._run(*command), command):
            for info in entry.get("addr_info", []):
                network = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
                if info.get("scope") == "global" and address in network:
                    return network.prefixlen
        return address.max_prefixlen

    async def _netns_ip(self, *args: str) -> bytes:
        """Run ``ip -netns <namespace> *args``: the only way commands reach the namespace."""
        return await self._run("-netns", self.namespace, *args)

    async def _run(self, *args: str) -> bytes:
        """Run ``ip *args`` and return its output; raise :class:`NetworkDriverError` if it fails."""
        command = (self._ip, *args)
        LOG.debug("Running %s", shlex.join(command))
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise NetworkDriverError(
                f"cannot run {self._ip!r}: {exc}; the linux network driver needs iproute2's `ip`",
                command=command,
            ) from exc
        try:
            stdout, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                # Cancelled: end `ip` rather than leave it running with nobody waiting for it.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.shield(process.wait())
        if process.returncode != 0:
            said = stderr.decode(errors="replace").strip()
            raise NetworkDriverError(
                f"`{shlex.join(command)}` failed with exit status {process.returncode}: {said}",
                command=command,
                returncode=process.returncode,
                stderr=said,
            )
        return stdout
