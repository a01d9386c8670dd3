"""RPC: steward against oslo.messaging and raw aio-pika on RabbitMQ; memory:// against bare asyncio.

**On the machine's RabbitMQ** (127.0.0.1:5672, in a vhost of the benchmark's own, deleted
afterwards: :mod:`benchmarks._rpc.broker`), side by side in one run, six systems:

* **oslo.messaging** - unmodified, threading executor, every option at its default;
* **raw aio-pika** (and **+uvloop**) - the minimal request/reply of anchor-bench.md: no
  confirms, no acknowledgements, no serialization; the broker's limit for a Python client;
* **raw+uvloop, acks+confirms** - the same keeping steward's delivery guarantees on the wire
  (persistent messages, acknowledgement after handling, mandatory replies, confirmed casts):
  the limit for a framework that keeps them;
* **steward** (and **+uvloop**) - ``RPCServer`` and ``RPCClient`` over ``amqp://``, settings at
  their defaults: casts confirmed, requests acknowledged after handling.

Each system's server and client are processes of their own (``python -m benchmarks._rpc``),
the server started afresh for every repetition and stopped by closing its standard input (or
killed by pid). Repetitions interleave the systems, each starting one system further along, so
no system always runs first or last; each figure is the median [min-max] over the repetitions,
and each ratio the median of the repetitions' own ratios (both sides measured minutes apart at
most). The measurements are :mod:`benchmarks._rpc.measure`'s: sequential calls (rate, p50,
p99), 32 concurrent callers, casts processed per second from one sender and from 32, 1 MiB calls;
plus each server's resident memory after startup and after the run.

**On the machine's NATS** (127.0.0.1:4222, core NATS, a subject namespace of the run's own), in
the same run, two systems, their own table and ratio: **steward** over
``nats://127.0.0.1:4222/<namespace>`` (settings at their defaults: no JetStream), and a **raw
nats-py** request/reply (:mod:`benchmarks._rpc.nats_peer`: ``nc.request`` against a
subscription that responds, no serialization), NATS's limit for a Python client. The same
measurements but the 1 MiB calls (NATS's default ``max_payload`` is 1 MiB, headers included).

**In process**: a ``memory://`` call (client, transport, server, dispatcher) against a bare
asyncio request/reply pair (:mod:`benchmarks._rpc.memory`), µs per call, on asyncio's loop and
on uvloop's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks._report import TIMES, Column, Row, Table, format_cell
from benchmarks._rpc import NATS_SYSTEMS, SYSTEMS, System, broker
from benchmarks._rpc.measure import FULL_COUNTS, QUICK_COUNTS, Counts, Figures
from benchmarks._rpc.memory import bare_pair, call_batch, steward_pair
from benchmarks._timing import FULL, QUICK, Budget, Timing, ameasure

__all__ = ["DESCRIPTION", "GOALS", "METRICS", "NAME", "Goal", "Metric", "run"]

NAME = "rpc"
DESCRIPTION = (
    "RPC on RabbitMQ: steward vs oslo.messaging vs raw aio-pika (± uvloop), calls/s, p50/p99, "
    "32 concurrent callers, casts/s, 1 MiB calls; on NATS: steward vs raw nats-py; "
    "memory:// call vs a bare asyncio pair"
)

FULL_REPETITIONS = 3
QUICK_REPETITIONS = 1

_ROOT = Path(__file__).resolve().parent.parent
# Seconds a server may take to start consuming, and a client to finish all its measurements.
_START_TIMEOUT = 60.0
_CLIENT_TIMEOUT = {True: 120.0, False: 600.0}  # by quick
_STOP_TIMEOUT = 15.0
_DASH = "\N{EN DASH}"


# --- What is reported -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Metric:
    """One row of the RabbitMQ tables: a figure's key and its label (its unit says which way is
    better: per second higher, ms and MiB lower)."""

    key: str
    label: str


def _metrics(counts: Counts) -> tuple[Metric, ...]:
    big = (
        f"{counts.big_chars / (1 << 20):g} MiB"
        if counts.big_chars >= 1 << 20
        else f"{counts.big_chars / 1024:g} KiB"
    )
    many = counts.callers
    return (
        Metric("call_rate", "call/s, sequential"),
        Metric("call_p50_ms", "call p50, ms"),
        Metric("call_p99_ms", "call p99, ms"),
        Metric("concurrent_rate", f"call/s, {many} callers"),
        Metric("cast_rate", "cast/s processed, 1 sender"),
        Metric("cast_send_rate", "cast/s sent, 1 sender"),
        Metric("concurrent_cast_rate", f"cast/s processed, {many} senders"),
        Metric("concurrent_cast_send_rate", f"cast/s sent, {many} senders"),
        Metric("big_p50_ms", f"{big} call p50, ms"),
        Metric("rss_start_mib", "server RSS at start, MiB"),
        Metric("rss_end_mib", "server RSS at end, MiB"),
    )


METRICS = _metrics(FULL_COUNTS)
"""The rows of a full run's RabbitMQ tables."""

