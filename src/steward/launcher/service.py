"""ServiceLauncher: run services in this process until a signal stops them; reload on SIGHUP.

See :mod:`steward.launcher` for what it does with each signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from steward._aio import TaskGroup
from steward.config import Settings, load_settings
from steward.launcher.telemetry import serving_metrics, tracing
from steward.service import Service

__all__ = ["ServiceLauncher", "SettingsLoader", "apply_reload"]

LOG = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
"""Reads the settings again, from the sources the first ones came from (SIGHUP)."""


def apply_reload(current: Settings, reloaded: Settings) -> Settings:
    """Return ``current`` with the mutable options of ``reloaded``; log the rest as ignored.

    A transport's option is named ``section.option`` (``rabbit.quorum_queue``) in the log.
    """
    return _with_mutable(current, reloaded, log=True)


def _with_mutable(current: Settings, reloaded: Settings, *, log: bool) -> Settings:
    mutable = Settings.mutable_options()
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {}
    for name in Settings.option_names():
        section, _, option = name.rpartition(".")
        old = getattr(getattr(current, section), option) if section else getattr(current, name)
        new = getattr(getattr(reloaded, section), option) if section else getattr(reloaded, name)
        if old == new:
            continue
        if name not in mutable:
            if log:
                LOG.warning("Option %s changed in the configuration; it takes a restart", name)
            continue
        if log:
            LOG.info("Reloaded option %s", name)
        if section:
            sections.setdefault(section, {})[option] = new
        else:
            top[name] = new
    for section, changed in sections.items():
        top[section] = getattr(current, section).model_copy(update=changed)
    return current.model_copy(update=top)


class ServiceLauncher:
    """Runs ``services`` in this process until SIGTERM/SIGINT; reloads on SIGHUP.

    ``settings`` are those the entry point built and gave the services (None: the first
    service's). The launcher reads its own options from them (``report_directory``, tracing,
    metrics) and, at SIGHUP, reads new ones with ``reload_settings`` (None:
    :meth:`Settings.reread`, the same file, environment and overrides), applies their mutable
    options to :attr:`settings`, to each service (``reset``) and to each service's transport.
    ``on_started`` is called once every service has started (and metrics are served), for an
    embedding application that must know when to go on.
    """

    def __init__(
        self,
        services: Sequence[Service],
        *,
        settings: Settings | None = None,
        reload_settings: SettingsLoader | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.services = list(services)
        if settings is None:
            settings = self.services[0].settings if self.services else load_settings()
        self.settings = settings
        self._on_started = on_started
        self._reload_settings = reload_settings
        self._stop = asyncio.Event()
        self._interrupts = 0
        self._tasks = TaskGroup("service launcher")

    def request_stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM does)."""
        self._stop.set()

    def _on_sigint(self) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            LOG.warning("Second SIGINT: exiting at once")
            os._exit(130)
        LOG.info("SIGINT: stopping gracefully (press Ctrl-C again to exit at once)")
        self._stop.set()

    def _on_sigterm(self) -> None:
        if self._stop.is_set():
            LOG.info("SIGTERM again: already stopping")
            return
        LOG.info("SIGTERM: stopping gracefully")
        self._stop.set()

    def _on_sigusr2(self) -> None:
        from steward.report import build_report, format_report  # noqa: PLC0415 - rarely used

        text = format_report(build_report(self.services, settings=self.settings))
        directory = self.settings.report_directory
        if directory is None:
            LOG.info("SIGUSR2: service report\n%s", text)
            return
        path = (
            Path(directory) / f"steward-report-{os.getpid()}-{time.strftime('%Y%m%dT%H%M%S')}.txt"
        )
        try:
            path.write_text(text)
        except OSError:
            LOG.exception("SIGUSR2: cannot write the report to %s; logging it", path)
            LOG.info("SIGUSR2: service report\n%s", text)
            return
        LOG.info("SIGUSR2: service report written to %s", path)

    def _on_sighup(self) -> None:
        if self._stop.is_set() or self._tasks.closed:
            LOG.info("SIGHUP while stopping: ignored")
            return
        self._tasks.create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        """Re-read settings, apply the mutable ones, and reset every service's manager."""
        LOG.info("SIGHUP: reloading the configuration")
        try:
            if self._reload_settings is not None:
                reloaded = self._reload_settings()
            else:
                reloaded = self.settings.reread()
        except Exception:
            LOG.exception("Reloading the configuration failed; keeping the current one")
            return
        settings = apply_reload(self.settings, reloaded)
        self.settings = settings
        for transport in {id(s.transport): s.transport for s in self.services}.values():
            # What the clients and notifiers on it read at call time (rpc_response_timeout...).
            transport.settings = _with_mutable(transport.settings, settings, log=False)
        for service in self.services:
            try:
                await service.reset(settings)
            except Exception:
                LOG.exception("reset() of %s failed", service.binary)

    async def _serve_until_stopped(self, services: Sequence[Service]) -> list[Service]:
        """Serve until a stop is asked for or a service fails; return those that failed.

        Stopping is :meth:`run`'s (in its ``finally``), for the failed service as for the
        others: a watcher only notices, so a stop is never cut off by the watchers' end.
        """

        async def watch(service: Service) -> None:
            await service.ended()
            if service.failure is not None:
                LOG.error(
                    "%s failed (%r); stopping every service of this process",
                    service.binary,
                    service.failure,
                )
                self._stop.set()

        async with asyncio.TaskGroup() as watchers:
            watching = [watchers.create_task(watch(service)) for service in services]
            await self._stop.wait()
            for task in watching:
                task.cancel()
        return [service for service in services if service.failure is not None]

    async def run(self) -> int:
        """Start the services, serve until a stop signal or a failure, stop them.

        Returns the exit code: 0 after a signal, 1 when a service failed.
        """
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self._on_sigterm,
            signal.SIGINT: self._on_sigint,
            signal.SIGHUP: self._on_sighup,
            signal.SIGUSR2: self._on_sigusr2,
        }
        name = self.services[0].binary if self.services else "steward"
        with tracing(self.settings, service_name=name):
            for signum, handler in handlers.items():
                loop.add_signal_handler(signum, handler)
            started: list[Service] = []
            try:
                for service in self.services:
                    await service.start()
                    started.append(service)
                async with serving_metrics(self.settings, self.services):
                    LOG.info("All services started; serving until SIGTERM or SIGINT")
                    if self._on_started is not None:
                        self._on_started()
                    failed = await self._serve_until_stopped(started)
                return 1 if failed else 0
            finally:
                # The handlers stay while the services stop: a signal arriving now (a second
                # SIGTERM, a SIGHUP) must not fall back to the default action and kill the
                # process before cleanup_host has run.
                try:
                    for service in reversed(started):
                        await service.stop()
                    await self._tasks.wait()  # a reload in progress finishes
                    await self._tasks.aclose()
                finally:
                    for signum in handlers:
                        loop.remove_signal_handler(signum)
