"""``pocketcloud db upgrade|current``: pocketcloud's schema, beside steward's."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path

import typer

from pocketcloud.cli._errors import errors_are_one_line
from pocketcloud.cli._options import DataDir, cloud_overrides
from pocketcloud.services import DatabaseOption, resolve_settings
from steward._lazy import lazy_import

if typing.TYPE_CHECKING:
    from pocketcloud import config, database
    from steward import db
else:
    config = lazy_import("pocketcloud.config")
    database = lazy_import("pocketcloud.database")
    db = lazy_import("steward.db")

__all__ = ["db_app", "db_current", "db_upgrade"]

db_app = typer.Typer(help="pocketcloud's database schema.", no_args_is_help=True)


def _database_url(data_dir: Path | None, database_url: str | None) -> str:
    cloud_settings = config.load_cloud_settings(cloud_overrides(data_dir=data_dir))
    cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
    return resolve_settings(cloud_settings, database_url=database_url).database_url


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseOption = None) -> None:
    """Bring steward's and pocketcloud's schemas up to date."""
    with errors_are_one_line(debug=False):
        url = _database_url(data_dir, database_url)

        async def upgrade() -> str | None:
            async with db.Database(url) as schema:
                await database.ensure_schemas(schema, upgrade=True)
                return await schema.current_revision(migrations=database.MIGRATIONS)

        typer.echo(f"pocketcloud schema: {asyncio.run(upgrade())}")


@db_app.command("current")
def db_current(data_dir: DataDir = None, database_url: DatabaseOption = None) -> None:
    """Print pocketcloud's schema revision and whether it is the newest."""
    with errors_are_one_line(debug=False):
        url = _database_url(data_dir, database_url)

        async def current() -> str | None:
            async with db.Database(url) as schema:
                return await schema.current_revision(migrations=database.MIGRATIONS)

        revision, head = asyncio.run(current()), db.Database.head_revision(database.MIGRATIONS)
        state = "up to date" if revision == head else f"behind {head}: run `pocketcloud db upgrade`"
        typer.echo(f"pocketcloud schema: {revision or 'empty'} ({state})")
