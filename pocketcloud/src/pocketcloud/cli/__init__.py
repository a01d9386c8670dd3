"""The ``pocketcloud`` command.

* ``pocketcloud up [--demo] [--demo-exit]`` — every service in this process on ``memory://`` and
  an SQLite database in ``--data-dir``, serving the REST API on 127.0.0.1 until SIGINT or SIGTERM
  (a graceful stop, exit code 0). It says it is up once every service it started answers a ping on
  its own queue (:mod:`pocketcloud.readiness`). ``--demo`` then makes a network, a volume and
  three servers through the API (or finds them by name) and shows them in a table (sending
  ``--token`` when the API has tokens); ``--demo-exit`` stops once the demo is done (for scripts
  and CI). With ``--transport-url amqp://...`` (and ``--database-url postgresql+asyncpg://...``)
  each service runs in a process of its own instead, supervised by this one (a dead one is
  restarted), as the ``pocketcloud-<service>`` commands would run them. (``_up``)
* ``pocketcloud db upgrade`` / ``pocketcloud db current`` — pocketcloud's schema (and steward's,
  which it sits beside), in the data directory's database or ``--database-url``. (``_db``)
* ``pocketcloud server|volume|network|host ...`` — a user's commands, over the REST API
  (:mod:`pocketcloud.commands`).

Options not on the command line come from ``POCKETCLOUD_<NAME>`` (pocketcloud's settings) and
``STEWARD_<NAME>`` (steward's) environment variables. Logs go to ``<data dir>/pocketcloud.log``,
warnings also to stderr. What a command needs beyond typer and rich is imported when it runs
(:mod:`steward._lazy`), so ``pocketcloud --help`` stays quick.
"""

from __future__ import annotations

import typer

from pocketcloud.cli._db import db_app
from pocketcloud.cli._up import up
from pocketcloud.commands import host_app, network_app, server_app, volume_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="pocketcloud",
    help="A small cloud on steward: run it, and see it work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(up)
app.add_typer(db_app, name="db")
app.add_typer(server_app, name="server")
app.add_typer(volume_app, name="volume")
app.add_typer(network_app, name="network")
app.add_typer(host_app, name="host")


def main() -> None:
    """Run the ``pocketcloud`` command."""
    app()
