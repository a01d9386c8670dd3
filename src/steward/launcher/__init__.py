"""Launchers: run a service in this process, or in N supervised worker processes; signals.

:class:`ServiceLauncher` (:mod:`steward.launcher.service`) runs services in the current process
until a signal says otherwise:

* SIGTERM or SIGINT: graceful stop (consumers stop, requests in flight finish up to
  ``graceful_shutdown_timeout``, the rest go back to the queue), exit code 0. A second SIGINT
  exits at once (code 130), for an operator who does not want to wait.
* SIGHUP: re-read the configuration from the same sources as the settings it was given, apply
  the options marked mutable (others need a restart and are logged as such) and call each
  manager's ``reset()``; the services keep running.
* SIGUSR2: write the service report (:mod:`steward.report`) to the log, or to a file in the
  ``report_directory`` setting.

It also applies the tracing settings (``tracing_enabled``, ``tracing_exporter``) and, with
``metrics_port`` set, serves metrics and health probes (:mod:`steward.launcher.telemetry`).

:class:`ProcessLauncher` (:mod:`steward.launcher.process`) starts N worker processes, each a
``steward run`` with one worker (or, through :meth:`ProcessLauncher.for_commands`, one process for
each of several programs), and supervises them: a worker that dies is started again after a
backoff (1 s, doubling to 30 s, back to 1 s once a worker has lived a minute); SIGTERM/SIGINT stop
them all gracefully (SIGKILL after ``graceful_shutdown_timeout`` plus a margin); SIGHUP is passed
on to every worker. Workers are separate interpreters started with ``sys.executable``, not forks
of a process that already runs an event loop.

:func:`load_manager_class` (:mod:`steward.launcher.manager_class`) imports the manager an
operator names on the command line.
"""

from __future__ import annotations

from steward.launcher.manager_class import load_manager_class
from steward.launcher.process import (
    HEALTHY_AFTER,
    KILL_MARGIN,
    RESPAWN_MAX,
    RESPAWN_MIN,
    SUPERVISOR_ENV,
    ProcessLauncher,
    die_with_supervisor,
)
from steward.launcher.service import ServiceLauncher, SettingsLoader, apply_reload

__all__ = [
    "HEALTHY_AFTER",
    "KILL_MARGIN",
    "RESPAWN_MAX",
    "RESPAWN_MIN",
    "SUPERVISOR_ENV",
    "ProcessLauncher",
    "ServiceLauncher",
    "SettingsLoader",
    "apply_reload",
    "die_with_supervisor",
    "load_manager_class",
]