_NATS_METRICS = frozenset(
    {
        "call_rate",
        "call_p50_ms",
        "call_p99_ms",
        "concurrent_rate",
        "cast_rate",
        "cast_send_rate",
        "concurrent_cast_rate",
        "concurrent_cast_send_rate",
        "rss_start_mib",
        "rss_end_mib",
    }
)
"""The keys of :func:`_metrics` in the NATS table (no 1 MiB calls: ``max_payload``)."""

_NATS_RATIO = ("steward_nats", "raw_nats")
"""(numerator, denominator) of the NATS table's ratio: steward on NATS ÷ raw nats-py."""

_RATIOS: tuple[tuple[str, str], ...] = (
    ("steward", "oslo"),
    ("steward", "raw"),
    ("steward_uvloop", "oslo"),
    ("steward_uvloop", "raw_uvloop"),
    ("steward_uvloop", "raw_acked"),
    ("raw", "oslo"),
)
"""(numerator, denominator) systems of the ratios table; raw ÷ oslo is anchor-bench.md's."""


@dataclasses.dataclass(frozen=True, slots=True)
class Goal:
    """A goal of issue 4: steward's ``metric`` ÷ the ``against`` system's, against ``bound``."""

    label: str
    metric: str
    against: str
    bound: float
    at_least: bool

    def met(self, ratio: float) -> bool:
        """Whether a ratio meets the goal."""
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    @property
    def target(self) -> str:
        """The goal as it reads in the table, such as ``≥ 0.95`` and a multiplication sign."""
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}{TIMES}"


GOALS = (
    Goal(
        "sequential calls/s within 5 % of raw aio-pika+uvloop",
        "call_rate",
        "raw_uvloop",
        0.95,
        True,
    ),
    Goal(f"call p50 ≤ 1.1{TIMES} raw aio-pika+uvloop's", "call_p50_ms", "raw_uvloop", 1.1, False),
    Goal(f"32 concurrent callers: ≥ 3.5{TIMES} oslo", "concurrent_rate", "oslo", 3.5, True),
    Goal("32 concurrent callers: ≥ raw aio-pika+uvloop", "concurrent_rate", "raw_uvloop", 1, True),
    Goal(f"casts/s, confirms on, 1 sender: ≥ 4{TIMES} oslo", "cast_rate", "oslo", 4, True),
    Goal(f"casts/s, 32 senders: ≥ 4{TIMES} oslo", "concurrent_cast_rate", "oslo", 4, True),
)
"""Issue 4's benchmark goals (figures, not assertions), read against this run's other systems."""

Runs = dict[str, list[Figures]]
"""System key -> its figures, one per repetition, in repetition order."""


# --- Running the peers ----------------------------------------------------------------------------


