"""Export: approved, redacted calls as JSONL (corpus shape) and as a datasets folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from transcripts import CallFilter, TranscriptStore
from transcripts.export import export_dataset, iter_calls, write_jsonl
from transcripts.importer import import_jsonl

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "calls.jsonl"


def _source() -> dict[str, dict]:
    return {r["call_id"]: r for r in map(json.loads, CORPUS.read_text(encoding="utf-8")
                                         .splitlines())}


async def test_iter_calls_corpus_shape(store: TranscriptStore) -> None:
    await import_jsonl(store, CORPUS, approve=True)
    src = _source()
    reviewed = {k for k, r in src.items() if r["review"]}
    # one approved call is objected to: it is never exported
    objected = await store.find_call_id(external_id="P2-007")
    assert objected is not None
    await store.apply_objection(objected, actor="staff")
    calls = [c async for c in iter_calls(store)]
    assert {c["call_id"] for c in calls} == reviewed - {"P2-007"}
    for call in calls:
        s = src[call["call_id"]]
        assert call["started_at"] == s["started_at"]  # back in the practice's time zone
        for key in ("secretary_id", "category", "outcome", "language", "practice_id"):
            assert call[key] == s[key]
        review = call["review"]
        assert {k: review[k] for k in ("rating", "reviewer", "flags")} == {
            k: s["review"][k] for k in ("rating", "reviewer", "flags")}
        assert bool(review["note"]) == bool(s["review"]["note"])  # values said: placeholders
        assert "caller_number" not in call
        assert [t["speaker"] for t in call["turns"]] == [t["speaker"] for t in s["turns"]]
        assert [len(t["actions"]) for t in call["turns"]] == [len(t["actions"]) for t in s["turns"]]
        text = json.dumps(call, ensure_ascii=False)
        said = " ".join(t["text"] for t in call["turns"])
        for t in s["turns"]:
            for p in t["pii"]:
                # a value said in the call is nowhere in the export (health details only
                # as said: the staff's own paraphrases in notes and actions stay)
                assert p["text"] not in (said if p["type"] == "health" else text), p
        assert s["caller_number"] not in text
    unreviewed = [c async for c in iter_calls(store, statuses=("redacted",))]
    assert {c["call_id"] for c in unreviewed} == set(src) - reviewed
    assert all(c["review"] is None for c in unreviewed)


async def test_export_dataset_and_jsonl(store: TranscriptStore, tmp_path: Path) -> None:
    from datasets import load_from_disk

    await import_jsonl(store, CORPUS, approve=True)
    approved = (await store.list_calls(CallFilter(statuses=("approved",)))).total
    out = tmp_path / "ds"
    assert await export_dataset(store, out) == approved
    ds = load_from_disk(str(out))
    assert len(ds) == approved
    row = next(r for r in ds if r["call_id"] == "P1-001")
    assert row["secretary_id"] == "sec-amelie" and row["review_rating"] == 5
    assert row["review_reviewer"] == "staff-lead"
    assert row["turns"][3]["text"] == "Oui oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    book = next(a for t in row["turns"] for a in t["actions"] if a["action"] == "book")
    assert json.loads(book["args"])["practitioner"] == "morel"
    assert json.loads(book["result"])["appointment_id"].startswith("apt-")
    chloe = next(r for r in ds if r["call_id"] == "P3-006")
    assert chloe["review_flags"] == ["red_flag_slow"] and chloe["category"] == "emergency"

    jl = tmp_path / "calls.jsonl"
    assert await write_jsonl(store, jl) == approved
    lines = [json.loads(line) for line in jl.read_text(encoding="utf-8").splitlines()]
    assert {c["call_id"] for c in lines} == set(ds["call_id"])
    # what export writes, import reads back (as the same calls, already redacted)
    empty = tmp_path / "empty"
    assert await export_dataset(store, empty, statuses=("new",)) == 0
    assert len(load_from_disk(str(empty))) == 0


def test_export_cli(tmp_path: Path) -> None:
    from transcripts.cli import cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(CORPUS), "--approve", "--url", url]).exit_code == 0
    res = runner.invoke(cli, ["export", str(tmp_path / "out.jsonl"), "--format", "jsonl",
                              "--url", url])
    assert res.exit_code == 0 and "exported 7 calls" in res.output, res.output
    res = runner.invoke(cli, ["export", str(tmp_path / "ds"), "--url", url])
    assert res.exit_code == 0 and "exported 7 calls" in res.output, res.output
    assert (tmp_path / "ds" / "dataset_info.json").exists()
