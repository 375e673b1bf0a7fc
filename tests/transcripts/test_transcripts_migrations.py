"""The store's Alembic tree agrees with its models and lives beside the agenda's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from records.db import Database
from transcripts.models import Base
from transcripts.store import VERSION_TABLE, TranscriptStore


def _diff(conn: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={
        "compare_type": True,
        "include_name": lambda name, type_, _p: type_ != "table" or str(name).startswith("tr_"),
    })
    return list(compare_metadata(ctx, Base.metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migrations_match_models_next_to_the_agenda(store_url: str) -> None:
    agenda = Database(url=store_url)
    await agenda.migrate()
    store = TranscriptStore(url=store_url)
    try:
        await store.migrate()
        assert await store.current_revision() == "tr0001"
        assert await agenda.current_revision() is not None
        async with agenda.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(_tables)
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        assert VERSION_TABLE in tables and "alembic_version" in tables and "calls" in tables
        await store.migrate()  # idempotent
        await store.downgrade("base")
        async with agenda.engine.connect() as conn:
            left = await conn.run_sync(_tables)
        assert not any(t.startswith("tr_") for t in left)
        assert "calls" in left  # the agenda is untouched
        await store.migrate()
        assert await store.current_revision() == "tr0001"
    finally:
        await store.dispose()
        await agenda.dispose()