def _rss_mib(pid: int) -> float | None:
    """The process's resident set (``VmRSS``) in MiB, or None where /proc cannot say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _peer_command(role: str, system: System, url: str, topic: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks._rpc", role, system.key, url, topic, *extra]


def _tail(text: bytes | str, lines: int = 15) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


class PeerFailed(RuntimeError):
    """A server or client process of the benchmark failed; the message has its last words."""


async def _run_once(
    system: System, url: str, topic: str, counts: Counts, *, quick: bool
) -> Figures:
    """Start ``system``'s server, run its client against it, stop the server; return figures."""
    with tempfile.TemporaryFile() as server_errors:
        server = await asyncio.create_subprocess_exec(
            *_peer_command("server", system, url, topic),
            cwd=_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=server_errors,
        )
        try:
            assert server.stdout is not None  # noqa: S101 - stdout=PIPE: narrows the type
            line = b""
            try:
                async with asyncio.timeout(_START_TIMEOUT):
                    line = await server.stdout.readline()
            except TimeoutError:
                pass
            if line.strip() != b"ready":
                server_errors.seek(0)
                raise PeerFailed(
                    f"the {system.name} server did not start: {_tail(server_errors.read())}"
                )
            figures: Figures = {}
            rss = _rss_mib(server.pid)
            if rss is not None:
                figures["rss_start_mib"] = rss
            figures.update(await _run_client(system, url, topic, counts, quick=quick))
            rss = _rss_mib(server.pid)
            if rss is not None:
                figures["rss_end_mib"] = rss
        finally:
            await _stop(server)
    return figures


async def _run_client(
    system: System, url: str, topic: str, counts: Counts, *, quick: bool
) -> Figures:
    client = await asyncio.create_subprocess_exec(
        *_peer_command("client", system, url, topic, json.dumps(counts.to_json())),
        cwd=_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_CLIENT_TIMEOUT[quick]):
            output, errors = await client.communicate()
    except TimeoutError:
        client.kill()
        await client.communicate()
        raise PeerFailed(
            f"the {system.name} client did not finish in {_CLIENT_TIMEOUT[quick]:g} s"
        ) from None
    if client.returncode != 0 or not output.strip():
        raise PeerFailed(
            f"the {system.name} client failed (exit {client.returncode}): {_tail(errors)}"
        )
    figures: Figures = json.loads(output.splitlines()[-1])
    return figures


async def _stop(server: asyncio.subprocess.Process) -> None:
    """Close the server's standard input (it stops); kill it by pid if it does not."""
    # communicate() closes it only when given input (before Python 3.12).
    if server.stdin is not None:
        server.stdin.close()
    try:
        async with asyncio.timeout(_STOP_TIMEOUT):
            await server.communicate()
    except TimeoutError:
        server.kill()
        await server.communicate()


async def _run_systems(
    systems: Sequence[System],
    url: str,
    counts: Counts,
    repetitions: int,
    *,
    quick: bool,
    problems: list[str],
) -> Runs:
    """Run every system ``repetitions`` times, interleaved; failures go to ``problems``.

    A failed run is tried once more on a new topic: the broker is shared, and another user's
    ``rabbitmqctl stop_app`` (the recovery tests do one) loses the messages queued at that
    moment. A run that fails twice is left out of the figures, and said so under the table.
    """
    runs: Runs = {system.key: [] for system in systems}
    for repetition in range(repetitions):
        shift = repetition % len(systems)
        for system in [*systems[shift:], *systems[:shift]]:
            figures: Figures = {}  # failed twice: no figures; ratios still pair runs by index
            for attempt in (1, 2):
                topic = f"bench_{system.key}_{repetition}_{attempt}"
                try:
                    figures = await _run_once(system, url, topic, counts, quick=quick)
                    break
                except PeerFailed as exc:
                    last_words = str(exc).strip().splitlines()[-1]
                    outcome = "tried again" if attempt == 1 else "FAILED, left out"
                    problems.append(
                        f"Run {repetition + 1} of {system.name}: {outcome}: {last_words}"
                    )
            runs[system.key].append(figures)
    return runs


