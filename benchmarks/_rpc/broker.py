"""The machine's RabbitMQ, as the RPC benchmark uses it: a vhost of its own, on 127.0.0.1 only.

:func:`vhost` creates ``steward-bench-<pid>-<random>`` with ``rabbitmqctl add_vhost`` and gives
guest every permission on it, and deletes it afterwards (with every queue and exchange in it), so
the benchmark's traffic never meets another user's queues on a shared broker. Vhosts of earlier
benchmark processes that died before deleting theirs are deleted first. Nothing here stops,
starts or reconfigures the broker.

On the machine's NATS (127.0.0.1:4222), :func:`nats_url` names a namespace of the run's own
(``steward-bench-<pid>-<random>``): every subject starts with it, and core NATS keeps nothing,
so there is nothing to delete afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

__all__ = ["HOST", "NATS_PORT", "PORT", "nats_problem", "nats_url", "problem", "version", "vhost"]

HOST = "127.0.0.1"
PORT = 5672
NATS_PORT = 4222
_USER = "guest"
_PASSWORD = "guest"  # noqa: S105 - RabbitMQ's default local account
_PREFIX = "steward-bench-"


def _rabbitmqctl(*args: str) -> str:
    command = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    done = subprocess.run(  # noqa: S603 - a fixed command, arguments made here
        [command, "-q", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout.strip()


def problem() -> str | None:
    """Return why the benchmark cannot use the broker (not listening, no rabbitmqctl), or None."""
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            pass
    except OSError as exc:
        return f"no RabbitMQ on {HOST}:{PORT} ({exc})"
    if shutil.which("rabbitmqctl") is None and not os.path.exists("/usr/sbin/rabbitmqctl"):
        return "rabbitmqctl is not installed: the benchmark makes a vhost of its own with it"
    try:
        _rabbitmqctl("list_vhosts", "name")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"rabbitmqctl cannot reach the broker: {exc}"
    return None


def version() -> str | None:
    """Return the broker's version (``rabbitmqctl version``), or None if it cannot be read."""
    try:
        return _rabbitmqctl("version") or None
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return None


def _delete_orphans() -> None:
    """Delete the vhosts of benchmark processes that are gone."""
    for name in _rabbitmqctl("list_vhosts", "name").split():
        parts = name.removeprefix(_PREFIX).split("-")
        if not name.startswith(_PREFIX) or len(parts) != 2 or not parts[0].isdigit():  # noqa: PLR2004
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            _rabbitmqctl("delete_vhost", name)
        except PermissionError:
            pass  # alive, another user's


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """Yield the AMQP URL of a new vhost of this process's own; delete the vhost afterwards."""
    _delete_orphans()
    name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, _USER, ".*", ".*", ".*")
        yield f"amqp://{_USER}:{_PASSWORD}@{HOST}:{PORT}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def nats_problem() -> str | None:
    """Return why the benchmark cannot use NATS (not listening, no nats-py), or None."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed"
    try:
        with socket.create_connection((HOST, NATS_PORT), timeout=2):
            pass
    except OSError as exc:
        return f"no NATS on {HOST}:{NATS_PORT} ({exc})"
    return None


def nats_url() -> str:
    """Return a core-NATS URL on 127.0.0.1 with a namespace of this process's own."""
    return f"nats://{HOST}:{NATS_PORT}/{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
