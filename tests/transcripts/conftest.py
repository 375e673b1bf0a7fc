"""Fixtures for the transcripts store tests: real SQLite files and real PostgreSQL databases.

PostgreSQL comes from ``scripts/services.sh`` (``TWIN_TEST_PG_URL`` or ``var/test-pg-url``);
each PostgreSQL test gets its own fresh database, dropped afterwards. Without PostgreSQL the
``postgres`` tests skip locally and FAIL when ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from transcripts.store import TranscriptStore

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "calls.jsonl"


def _pg_admin_url() -> str | None:
    url = os.environ.get("TWIN_TEST_PG_URL")
    if not url:
        f = ROOT / "var" / "test-pg-url"
        url = f.read_text().strip() if f.exists() else None
    return url or None


def require_pg() -> str:
    url = _pg_admin_url()
    problem = None if url else "TWIN_TEST_PG_URL is not set (run: source scripts/services.sh)"
    if url and problem is None:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        try:
            with socket.create_connection((u.host or "127.0.0.1", u.port or 5432), timeout=5):
                pass
        except OSError as exc:
            problem = f"PostgreSQL at {url} is not reachable: {exc}"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    assert url is not None
    return url


class PgDatabases:
    """Creates and drops throw-away PostgreSQL databases."""

    def __init__(self, *, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    def _plain(self) -> str:
        return self.admin_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create(self) -> str:
        import asyncpg

        name = f"twin_tr_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self._plain())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.names.append(name)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    async def drop_all(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._plain())
        try:
            for name in self.names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
        return
    dbs = PgDatabases(admin_url=require_pg())
    url = await dbs.create()
    yield url
    await dbs.drop_all()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TranscriptStore]:
    s = TranscriptStore(url=store_url)
    await s.migrate()
    yield s
    await s.dispose()