# --- Tables ---------------------------------------------------------------------------------------


def _spread_text(values: list[float]) -> str:
    column = Column("", "", "time")  # three significant figures, no unit
    median = format_cell(statistics.median(values), column)
    if len(values) == 1:
        return median
    low, high = format_cell(min(values), column), format_cell(max(values), column)
    return f"{median} [{low}{_DASH}{high}]"


def _figures_table(
    runs: Runs,
    counts: Counts,
    repetitions: int,
    *,
    systems: Sequence[System] = SYSTEMS,
    name: str = "rabbitmq",
    broker_name: str = "RabbitMQ",
    keys: frozenset[str] | None = None,
) -> Table:
    columns = [Column("metric", "metric"), Column("key", "key", show=False)]
    for system in systems:
        columns.append(Column(system.key, system.name))
        columns.extend(
            Column(f"{system.key}_{stat}", f"{system.name} {stat}", "count", show=False)
            for stat in ("median", "min", "max")
        )
    table = Table(
        name=name,
        title=f"RPC on {broker_name}: median [min{_DASH}max] of {repetitions} interleaved runs",
        columns=tuple(columns),
    )
    for metric in _metrics(counts):
        if keys is not None and metric.key not in keys:
            continue
        row: Row = {"metric": metric.label, "key": metric.key}
        for system in systems:
            values = [
                figures[metric.key] for figures in runs.get(system.key, []) if metric.key in figures
            ]
            row[system.key] = _spread_text(values) if values else None
            row[f"{system.key}_median"] = statistics.median(values) if values else None
            row[f"{system.key}_min"] = min(values) if values else None
            row[f"{system.key}_max"] = max(values) if values else None
        table.rows.append(row)
    return table


def _paired_ratios(runs: Runs, numerator: str, denominator: str, metric: str) -> list[float]:
    """The ratio of each repetition's figures (the two systems ran minutes apart at most)."""
    pairs = zip(runs.get(numerator, []), runs.get(denominator, []), strict=False)
    return [
        top[metric] / bottom[metric]
        for top, bottom in pairs
        if metric in top and metric in bottom and bottom[metric]
    ]


def _ratios_table(runs: Runs, counts: Counts) -> Table:
    columns = [Column("metric", "metric"), Column("key", "key", show=False)]
    for top, bottom in _RATIOS:
        key = f"{top}_over_{bottom}"
        header = f"{top} ÷ {bottom}".replace("_", "+").replace("raw+acked", "raw acked")
        columns.append(Column(key, header, "ratio"))
        columns.append(Column(f"{key}_min", f"{header} min", "ratio", show=False))
        columns.append(Column(f"{key}_max", f"{header} max", "ratio", show=False))
    table = Table(
        name="ratios",
        title="RPC on RabbitMQ: ratios (median of the runs' own; for ms and MiB lower is better)",
        columns=tuple(columns),
    )
    for metric in _metrics(counts):
        row: Row = {"metric": metric.label, "key": metric.key}
        for top, bottom in _RATIOS:
            key = f"{top}_over_{bottom}"
            ratios = _paired_ratios(runs, top, bottom, metric.key)
            row[key] = statistics.median(ratios) if ratios else None
            row[f"{key}_min"] = min(ratios) if ratios else None
            row[f"{key}_max"] = max(ratios) if ratios else None
        table.rows.append(row)
    return table


