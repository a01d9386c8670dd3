"""What crossed between the two services: a log both sides write to, from any thread."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, slots=True)
class Crossing:
    """One message that went from one framework to the other, as its receiver saw it.

    ``route`` is ``"oslo -> steward"`` or ``"steward -> oslo"``; ``kind`` is ``call``, ``cast``,
    ``result``, ``error`` or ``notification``; ``request_id`` is the request context's, as the
    receiver read it.
    """

    route: str
    kind: str
    what: str
    request_id: str | None

    def __str__(self) -> str:
        return f"  {self.route:<16} {self.kind:<13} {self.what:<62} {self.request_id or '-'}"


class Crossings:
    """The crossings so far, in the order they were seen; printed as they come when ``echo``."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo
        self.items: list[Crossing] = []
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def add(self, route: str, kind: str, what: str, request_id: str | None) -> None:
        """Record a crossing (the oslo side calls this from its threads)."""
        crossing = Crossing(route, kind, what, request_id)
        with self._lock:
            self.items.append(crossing)
        if self.echo:
            print(crossing, flush=True)
        self._loop.call_soon_threadsafe(self._changed.set)

    def seen(self, route: str, kind: str, what: str) -> bool:
        """Whether a crossing of this route and kind whose ``what`` starts so was recorded."""
        with self._lock:
            return any(
                (c.route, c.kind) == (route, kind) and c.what.startswith(what) for c in self.items
            )

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds (the caller bounds the wait)."""
        while True:
            self._changed.clear()
            if condition():
                return
            await self._changed.wait()
