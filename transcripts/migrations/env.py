"""Alembic environment for the transcripts store.

Run through ``transcripts.store.TranscriptStore.migrate()``, which hands over an open
connection in ``config.attributes["connection"]``. The store shares its database with the
agenda, so it keeps its own version table and only ever looks at ``tr_`` tables.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from transcripts.models import Base

VERSION_TABLE = "transcripts_alembic_version"
target_metadata = Base.metadata
config = context.config


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Only the store's own tables: the agenda's live in the same database."""
    if type_ == "table":
        return bool(name) and str(name).startswith("tr_")
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with TranscriptStore.migrate()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