def _goals_table(runs: Runs) -> Table:
    table = Table(
        name="goals",
        title="Issue 4's goals: steward ÷ the named system, median of each run's ratio",
        columns=(
            Column("goal", "goal"),
            Column("target", "target"),
            Column("steward", "steward", "ratio"),
            Column("steward_met", "met"),
            Column("steward_uvloop", "steward+uvloop", "ratio"),
            Column("steward_uvloop_met", "met"),
        ),
    )
    for goal in GOALS:
        row: Row = {"goal": goal.label, "target": goal.target}
        for side in ("steward", "steward_uvloop"):
            ratios = _paired_ratios(runs, side, goal.against, goal.metric)
            ratio = statistics.median(ratios) if ratios else None
            row[side] = ratio
            row[f"{side}_met"] = None if ratio is None else ("yes" if goal.met(ratio) else "no")
        table.rows.append(row)
    return table


# --- memory:// --------------------------------------------------------------------------------


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]]:
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]] = [("asyncio", None)]
    try:
        import uvloop
    except ImportError:
        return loops
    loops.append(("uvloop", uvloop.new_event_loop))
    return loops


async def _measure_memory(budget: Budget) -> tuple[Timing, Timing]:
    async with bare_pair() as bare:
        bare_timing = await ameasure(call_batch(bare), budget)
    async with steward_pair() as steward:
        steward_timing = await ameasure(call_batch(steward), budget)
    return bare_timing, steward_timing


def _memory_table(budget: Budget) -> Table:
    loops = _loops()
    columns = [Column("variant", "variant")]
    for loop_name, _ in loops:
        columns.append(Column(f"{loop_name}_us", f"{loop_name} loop", "time", "µs"))
        columns.append(Column(f"{loop_name}_ratio", "vs bare", "ratio"))
        columns.append(Column(f"{loop_name}_spread", f"{loop_name} spread", "ratio", show=False))
    table = Table(
        name="memory",
        title="memory:// call vs a bare asyncio request/reply pair (µs per call, in one process)",
        columns=tuple(columns),
        notes=[
            "bare pair: a request queue read by a server task, a reply queue read by a reply "
            "task, a future per request resolved by id. steward: RPCClient.call through a "
            "memory:// transport to an RPCServer (async def echo), 100-character argument.",
        ],
    )
    bare_row: Row = {"variant": "bare asyncio request/reply pair"}
    steward_row: Row = {"variant": "steward memory:// call"}
    for loop_name, factory in loops:
        with asyncio.Runner(loop_factory=factory) as runner:
            bare, steward = runner.run(_measure_memory(budget))
        bare_row[f"{loop_name}_us"] = bare.median * 1e6
        bare_row[f"{loop_name}_ratio"] = 1.0
        bare_row[f"{loop_name}_spread"] = bare.spread
        steward_row[f"{loop_name}_us"] = steward.median * 1e6
        steward_row[f"{loop_name}_ratio"] = steward.median / bare.median
        steward_row[f"{loop_name}_spread"] = steward.spread
    table.rows.extend([bare_row, steward_row])
    if len(loops) == 1:
        table.notes.append("uvloop is not installed: pip install -e '.[bench]'.")
    return table


# --- The benchmark --------------------------------------------------------------------------------


