"""steward's benchmarks, side by side with the OpenStack code they replace.

Run them from the repository root with ``python -m benchmarks`` (all) or ``python -m benchmarks
NAME...``; ``--list`` names them, ``--quick`` is a smoke run. ``benchmarks/README.md`` says what
each measures and how to read the ratios.

A benchmark is a module of this package listed in :data:`MODULES` that has what
:class:`Benchmark` describes: ``NAME``, ``DESCRIPTION`` and ``run(*, quick)`` returning
:class:`~benchmarks._report.Table`\\ s. Modules are imported only when a run or a listing asks for
them, so one benchmark's optional peer (oslo.service, a broker) never stops another from running.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    # Only for annotations: `import benchmarks` stays cheap for the RPC benchmark's peer
    # processes (``python -m benchmarks._rpc``), whose memory is measured.
    from benchmarks._report import Table

__all__ = ["MODULES", "Benchmark", "load", "load_all"]

MODULES: tuple[str, ...] = ("periodic", "tracing", "rpc", "rpc-tracing")
"""Names of the benchmarks, in the order ``python -m benchmarks`` runs them; a name's module is
the name with ``-`` read as ``_`` (``rpc-tracing`` is :mod:`benchmarks.rpc_tracing`)."""


class Benchmark(typing.Protocol):
    """What a benchmark module has; a module satisfies it by defining these names."""

    @property
    def NAME(self) -> str:  # noqa: N802 - a module constant, read through the protocol
        """Name on the command line and of the results file (``results/<NAME>.json``)."""
        ...

    @property
    def DESCRIPTION(self) -> str:  # noqa: N802 - a module constant, read through the protocol
        """One line: what is measured against what."""
        ...

    def run(self, *, quick: bool) -> list[Table]:
        """Measure and return the tables; ``quick`` is a smoke run with tiny budgets."""
        ...


def load(name: str) -> Benchmark:
    """Import benchmark ``name``; raise :class:`LookupError` naming the known ones if unknown."""
    if name not in MODULES:
        raise LookupError(f"no benchmark named {name!r}; expected one of {', '.join(MODULES)}")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return typing.cast("Benchmark", module)


def load_all() -> list[Benchmark]:
    """Import every benchmark, in :data:`MODULES` order."""
    return [load(name) for name in MODULES]


if typing.TYPE_CHECKING:
    # load() casts what importlib gives; this makes mypy check each module against the protocol.
    from benchmarks import periodic, rpc, rpc_tracing, tracing

    _CHECKED: tuple[Benchmark, ...] = (periodic, tracing, rpc, rpc_tracing)
