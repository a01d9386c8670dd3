"""The ``steward`` command: run services, inspect them, call them.

Global options ``--config-file`` and ``--set NAME=VALUE`` (repeatable) feed
:func:`steward.config.load_settings`, so every subcommand sees the settings a service started with
the same arguments sees. Commands, one module per topic:

* ``steward run module:ManagerClass --topic T [--workers N]`` — run a service (``_run``; see
  :mod:`steward.launcher` for signals and workers);
* ``steward call|cast TOPIC METHOD [--arg k=v ...]`` — RPC from the shell, and
  ``steward report HOST BINARY`` — a running service's report (:mod:`steward.report`) (``_rpc``);
* ``steward config show`` — effective settings, their source, secrets masked (``_config``);
* ``steward db upgrade`` / ``steward db current`` — the registry's schema, and
  ``steward services list|enable|disable`` — the registry (``_registry``);
* ``steward api export|check`` — a manager's RPC API as AsyncAPI, and the version-bump check of
  its contract file (``_api``).

``_app`` holds the app, its global options and the one-line errors: an error is one line on
stderr and a non-zero exit; ``--debug`` shows the traceback. What a command needs beyond typer
and rich (settings, the database, the transports, the launcher) is imported when it runs
(:mod:`steward._lazy`), so ``steward --help`` stays quick.
"""

from __future__ import annotations

from steward.cli._api import api_app
from steward.cli._app import app
from steward.cli._config import config_app
from steward.cli._registry import db_app, services_app
from steward.cli._rpc import call, cast, service_report
from steward.cli._run import run

__all__ = ["app", "main"]

app.command("run")(run)
app.command("call")(call)
app.command("cast")(cast)
app.command("report")(service_report)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(services_app, name="services")
app.add_typer(api_app, name="api")


def main() -> None:
    """Entry point of the ``steward`` console script."""
    app()