def _rabbitmq_tables(*, quick: bool) -> list[Table]:
    counts, repetitions = (
        (QUICK_COUNTS, QUICK_REPETITIONS) if quick else (FULL_COUNTS, FULL_REPETITIONS)
    )
    systems = [system for system in SYSTEMS if not system.missing()]
    skipped = [
        f"{system.name} (no {', '.join(system.missing())})"
        for system in SYSTEMS
        if system.missing()
    ]
    problem = broker.problem()
    runs: Runs = {}
    version = None
    problems: list[str] = []
    if problem is None:
        version = broker.version()
        with broker.vhost() as url:
            runs = asyncio.run(
                _run_systems(systems, url, counts, repetitions, quick=quick, problems=problems)
            )
    tables = [
        _figures_table(runs, counts, repetitions),
        _ratios_table(runs, counts),
        _goals_table(runs),
    ]
    notes = tables[0].notes
    if problem is not None:
        notes.append(f"RabbitMQ figures skipped: {problem}.")
    else:
        notes.append(
            f"RabbitMQ {version or '(version unknown)'} on 127.0.0.1, a vhost of the run's own. "
            "Each system's server and client in processes of their own; servers restarted every "
            "run; runs interleaved, each starting one system further along."
        )
    if skipped:
        notes.append(f"Not installed, not measured: {'; '.join(skipped)}.")
    notes.extend(problems)
    notes.append(
        "steward: casts wait for the broker's confirm, calls do not; requests acknowledged after "
        "handling. oslo: confirms on every publish, requests acknowledged on arrival. raw "
        "aio-pika: no confirms, no acknowledgements, no serialization (the broker's limit); "
        "raw acks+confirms: the same code keeping steward's guarantees on the wire (persistent, "
        "ack after handling, mandatory replies, confirmed casts)."
    )
    tables[1].notes.append(
        "raw ÷ oslo is anchor-bench.md's headline ratio: compare it to check that this run "
        "reproduces the anchor figures."
    )
    return tables


def _nats_table(*, quick: bool) -> Table:
    """steward on core NATS against raw nats-py: figures and steward ÷ raw, in one table."""
    counts, repetitions = (
        (QUICK_COUNTS, QUICK_REPETITIONS) if quick else (FULL_COUNTS, FULL_REPETITIONS)
    )
    counts = dataclasses.replace(counts, big_warmup=0, big_calls=0)
    problem = broker.nats_problem()
    runs: Runs = {}
    problems: list[str] = []
    if problem is None:
        runs = asyncio.run(
            _run_systems(
                NATS_SYSTEMS,
                broker.nats_url(),
                counts,
                repetitions,
                quick=quick,
                problems=problems,
            )
        )
    table = _figures_table(
        runs,
        counts,
        repetitions,
        systems=NATS_SYSTEMS,
        name="nats",
        broker_name="NATS",
        keys=_NATS_METRICS,
    )
    top, bottom = _NATS_RATIO
    key = f"{top}_over_{bottom}"
    header = "steward ÷ raw nats-py"
    table.columns = (
        *table.columns,
        Column(key, header, "ratio"),
        Column(f"{key}_min", f"{header} min", "ratio", show=False),
        Column(f"{key}_max", f"{header} max", "ratio", show=False),
    )
    for row in table.rows:
        ratios = _paired_ratios(runs, top, bottom, str(row["key"]))
        row[key] = statistics.median(ratios) if ratios else None
        row[f"{key}_min"] = min(ratios) if ratios else None
        row[f"{key}_max"] = max(ratios) if ratios else None
    if problem is not None:
        table.notes.append(f"NATS figures skipped: {problem}.")
    else:
        table.notes.append(
            "NATS on 127.0.0.1:4222, core NATS (no JetStream), a subject namespace of the run's "
            "own. Each system's server and client in processes of their own; servers restarted "
            "every run; runs interleaved. No 1 MiB calls: NATS's max_payload (1 MiB by default) "
            "includes the headers."
        )
    table.notes.extend(problems)
    table.notes.append(
        "steward: RPCServer and RPCClient over nats://127.0.0.1:4222/<namespace>, settings at "
        "their defaults; a cast returns once published and flushed. raw nats-py: nc.request "
        "against a queue-group subscription that responds with the request's bytes, casts "
        "nc.publish'ed unflushed; no serialization (NATS's limit for a Python client). The "
        "ratio is the median of each run's own steward ÷ raw nats-py (for ms and MiB lower is "
        "better)."
    )
    return table


def run(*, quick: bool) -> list[Table]:
    """Measure every installed system on RabbitMQ (if reachable), on NATS (if reachable), then
    memory://; five tables."""
    tables = _rabbitmq_tables(quick=quick)
    tables.append(_nats_table(quick=quick))
    tables.append(_memory_table(QUICK if quick else FULL))
    return tables
