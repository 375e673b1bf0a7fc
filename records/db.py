"""The agenda database: an async SQLAlchemy engine plus the Alembic migrations.

``Database(url=...)`` does no I/O; ``await db.migrate()`` (or ``create_schema()``) brings
the schema to the newest revision, ``await db.dispose()`` closes the pool.

SQLite (``sqlite+aiosqlite:///var/agenda.db``) is the embedded default. Write
transactions on SQLite start with ``BEGIN IMMEDIATE`` so that two writers never read
the same snapshot and then race; PostgreSQL (``postgresql+asyncpg://...``) relies on a
row lock on the practitioner (``SELECT ... FOR UPDATE``) plus a partial unique index.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from records.guard import DatabaseUnavailable, is_unavailable

__all__ = ["DEFAULT_URL", "MIGRATIONS_DIR", "Database", "DatabaseUnavailable", "default_data_dir",
           "default_url"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite+aiosqlite:///var/agenda.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def default_data_dir() -> Path:
    """``$TWIN_HOME``, else ``$XDG_DATA_HOME/twin``, else ``~/.local/share/twin`` (the same
    folder as ``twin.models.data_dir``)."""
    env = os.environ.get("TWIN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "twin"


def default_url() -> str:
    """``$TWIN_DATABASE_URL``, else SQLite in the data folder (``agenda.db``)."""
    return os.environ.get("TWIN_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{default_data_dir() / 'agenda.db'}")


class Database:
    """Async engine + session factories for the agenda database."""

    def __init__(self, *, url: str = DEFAULT_URL, echo: bool = False,
                 pool_size: int = 10, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.echo = echo
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self._engine: AsyncEngine | None = None
        self._read: async_sessionmaker[AsyncSession] | None = None
        self._write: async_sessionmaker[AsyncSession] | None = None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> AsyncEngine:
        kwargs: dict[str, Any] = {"echo": self.echo}
        if self.dialect == "sqlite":
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:" and not path.startswith("file:"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = self.pool_size
            kwargs["max_overflow"] = self.pool_size * 2
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"timeout": self.connect_timeout_s}
        engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(engine)
        return engine

    def _makers(self) -> tuple[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]]:
        if self._read is None or self._write is None:
            engine = self.engine
            write_engine = engine.execution_options(twin_write=True)
            self._read = async_sessionmaker(engine, expire_on_commit=False)
            self._write = async_sessionmaker(write_engine, expire_on_commit=False)
        return self._read, self._write

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read session (no transaction lock); connection problems raise
        :class:`DatabaseUnavailable` with a plain message."""
        read, _ = self._makers()
        try:
            async with read() as session:
                yield session
        except Exception as exc:
            if is_unavailable(exc) and not isinstance(exc, DatabaseUnavailable):
                raise DatabaseUnavailable(
                    f"records database {self.safe_url} unavailable: {exc}") from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits on success, rolls back on any error."""
        _, write = self._makers()
        async with write() as session, session.begin():
            yield session

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (Alembic)."""
        await self._alembic("upgrade", revision)

    async def downgrade(self, revision: str = "base") -> None:
        """Downgrade the schema to ``revision`` (Alembic)."""
        await self._alembic("downgrade", revision)

    async def create_schema(self) -> None:
        """Create or upgrade the schema (idempotent): same as ``migrate('head')``."""
        await self.migrate("head")

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision())

    async def _alembic(self, direction: str, revision: str) -> None:
        from alembic import command

        cfg = alembic_config()

        def run(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            if direction == "upgrade":
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(run)
        logger.info("database %s: %s to %s", self.safe_url, direction, revision)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = None
        self._read = self._write = None


def alembic_config() -> Any:
    """An Alembic ``Config`` pointing at ``records/migrations`` (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) emit BEGIN, so we can choose IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("twin_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
