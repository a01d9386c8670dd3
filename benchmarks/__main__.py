"""Run steward's benchmarks and print their tables: ``python -m benchmarks [NAME...]``.

With no name every benchmark runs, in :data:`benchmarks.MODULES` order. Each run's tables are
printed with rich (``--markdown`` draws them as Markdown tables, to paste into an issue) and
saved with the machine's facts as ``benchmarks/results/<NAME>.json``. ``--quick`` is a smoke run:
tiny budgets, figures not worth keeping, so it saves nothing unless ``--results-dir`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from benchmarks import MODULES, Benchmark, load, load_all
from benchmarks._report import Table

RESULTS_DIR = Path(__file__).parent / "results"

# Packages whose versions go with the figures: the measured code and its peers.
_PACKAGES = (
    "steward",
    "oslo.service",
    "oslo.messaging",
    "aio-pika",
    "aiormq",
    "uvloop",
    "opentelemetry-api",
    "opentelemetry-sdk",
)


def machine_facts() -> dict[str, object]:
    """Return what the figures depend on: Python, CPUs, platform, packages, and the date."""
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable_cpus = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "nproc": usable_cpus if usable_cpus is not None else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def save_results(
    directory: Path,
    benchmark: Benchmark,
    tables: list[Table],
    *,
    quick: bool,
    seconds: float,
    machine: dict[str, object],
) -> Path:
    """Write ``<directory>/<NAME>.json`` (through a ``.tmp`` file, so it is never half written)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{benchmark.NAME}.json"
    document = {
        "benchmark": benchmark.NAME,
        "description": benchmark.DESCRIPTION,
        "quick": quick,
        "seconds": round(seconds, 2),
        "machine": machine,
        "tables": [table.to_json() for table in tables],
    }
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    temporary.replace(path)
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run steward's benchmarks side by side with the OpenStack code it replaces "
        "and print the tables.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(MODULES)})",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny budgets, figures not saved"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print Markdown (to paste into an issue or PR)"
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where to save <NAME>.json (default: {RESULTS_DIR}; given, --quick saves too)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, save no JSON")
    return parser


def _print_list(console: Console) -> None:
    listing = RichTable("name", "measures", title="Benchmarks", title_justify="left")
    for benchmark in load_all():
        listing.add_row(benchmark.NAME, benchmark.DESCRIPTION)
    console.print(listing)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks the command line names; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # Piped output (a file, CI's log) is 80 columns to rich; the tables need more.
    console = Console(width=None if sys.stdout.isatty() else 120)
    if args.list:
        _print_list(console)
        return 0
    try:
        selected = [load(name) for name in args.names] if args.names else load_all()
    except LookupError as exc:
        parser.error(str(exc))
    save_to: Path | None = args.results_dir
    if save_to is None and not args.quick:
        save_to = RESULTS_DIR
    if args.no_save:
        save_to = None

    machine = machine_facts()
    console.out(
        f"Python {machine['python']} ({machine['implementation']}), {machine['nproc']} CPUs, "
        f"{machine['platform']}, {machine['date']}" + (" - quick run" if args.quick else ""),
        highlight=False,
    )
    for benchmark in selected:
        if args.markdown:
            console.out(f"### {benchmark.NAME}\n\n{benchmark.DESCRIPTION}\n", highlight=False)
        else:
            console.rule(Text(benchmark.NAME, style="bold"), align="left")
            console.print(Text(benchmark.DESCRIPTION, style="dim"))
        started = time.perf_counter()
        tables = benchmark.run(quick=args.quick)
        seconds = time.perf_counter() - started
        for table in tables:
            if args.markdown:
                console.out(table.to_markdown(), highlight=False)
            else:
                console.print(table.to_rich())
                console.print()
        saved = ""
        if save_to is not None:
            path = save_results(
                save_to, benchmark, tables, quick=args.quick, seconds=seconds, machine=machine
            )
            saved = f", saved to {path}"
        console.print(Text(f"{benchmark.NAME}: {seconds:.1f} s{saved}", style="dim"))
        console.out("")
    return 0


if __name__ == "__main__":
    sys.exit(main())
