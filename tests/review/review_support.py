"""Helpers shared by the review app tests (a module of its own: test files import it by
name, which a ``conftest`` cannot be when several test folders have one)."""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from transcripts.review.auth import Accounts
from transcripts.review.demo import copy_demo_audio, load_demo
from transcripts.store import TranscriptStore

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
USERS = {"alice": "reviewer", "bea": "reviewer", "tom": "trainer", "ada": "admin"}


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


async def pg_database(admin_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"twin_review_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


async def pg_drop(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Demo:
    store: TranscriptStore
    ids: dict[str, int]  # corpus call_id -> store id
    audio_dir: Path


async def make_demo(url: str, tmp_path: Path) -> Demo:
    store = TranscriptStore(url=url)
    await store.migrate()
    audio_dir = copy_demo_audio(tmp_path / "audio")
    await load_demo(store, audio_dir=audio_dir)
    accounts = Accounts(store=store)
    for name, role in USERS.items():
        await accounts.add_user(name, PASSWORD, role, actor="test")
    ids = {}
    for external in ("P1-001", "P2-018", "P3-021", "P2-005"):
        found = await store.find_call_id(external_id=external)
        assert found is not None
        ids[external] = found
    return Demo(store=store, ids=ids, audio_dir=audio_dir)


class Browser:
    """An httpx client on the app that logs in like a person (login page, CSRF cookie)."""

    def __init__(self, app: object) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                      base_url="http://review.test", follow_redirects=False)
        self.csrf = ""

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        response = await self.http.post("/login", data={
            "csrf_token": token.group(1), "username": username, "password": password,
            "next": "/calls"})
        if response.status_code == 303:
            calls = await self.http.get("/calls")
            found = re.search(r'name="csrf_token" value="([^"]+)"', calls.text)
            self.csrf = found.group(1) if found else ""
        return response

    async def page(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def version(self, call_id: int) -> int:
        page = await self.http.get(f"/calls/{call_id}")
        found = re.search(r'name="version" value="(\d+)"', page.text)
        assert found, page.text[:2000]
        return int(found.group(1))

    async def post(self, path: str, data: dict[str, object], *, csrf: bool = True,
                   call_id: int | None = None) -> httpx.Response:
        form = dict(data)
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        if call_id is not None and "version" not in form:
            form["version"] = await self.version(call_id)
        return await self.http.post(path, data=form)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.http.aclose()
