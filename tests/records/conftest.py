"""Fixtures for the records tests: real SQLite files and real PostgreSQL databases.

PostgreSQL comes from ``scripts/services.sh`` (``TWIN_TEST_PG_URL`` or ``var/test-pg-url``).
Each PostgreSQL test gets its own fresh database, dropped afterwards. Without PostgreSQL
the ``postgres`` tests skip locally and FAIL when ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from records import BookingService, Database, seed_demo

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 08:00 in Paris


def pg_admin_url() -> str | None:
    url = os.environ.get("TWIN_TEST_PG_URL")
    if not url:
        f = ROOT / "var" / "test-pg-url"
        url = f.read_text().strip() if f.exists() else None
    return url or None


def _require_pg() -> str:
    url = pg_admin_url()
    problem = None if url else "TWIN_TEST_PG_URL is not set (run: source scripts/services.sh)"
    if url and problem is None:
        try:
            _ping(url)
        except Exception as exc:
            problem = f"PostgreSQL at {url} is not reachable: {exc}"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    assert url is not None
    return url


def _ping(url: str) -> None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with socket.create_connection((u.host or "127.0.0.1", u.port or 5432), timeout=5):
        pass


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _require_pg()


class PgDatabases:
    """Creates and drops throw-away PostgreSQL databases."""

    def __init__(self, *, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    async def create(self) -> str:
        import asyncpg

        name = f"twin_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.names.append(name)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    async def drop_all(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            for name in self.names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def pg_databases(pg_url: str) -> AsyncIterator[PgDatabases]:
    dbs = PgDatabases(admin_url=pg_url)
    yield dbs
    await dbs.drop_all()


def _backend_params() -> list[object]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_backend_params())
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
        return
    dbs = PgDatabases(admin_url=_require_pg())
    url = await dbs.create()
    yield url
    await dbs.drop_all()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(url=db_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
async def seeded(db: Database) -> Database:
    await seed_demo(db, today=TODAY)
    return db


@pytest.fixture
def service(seeded: Database, tmp_path: Path) -> BookingService:
    return BookingService(db=seeded, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
