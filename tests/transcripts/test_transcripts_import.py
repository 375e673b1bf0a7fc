"""``twin transcripts import``: the corpus JSONL format, idempotent, malformed lines reported."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from transcripts import CallFilter, TranscriptStore
from transcripts.importer import import_jsonl

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "calls.jsonl"


def _records() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


async def test_import_corpus_subset(store: TranscriptStore) -> None:
    records = _records()
    report = await import_jsonl(store, CORPUS)
    assert (report.added, report.errors, report.spans_not_found) == (len(records), [], [])
    expected_spans = sum(len(t["pii"]) for r in records for t in r["turns"])
    assert report.spans == expected_spans
    page = await store.list_calls()
    assert page.total == len(records)
    by_ext = {c.external_id: c for c in page.items}
    for r in records:
        summary = by_ext[r["call_id"]]
        assert summary.status == ("reviewed" if r["review"] else "redacted")
        assert summary.secretary_id == r["secretary_id"]
        view = await store.get_call(summary.id, can_see_pii=True)
        assert view is not None
        assert view.language == r["language"] and view.category == r["category"]
        assert view.caller_number == r["caller_number"]
        assert view.started_at.isoformat() != "" and view.started_at.utcoffset() is not None
        if r["review"]:
            assert view.review is not None
            assert (view.review.rating, view.review.reviewer, view.review.flags) == (
                r["review"]["rating"], r["review"]["reviewer"], r["review"]["flags"])
            note = view.review.note or ""
            assert bool(note) == bool(r["review"]["note"])
            assert not any(p["text"] in note for t in r["turns"] for p in t["pii"]
                           if len(p["text"]) >= 3)
        for turn, src in zip(view.turns, r["turns"], strict=True):
            assert turn.speaker == src["speaker"]
            assert [a["action"] for a in turn.actions] == [a["action"] for a in src["actions"]]
            for got, want in zip(turn.actions, src["actions"], strict=True):
                for key, value in want["args"].items():
                    if key in ("name", "birth_date", "phone"):  # personal data: placeholders
                        assert got["args"][key].startswith("[") and value not in str(got)
                    elif key not in ("summary", "reason"):
                        assert got["args"][key] == value
                assert got["result"] == want["result"]
            # placeholders put back give the original text exactly
            assert turn.original_text == src["text"]
            assert sorted(s.original or "" for s in turn.spans) == sorted(p["text"] for p in src["pii"])
            assert all(s.source == "label" and s.status == "accepted" for s in turn.spans)
            for s in turn.spans:  # the stored text holds the placeholder
                assert turn.text[s.start:s.end] == s.placeholder
        hidden = await store.get_call(summary.id, can_see_pii=False)
        assert hidden is not None and hidden.caller_number is None
    # a redacted turn: the patient's name is gone from the text
    first = await store.get_call(by_ext["P1-001"].id, can_see_pii=False)
    assert first is not None
    assert first.turns[3].text == "Oui oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    assert first.turns[4].text.startswith("Merci, monsieur [NOM_1].")
    assert first.turns[4].actions[0]["args"] == {"name": "[NOM_2]",
                                                 "birth_date": "[DATE_NAISSANCE_1]"}
    # the emergency call came in
    assert (await store.list_calls(CallFilter(category="emergency"))).total == 2


async def test_reimport_changes_nothing(store: TranscriptStore) -> None:
    await import_jsonl(store, CORPUS)
    before = await store.list_calls()
    audit_before = await store.list_audit(limit=10_000)
    report = await import_jsonl(store, CORPUS)
    assert (report.added, report.updated, report.unchanged) == (0, 0, len(_records()))
    after = await store.list_calls()
    assert [(c.id, c.version, c.status, c.updated_at) for c in after.items] == [
        (c.id, c.version, c.status, c.updated_at) for c in before.items]
    assert len(await store.list_audit(limit=10_000)) == len(audit_before)


async def test_approve_and_conflicts(store: TranscriptStore, tmp_path: Path) -> None:
    await import_jsonl(store, CORPUS)
    report = await import_jsonl(store, CORPUS, approve=True)  # approves what was reviewed
    reviewed = [r for r in _records() if r["review"]]
    assert report.approved == len(reviewed) and report.unchanged == len(_records())
    assert (await store.list_calls(CallFilter(statuses=("approved",)))).total == len(reviewed)
    assert (await store.list_calls(CallFilter(statuses=("redacted",)))).total == \
        len(_records()) - len(reviewed)

    changed = _records()[:1]
    changed[0]["outcome"] = "abandoned"
    f = tmp_path / "changed.jsonl"
    f.write_text(json.dumps(changed[0], ensure_ascii=False) + "\n", encoding="utf-8")
    report = await import_jsonl(store, f)
    assert report.conflicts == [changed[0]["call_id"]] and report.updated == 0
    report = await import_jsonl(store, f, update=True)
    assert report.updated == 1
    cid = await store.find_call_id(external_id=changed[0]["call_id"])
    assert cid is not None
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.outcome == "abandoned"


async def test_malformed_lines_are_reported_and_the_rest_goes_on(store: TranscriptStore,
                                                                 tmp_path: Path) -> None:
    records = _records()
    bad_turn = dict(records[1], call_id="X-2", turns=[{"speaker": "robot", "text": "?"}])
    lines = [json.dumps(records[0], ensure_ascii=False), "{not json",
             json.dumps(bad_turn, ensure_ascii=False), "",
             json.dumps({"call_id": "X-3", "turns": []}),
             json.dumps(dict(records[2], started_at="hier"), ensure_ascii=False),
             json.dumps(records[3], ensure_ascii=False)]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_jsonl(store, f)
    assert report.added == 2
    assert [e.line for e in report.errors] == [2, 3, 5, 6]
    assert "JSON" in report.errors[0].message and "speaker" in report.errors[1].message
    assert "started_at" in report.errors[2].message or "turns" in report.errors[2].message
    assert "started_at" in report.errors[3].message


def test_cli_import_twice(tmp_path: Path) -> None:
    from transcripts.cli import cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    runner = CliRunner()
    first = runner.invoke(cli, ["import", str(CORPUS), "--approve", "--url", url])
    assert first.exit_code == 0, first.output
    assert "8 added" in first.output and "7 approved" in first.output
    second = runner.invoke(cli, ["import", str(CORPUS), "--url", url])
    assert second.exit_code == 0 and "0 added, 8 unchanged" in second.output
    listed = runner.invoke(cli, ["list", "--status", "approved", "--url", url])
    assert listed.exit_code == 0 and "7 of 7 calls" in listed.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n", encoding="utf-8")
    failed = runner.invoke(cli, ["import", str(bad), "--url", url])
    assert failed.exit_code == 1 and "line 1: not a JSON object" in failed.output
