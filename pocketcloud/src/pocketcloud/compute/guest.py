"""The program a ``process`` instance runs: a tiny guest that boots, prints, and idles.

``python -m pocketcloud.compute.guest --server-id ID --name NAME [--address A] [--ready-fd N]
[--parent PID] [--boot-seconds S]``

Its standard output is the instance's console file. It prints a boot banner, tells the compute
driver it is up by writing ``ready`` to ``--ready-fd``, then prints its uptime now and then until
SIGTERM (a clean power-off) or until its compute service is gone (its parent process, ``--parent``
or the one that started it, is no longer its parent), so an instance never outlives its host.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time
import types

__all__ = ["main"]

UPTIME_EVERY = 60
"""Seconds between two uptime lines on the console."""


class _PowerOff(Exception):
    """Raised by the SIGTERM handler to leave the idle loop at once."""


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    raise _PowerOff


def _say(line: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    sys.stdout.write(f"[{stamp}] {line}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Boot, idle until told to stop, and return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server-id", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", default=None)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None)
    parser.add_argument("--boot-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    # Given by the driver: the parent may already be gone by the time this line runs.
    parent = args.parent if args.parent is not None else os.getppid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    try:
        _say(f"pocketcloud guest {args.name} ({args.server_id}) booting, pid {os.getpid()}")
        _say(f"eth0: {args.address or 'no network'}")
        if args.boot_seconds > 0:
            _say(f"starting services ({args.boot_seconds:g} s)")
            time.sleep(args.boot_seconds)
        _say(f"{args.name} login:")
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, b"ready\n")
            except BrokenPipeError:
                _say("nobody waits for this boot; running anyway")
            os.close(args.ready_fd)
        ticks = 0
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                _say("the compute host went away; powering off")
                return 0
            ticks += 1
            if ticks % UPTIME_EVERY == 0:
                _say(f"up {time.monotonic() - started:.0f} s")
    except _PowerOff:
        _say("received SIGTERM; powering off")
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
