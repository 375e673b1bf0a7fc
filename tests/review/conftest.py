"""Fixtures for the review app tests: a real SQLite (or PostgreSQL) transcripts store
filled with the shipped demo calls (the real importer), one account per role, and an
HTTP client on the app (httpx over ASGI, same event loop as the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the review extra is not installed")

from review_support import Browser, Demo, make_demo, pg_database, pg_drop, require_pg

from transcripts.review.app import create_app
from transcripts.review.settings import ReviewSettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def demo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Demo]:
    if request.param == "sqlite":
        d = await make_demo(f"sqlite+aiosqlite:///{tmp_path / 'review.db'}", tmp_path)
        yield d
        await d.store.dispose()
        return
    admin = require_pg()
    url, name = await pg_database(admin)
    d = await make_demo(url, tmp_path)
    yield d
    await d.store.dispose()
    await pg_drop(admin, name)


@pytest.fixture
def app(demo: Demo) -> object:
    return create_app(store=demo.store, settings=ReviewSettings())


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[[object], Browser]]:
    """``browsers(app)`` -> a new :class:`Browser` on ``app`` (closed after the test)."""
    created: list[Browser] = []

    def new(app: object) -> Browser:
        b = Browser(app)
        created.append(b)
        return b

    yield new
    for b in created:
        await b.close()
