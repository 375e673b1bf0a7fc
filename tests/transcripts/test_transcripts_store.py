"""The transcripts store on SQLite and PostgreSQL: calls, redaction, stale edits, audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from transcripts import (
    CallFilter,
    DuplicateCallError,
    NewCall,
    NewTurn,
    Page,
    PiiSpanProposal,
    Review,
    StaleEditError,
    TranscriptStore,
)

STARTED = datetime(2026, 10, 5, 6, 34, tzinfo=UTC)
TEXT = "Oui. Jacquet, Rémi Jacquet. Le dix-sept février quatre-vingt-onze."


def _call(external_id: str = "call-1", **kw: object) -> NewCall:
    turns = [NewTurn(speaker="secretary", text="Cabinet médical, bonjour."),
             NewTurn(speaker="patient", text=TEXT, start_s=1.5, end_s=4.0, confidence=0.9),
             NewTurn(speaker="secretary", text="Merci, monsieur Jacquet.",
                     actions=[{"action": "find_patient", "args": {"name": "Rémi Jacquet"},
                               "result": {"found": True}}])]
    fields: dict[str, object] = dict(external_id=external_id, source="import", started_at=STARTED,
                                     practice_id="p1", secretary_id="sec-a",
                                     caller_number="+33600000000", category="booking",
                                     outcome="booked", status="transcribed", turns=turns)
    fields.update(kw)
    return NewCall(**fields)  # type: ignore[arg-type]


def _spans(text: str, *pairs: tuple[str, str]) -> list[PiiSpanProposal]:
    out, pos = [], 0
    for needle, kind in pairs:
        start = text.index(needle, pos)
        out.append(PiiSpanProposal(start=start, end=start + len(needle), type=kind, source="rule"))
        pos = start + len(needle)
    return out


async def test_add_get_list(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(review=Review(rating=4, reviewer="r1", flags=["too_long"],
                                                   note="ok")), actor="test")
    view = await store.get_call(cid, can_see_pii=True)
    assert view is not None
    assert view.external_id == "call-1" and view.started_at == STARTED
    assert [t.speaker for t in view.turns] == ["secretary", "patient", "secretary"]
    assert view.turns[1].start_s == 1.5 and view.turns[1].confidence == 0.9
    assert view.turns[2].actions[0]["action"] == "find_patient"
    assert view.review is not None and view.review.flags == ["too_long"]
    assert view.caller_number == "+33600000000"
    hidden = await store.get_call(cid, can_see_pii=False)
    assert hidden is not None and hidden.caller_number is None

    await store.add_call(_call("call-2", status="approved", secretary_id="sec-b",
                               started_at=datetime(2026, 10, 6, 8, tzinfo=UTC)), actor="test")
    page = await store.list_calls()
    assert page.total == 2 and [c.external_id for c in page.items] == ["call-2", "call-1"]
    assert page.items[0].turn_count == 3
    assert (await store.list_calls(CallFilter(statuses=("approved",)))).total == 1
    assert (await store.list_calls(CallFilter(secretary_id="sec-a"))).items[0].id == cid
    assert (await store.list_calls(CallFilter(flag="too_long"))).total == 1
    assert (await store.list_calls(CallFilter(reviewed=False))).total == 1
    assert len((await store.list_calls(page=Page(offset=1, limit=1))).items) == 1
    with pytest.raises(DuplicateCallError):
        await store.add_call(_call("call-1"), actor="test")


async def test_redaction_reject_accept_and_missed_span(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(), actor="test")
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    turn = view.turns[1]
    ids = await store.apply_redaction(
        turn.id, _spans(TEXT, ("Jacquet", "person"), ("Rémi Jacquet", "person"),
                        ("dix-sept février quatre-vingt-onze", "birth_date")), actor="d")
    assert len(ids) == 3
    # the same surname in another turn gets the same placeholder
    await store.apply_redaction(view.turns[2].id, _spans("Merci, monsieur Jacquet.",
                                                         ("Jacquet", "person")), actor="d")
    hidden = await store.get_call(cid, can_see_pii=False)
    assert hidden is not None
    assert hidden.turns[1].text == "Oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    assert hidden.turns[2].text == "Merci, monsieur [NOM_1]."
    assert all(s.original is None for s in hidden.turns[1].spans)
    assert hidden.turns[1].original_text is None
    for s in hidden.turns[1].spans:
        assert hidden.turns[1].text[s.start:s.end] == s.placeholder
    seen = await store.get_call(cid, can_see_pii=True)
    assert seen is not None and seen.turns[1].original_text == TEXT
    assert [s.original for s in seen.turns[1].spans] == [
        "Jacquet", "Rémi Jacquet", "dix-sept février quatre-vingt-onze"]

    # rejecting a span puts the original back and moves the spans after it
    first = seen.turns[1].spans[0]
    await store.set_span_status(first.id, "rejected", actor="reviewer")
    after = await store.get_call(cid, can_see_pii=False)
    assert after is not None
    t = after.turns[1]
    assert t.text == "Oui. Jacquet, [NOM_2]. Le [DATE_NAISSANCE_1]."
    for s in t.spans:
        expected = "Jacquet" if s.status == "rejected" else s.placeholder
        assert t.text[s.start:s.end] == expected
    # a new proposal over a rejected span is ignored (the reviewer decided)
    assert await store.apply_redaction(t.id, [PiiSpanProposal(start=5, end=12, type="person")],
                                       actor="d") == []
    # accepting it again puts the placeholder back
    await store.set_span_status(first.id, "accepted", actor="reviewer")
    again = await store.get_call(cid, can_see_pii=False)
    assert again is not None and again.turns[1].text == hidden.turns[1].text

    # a span the detectors missed
    sec = again.turns[0]
    start = sec.text.index("médical")
    span_id = await store.add_missed_span(sec.id, start, start + len("médical"), "other_id",
                                          actor="reviewer")
    final = await store.get_call(cid, can_see_pii=True)
    assert final is not None
    assert final.turns[0].text == "Cabinet [IDENTIFIANT_1], bonjour."
    missed = next(s for s in final.turns[0].spans if s.id == span_id)
    assert (missed.source, missed.status, missed.original) == ("reviewer", "accepted", "médical")
    with pytest.raises(ValueError):
        await store.add_missed_span(sec.id, missed.start, missed.end, "person", actor="reviewer")


async def test_update_turn_relocates_spans(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(), actor="test")
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    turn = view.turns[1]
    await store.apply_redaction(turn.id, _spans(TEXT, ("Rémi Jacquet", "person"),
                                                ("dix-sept février quatre-vingt-onze",
                                                 "birth_date")), actor="d")
    await store.update_turn(turn.id, text="Oui oui, [NOM_1], né le [DATE_NAISSANCE_1].",
                            speaker="patient", actor="reviewer")
    after = await store.get_call(cid, can_see_pii=True)
    assert after is not None
    t = after.turns[1]
    assert t.original_text == "Oui oui, Rémi Jacquet, né le dix-sept février quatre-vingt-onze."
    await store.update_turn(turn.id, text="Oui oui, né le [DATE_NAISSANCE_1].", actor="reviewer")
    dropped = await store.get_call(cid, can_see_pii=True)
    assert dropped is not None and [s.placeholder for s in dropped.turns[1].spans] == [
        "[DATE_NAISSANCE_1]"]


async def test_stale_version_and_audit(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(), actor="importer")
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.version == 1
    v2 = await store.set_labels(cid, actor="alice", expected_version=1, review_rating=5,
                                review_flags=["good_example"], category="info")
    assert v2 == 2
    with pytest.raises(StaleEditError) as err:
        await store.set_labels(cid, actor="bob", expected_version=1, review_rating=1)
    assert err.value.actual == 2
    with pytest.raises(StaleEditError):
        await store.update_turn(view.turns[0].id, text="x", actor="bob", expected_version=1)
    with pytest.raises(StaleEditError):
        await store.set_status(cid, "approved", actor="bob", expected_version=1)
    await store.set_status(cid, "reviewed", actor="alice", expected_version=2)
    with pytest.raises(ValueError):
        await store.set_labels(cid, actor="alice", review_rating=7)
    with pytest.raises(ValueError):
        await store.set_labels(cid, actor="alice", audio_path="/x")
    audit = await store.list_audit(call_id=cid)
    assert [a.action for a in audit] == ["call.status", "call.labels", "call.add"]
    labels = audit[1]
    assert labels.actor == "alice"
    assert labels.before == {"review_rating": None, "review_flags": [], "category": "booking"}
    assert labels.after == {"review_rating": 5, "review_flags": ["good_example"],
                            "category": "info"}
    assert audit[0].before == {"status": "transcribed"} and audit[0].after == {"status": "reviewed"}
    final = await store.get_call(cid, can_see_pii=False)
    assert final is not None and final.version == 3 and final.status == "reviewed"
    # saving what is already there is no change: same version, no audit row
    assert await store.set_labels(cid, actor="alice", expected_version=3, review_rating=5) == 3
    assert await store.set_status(cid, "reviewed", actor="alice") == 3
    assert await store.update_turn(final.turns[0].id, text=final.turns[0].text,
                                   actor="alice") == 3
    assert len(await store.list_audit(call_id=cid)) == 3


async def test_concurrent_edits_one_wins(store: TranscriptStore) -> None:
    """Two reviewers save at the same time from the same version: exactly one succeeds."""
    cid = await store.add_call(_call(), actor="test")

    async def edit(rating: int) -> str:
        try:
            await store.set_labels(cid, actor=f"r{rating}", expected_version=1,
                                   review_rating=rating)
            return "ok"
        except StaleEditError:
            return "stale"

    results = await asyncio.gather(edit(2), edit(4))
    assert sorted(results) == ["ok", "stale"]
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.version == 2


async def test_objection_removes_audio_and_text(store: TranscriptStore, tmp_path) -> None:
    audio = tmp_path / "call.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    cid = await store.add_call(_call(audio_path=str(audio), audio_sha256="a" * 64),
                               actor="test")
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    await store.apply_redaction(view.turns[1].id, _spans(TEXT, ("Rémi Jacquet", "person")),
                                actor="d")
    await store.apply_objection(cid, actor="staff")
    assert not audio.exists()
    after = await store.get_call(cid, can_see_pii=True)
    assert after is not None
    assert after.objection and after.turns == [] and after.audio_path is None
    assert after.caller_number is None and after.audio_deleted_at is not None
    audit = await store.list_audit(call_id=cid, action="call.objection")
    assert audit[0].after == {"audio_deleted": True, "turns_deleted": 3}
    assert (await store.list_calls(CallFilter(objection=True))).total == 1


async def test_replace_turns(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(source="recording", status="new", turns=[]), actor="ingest")
    await store.replace_turns(cid, [NewTurn(speaker="secretary", text="Allô ?", start_s=0.0,
                                            end_s=0.8, words=[{"w": "Allô", "s": 0.0, "e": 0.5}])],
                              status="transcribed", actor="transcribe")
    await store.update_call_info(cid, actor="transcribe", duration_s=12.5, channels=2,
                                 metadata={"model": "whisper-base"})
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "transcribed"
    assert view.turns[0].words == [{"w": "Allô", "s": 0.0, "e": 0.5}]
    assert view.duration_s == 12.5 and view.metadata == {"model": "whisper-base"}


async def test_audit_never_holds_originals(store: TranscriptStore) -> None:
    cid = await store.add_call(_call(), actor="test")
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    turn = view.turns[1]
    ids = await store.apply_redaction(
        turn.id, _spans(TEXT, ("Rémi Jacquet", "person"),
                        ("dix-sept février quatre-vingt-onze", "birth_date")),
        actor="d", expected_version=view.version)
    with pytest.raises(StaleEditError):  # based on the version before the redaction
        await store.apply_redaction(view.turns[2].id, [], actor="d",
                                    expected_version=view.version)
    await store.set_span_status(ids[0], "rejected", actor="r")
    await store.set_span_status(ids[0], "accepted", actor="r")
    start = TEXT.index("Oui")
    await store.add_missed_span(turn.id, start, start + 3, "other_id", actor="r")
    rows = await store.list_audit(call_id=cid)
    assert {a.action for a in rows} >= {"turn.redact", "span.status"}
    dumped = repr([(a.before, a.after) for a in rows])
    assert "Jacquet" not in dumped and "février" not in dumped and "Oui" not in dumped


def test_help_lists_the_commands() -> None:
    from click.testing import CliRunner

    from transcripts.cli import cli

    out = CliRunner().invoke(cli, ["--help"]).output
    for command in ("import", "ingest", "transcribe", "redact", "purge", "export"):
        assert f"\n  {command} " in out, command
