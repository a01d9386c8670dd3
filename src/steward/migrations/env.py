"""Alembic's environment for steward's schema.

steward runs migrations programmatically (:meth:`steward.db.Database.upgrade`), handing Alembic
an open connection in ``config.attributes["connection"]``; there is no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

from steward.registry import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("steward's migrations run through `steward db upgrade`, with a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
