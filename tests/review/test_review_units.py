"""Pieces of the review app on their own: the login rate limiter, password hashing, the
role table, the call list's filters and search, the dashboard figures (assistant calls with
handoffs and latencies, the twin's contribution ledger)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from review_support import Browser, Demo

from transcripts.review.app import create_app
from transcripts.review.permissions import ROLE_PERMISSIONS, Permission, role_can
from transcripts.review.queries import dashboard, handoff_reason, latencies_s
from transcripts.review.security import (
    LoginRateLimiter,
    hash_password,
    hash_token,
    verify_password,
)
from transcripts.review.settings import ReviewSettings
from transcripts.review.views import read_contributions
from transcripts.types import NewCall, NewTurn

pytestmark = pytest.mark.timeout(300)


def test_rate_limiter_window_and_reset() -> None:
    now = [1000.0]
    limiter = LoginRateLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1", "alice") is None
        limiter.record_failure("10.0.0.1", "alice")
    assert limiter.retry_after("10.0.0.1", "alice") == pytest.approx(60)
    assert limiter.retry_after("10.0.0.2", "Alice ") is not None  # same user elsewhere
    assert limiter.retry_after("10.0.0.1", "bob") is not None  # same address
    assert limiter.retry_after("10.0.0.2", "bob") is None
    now[0] += 30
    assert limiter.retry_after("10.0.0.1", "alice") == pytest.approx(30)
    now[0] += 30.5
    assert limiter.retry_after("10.0.0.1", "alice") is None  # the window slid past
    limiter.record_failure("10.0.0.3", "carol")
    limiter.reset("10.0.0.3", "carol")
    assert limiter._failures.get("user:carol") is None


def test_password_hashing() -> None:
    stored = hash_password("a long password")
    assert stored.startswith("$argon2id$") and "a long password" not in stored
    assert verify_password(stored, "a long password")
    assert not verify_password(stored, "a long passworD")
    assert not verify_password("not a hash", "a long password")
    with pytest.raises(ValueError, match="8 characters"):
        hash_password("short")
    assert len(hash_token("abc")) == 64 and hash_token("abc") != hash_token("abd")


def test_role_table() -> None:
    assert set(ROLE_PERMISSIONS) == {"reviewer", "trainer", "admin"}
    assert ROLE_PERMISSIONS["admin"] == frozenset(Permission)
    for role in ("reviewer", "trainer"):
        assert not role_can(role, Permission.VIEW_PII)
        assert not role_can(role, Permission.MANAGE_USERS)
        assert role_can(role, Permission.APPROVE) and role_can(role, Permission.LABEL)
    assert role_can("reviewer", Permission.EDIT_TRANSCRIPT)
    assert not role_can("trainer", Permission.EDIT_TRANSCRIPT)
    assert not role_can("reviewer", Permission.VIEW_AUDIT)
    assert role_can("trainer", Permission.VIEW_AUDIT)
    assert not role_can("nobody", Permission.VIEW_CALLS)


def _listed(html: str) -> list[str]:
    return re.findall(r'class="call-link">([^<]+)<', html)


async def test_call_list_filters_search_and_paging(demo: Demo,
                                                   browsers: Callable[[object], Browser]) -> None:
    app = create_app(store=demo.store, settings=ReviewSettings(page_size=3))
    b = browsers(app)
    assert (await b.login("alice")).status_code == 303

    async def ids(query: str) -> list[str]:
        r = await b.page("/calls?" + query)
        assert r.status_code == 200, r.text
        return _listed(r.text)

    assert await ids("") == ["P3-021", "P2-018", "P2-005"]  # newest first, page 1 of 2
    assert await ids("page=2") == ["P1-001"]
    assert "Page 2 / 2" in (await b.page("/calls?page=2")).text
    assert await ids("q=ambulance") == ["P3-021"]
    assert "Ambulance" in (await b.page("/calls?q=ambulance")).text  # the snippet
    assert await ids("q=Jacquet") == []  # personal data is not searchable once masked
    assert await ids("q=100%25") == []
    assert sorted(await ids("state=corrected")) == ["P1-001", "P2-018"]
    assert sorted(await ids("state=draft")) == ["P2-005", "P3-021"]
    assert await ids("rating=5") == ["P1-001"]
    assert sorted(await ids("rating=none")) == ["P2-005", "P3-021"]
    assert await ids("flag=no_readback") == ["P2-018"]
    assert await ids("flag=any") == ["P2-018"]
    assert sorted(await ids("secretary=sec-bruno")) == ["P2-005", "P3-021"]
    assert await ids("category=emergency") == ["P3-021"]
    assert await ids("outcome=booked") == ["P1-001"]
    assert await ids("date_from=2026-10-07&date_to=2026-10-20") == ["P2-018", "P2-005"]
    assert await ids("handled_by=assistant") == []
    assert "Aucun appel" in (await b.page("/calls?handled_by=assistant")).text
    assert await ids("state=bogus&secretary=nobody") == ["P3-021", "P2-018", "P2-005"]


async def test_dashboard_figures_with_assistant_calls_and_a_ledger(
        demo: Demo, tmp_path: Path, browsers: Callable[[object], Browser]) -> None:
    started = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    for i, (meta, outcome) in enumerate([
            ({"voice_to_voice_s": [0.8, 1.2]}, "booked"),
            ({"handoff_reason": "urgence", "latency": {"voice_to_voice_ms": [900, 1500]}},
             "transferred"),
            ({"handoff": {"reason": "demande d'un humain"}, "turns": [
                {"voice_to_voice_s": 1.0}, {"voice_to_voice_s": None}]}, "transferred")]):
        await demo.store.add_call(NewCall(
            external_id=f"assist-{i}", source="assistant", started_at=started,
            handled_by="assistant", outcome=outcome, metadata=meta,
            turns=[NewTurn(speaker="assistant", text="Bonjour.")]), actor="test")
    d = await dashboard(demo.store, contributions={"sec-amelie": 12, "sec-bruno": 7})
    assert d.total_calls == 7 and d.assistant_calls == 3 and d.assistant_end_to_end == 1
    assert d.assistant_share == pytest.approx(1 / 7)
    assert dict(d.handoffs) == {"urgence": 1, "demande d'un humain": 1}
    assert d.latency_samples == 5 and d.median_latency_s == pytest.approx(1.0)
    assert dict(d.per_day)["2026-11-02"] == 3
    assert dict(d.progress) == {"draft": 5, "corrected": 2, "approved": 0}
    by_sec = {s.secretary_id: s for s in d.secretaries}
    assert by_sec["sec-amelie"].contributed == 12 and by_sec["sec-chloe"].contributed == 0
    assert by_sec["sec-amelie"].mean_rating == 5 and by_sec["sec-chloe"].mean_rating == 3
    assert by_sec["sec-bruno"].calls == 2 and by_sec["sec-bruno"].reviewed == 0

    # the page, with the deployed twin's ledger (as twin_training writes them)
    model_dir = tmp_path / "twin"
    export = tmp_path / "exports" / "run-1"
    export.mkdir(parents=True)
    model_dir.mkdir()
    (export / "ledger.json").write_text(json.dumps({
        "model_id": "qwen+run-1-abcd", "total_examples": 55, "contributions": {
            "sec-amelie": {"examples": 31, "calls": 9, "share": 0.56},
            "sec-bruno": {"examples": 24, "calls": 7, "share": 0.44}}}))
    (model_dir / "registry.json").write_text(json.dumps({
        "current": {"id": "twin-2026-11-20", "ledger": str(export / "ledger.json")},
        "previous": [], "history": []}))
    app = create_app(store=demo.store, settings=ReviewSettings(twin_model_dir=model_dir))
    b = browsers(app)
    assert (await b.login("alice")).status_code == 303
    page = (await b.page("/dashboard")).text
    assert "twin-2026-11-20" in page and "<td>31</td>" in page and "<td>24</td>" in page
    assert "14 %" in page and "1,00 s" in page and "urgence" in page
    # rolled back to no twin: nothing contributed
    (model_dir / "registry.json").write_text(json.dumps({"current": None}))
    page = (await b.page("/dashboard")).text
    assert "pas encore de jumeau" in page and "<td>31</td>" not in page


def test_handoff_and_latency_shapes() -> None:
    assert handoff_reason({}, "booked") is None
    assert handoff_reason({}, "transferred") == "sans motif"
    assert handoff_reason({"handoff_reason": "colère"}, None) == "colère"
    assert latencies_s({"voice_to_voice_ms": 1500}) == [1.5]
    assert latencies_s({"voice_to_voice_s": [True, -1, "x", 0.5]}) == [0.5]
    # the shape twin/call_archive.py writes for the assistant's calls
    meta = {"handoff_reason": None, "latency": [
        {"stt_s": 0.3, "voice_to_voice_s": 1.1}, {"stt_s": 0.2, "voice_to_voice_s": None}]}
    assert latencies_s(meta) == [1.1] and handoff_reason(meta, "booked") is None


def test_contribution_ledger_shapes(tmp_path: Path) -> None:
    assert read_contributions(None) == (None, {})
    assert read_contributions(tmp_path / "missing") == (None, {})
    assert read_contributions(tmp_path) == (None, {})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ledger.json").write_text("{not json")
    assert read_contributions(tmp_path) == (None, {})
    (tmp_path / "a" / "ledger.json").write_text(json.dumps({
        "model_id": "r1", "contributions": {"sec-x": {"examples": 4, "calls": 2}}}))
    assert read_contributions(tmp_path) == ("r1", {"sec-x": 4})
    (tmp_path / "a" / "ledger.json").write_text(json.dumps({
        "contributions": [{"secretary_id": "sec-y", "examples": 9}]}))
    assert read_contributions(tmp_path) == ("a", {"sec-y": 9})
    (tmp_path / "registry.json").write_text(json.dumps({"current": {
        "id": "t2", "ledger": str(tmp_path / "absent.json")}}))
    assert read_contributions(tmp_path) == ("t2", {})
