"""The service report: what a running process is doing, for an operator (oslo's Guru Meditation).

:func:`build_report` gathers package versions, host, pid and uptime, the stack of every asyncio
task and every thread, each service's RPC statistics (in flight, handled, failed, per-method
counts and latency) and periodic tasks (last run, duration, last error, next due), and the
effective configuration with secrets masked. :func:`format_report` renders it as text.

SIGUSR2 writes it to the log; ``steward report HOST BINARY`` asks a running service for it over
RPC (the ``baseapi`` endpoint's ``report`` method) and prints it.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import sys
import threading
import time
import traceback
import typing
from importlib import metadata

from steward import config, redact

if typing.TYPE_CHECKING:
    from steward.service import Service

__all__ = ["build_report", "format_report"]

_PACKAGES = (
    "steward-rpc",
    "pydantic",
    "sqlalchemy",
    "aio-pika",
    "aiormq",
    "orjson",
    "opentelemetry-api",
    "opentelemetry-sdk",
)
_STARTED = time.monotonic()

Report = dict[str, typing.Any]


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _task_stacks() -> list[dict[str, str]]:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop in this thread
        return []
    stacks = []
    for task in sorted(tasks, key=lambda task: task.get_name()):
        buffer = io.StringIO()
        task.print_stack(file=buffer)
        stacks.append({"name": task.get_name(), "stack": buffer.getvalue()})
    return stacks


def _thread_stacks() -> list[dict[str, str]]:
    frames = sys._current_frames()  # noqa: SLF001 - the documented way to see other threads
    stacks = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        stacks.append({"name": thread.name, "stack": stack})
    return stacks


def _service_section(service: Service) -> dict[str, typing.Any]:
    server = service.rpcserver
    rpc: dict[str, typing.Any] = {"running": False}
    if server is not None:
        rpc = {
            "running": server.running,
            "in_flight": server.in_flight,
            "handled": server.handled,
            "failed": server.failed,
            "methods": {
                name: {
                    "calls": stats.calls,
                    "failures": stats.failures,
                    "mean_ms": round(1000 * stats.total_seconds / stats.calls, 3)
                    if stats.calls
                    else 0.0,
                    "max_ms": round(1000 * stats.max_seconds, 3),
                }
                for name, stats in sorted(server.method_stats.items())
            },
        }
    scheduler = service.manager.periodic_scheduler
    now = scheduler.clock.monotonic()
    periodic = [
        {
            "name": stats.name,
            "spacing": stats.spacing,
            "runs": stats.runs,
            "failures": stats.failures,
            "running": stats.running,
            "last_run_ago": None
            if stats.last_started is None
            else round(now - stats.last_started, 3),
            "last_duration": stats.last_duration,
            "last_error": None if stats.last_error is None else redact.mask_text(stats.last_error),
            "next_due_in": None if stats.next_due is None else round(stats.next_due - now, 3),
        }
        for stats in scheduler.stats()
    ]
    return {
        "binary": service.binary,
        "topic": service.topic,
        "host": service.host,
        "manager": type(service.manager).__qualname__,
        "rpc": rpc,
        "periodic_tasks": periodic,
    }


def build_report(services: typing.Sequence[Service] = (), *, settings: config.Settings) -> Report:
    """Gather the report (JSON-ready). Call it on the event loop's thread to see its tasks.

    ``settings`` are the process's as its entry point built them (the host, and the
    configuration shown with secrets masked).
    """
    return {
        "host": settings.host,
        "pid": os.getpid(),
        "uptime_seconds": round(time.monotonic() - _STARTED, 3),
        "versions": _versions(),
        "services": [_service_section(service) for service in services],
        "configuration": settings.masked(dotted=True),
        "asyncio_tasks": _task_stacks(),
        "threads": _thread_stacks(),
    }


def format_report(report: Report) -> str:
    """Render a report as plain text, for the log."""
    lines = [
        "=" * 30 + " steward report " + "=" * 30,
        f"host {report['host']}  pid {report['pid']}  uptime {report['uptime_seconds']} s",
        "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
    ]
    for service in report["services"]:
        rpc = service["rpc"]
        lines.append(
            f"-- service {service['binary']} (topic {service['topic']}, {service['manager']}): "
            f"in flight {rpc.get('in_flight', 0)}, handled {rpc.get('handled', 0)}, "
            f"failed {rpc.get('failed', 0)}"
        )
        for name, stats in rpc.get("methods", {}).items():
            lines.append(
                f"   rpc {name}: {stats['calls']} calls, {stats['failures']} failed, "
                f"mean {stats['mean_ms']} ms, max {stats['max_ms']} ms"
            )
        lines.extend(
            f"   periodic {task['name']} every {task['spacing']} s: {task['runs']} runs, "
            f"{task['failures']} failed, last {task['last_run_ago']} s ago "
            f"({task['last_duration']} s), next in {task['next_due_in']} s, "
            f"last error {task['last_error']}"
            for task in service["periodic_tasks"]
        )
    lines.append("-- configuration")
    lines.extend(f"   {name} = {value!r}" for name, value in report["configuration"].items())
    lines.append(f"-- asyncio tasks ({len(report['asyncio_tasks'])})")
    for task in report["asyncio_tasks"]:
        lines.append(f"   task {task['name']}")
        lines.extend("      " + line for line in task["stack"].splitlines())
    lines.append(f"-- threads ({len(report['threads'])})")
    for thread in report["threads"]:
        lines.append(f"   thread {thread['name']}")
        lines.extend("      " + line for line in thread["stack"].splitlines())
    # The configuration is masked already; a URL in an error or a stack is masked here.
    return redact.mask_text("\n".join(lines))
