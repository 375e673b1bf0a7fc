"""Alembic environment for the agenda database.

Run through ``records.db.Database.migrate()`` / ``twin db migrate``, which hand over an
open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from records.models import Base

target_metadata = Base.metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `twin db migrate` (records.db.Database.migrate)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
