"""``twin transcripts redact`` on a real store (SQLite and PostgreSQL): placeholders typed and
numbered per call, originals only in the mapping, status and audit, imported calls only get
what their labels missed, and the command line end to end."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from redaction_helpers import demo_profile, loaded_redactor

from transcripts import NewCall, NewTurn, PiiSpanProposal, TranscriptStore
from transcripts.redaction_job import redact_calls, redactable_call_ids

STARTED = datetime(2026, 10, 5, 6, 34, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "calls.jsonl"

TURNS = [
    ("secretary", "Cabinet médical des Tilleuls, Amélie, bonjour."),
    ("patient", "Bonjour, je voudrais voir le docteur Morel. J'ai une angine, je crois."),
    ("secretary", "Vous pouvez me donner votre nom et votre date de naissance ?"),
    ("patient", "Oui. Jacquet, Rémi Jacquet. Le dix-sept février quatre-vingt-onze."),
    ("secretary", "Merci, monsieur Jacquet. Un numéro où vous joindre ?"),
    ("patient", "Zéro six, quarante-cinq, dix-huit, soixante-treize, quatre-vingt-dix."),
    ("secretary", "Je répète : zéro six, quarante-cinq, dix-huit, soixante-treize, "
                  "quatre-vingt-dix. Au revoir, monsieur Jacquet."),
]


def _recording(external_id: str = "rec-000000000001") -> NewCall:
    return NewCall(external_id=external_id, source="recording", started_at=STARTED,
                   practice_id="cabinet-des-tilleuls", secretary_id="sec-amelie",
                   status="transcribed",
                   turns=[NewTurn(speaker=s, text=t) for s, t in TURNS])


async def test_redact_a_transcribed_call(store: TranscriptStore) -> None:
    cid = await store.add_call(_recording(), actor="test")
    assert await redactable_call_ids(store) == [cid]
    report = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile(),
                                health=True, actor="test:redact")
    assert report.calls == 1 and not report.skipped
    assert report.spans["person"] >= 4 and report.spans["phone"] == 2
    assert report.spans["birth_date"] == 1 and report.spans["health"] == 1

    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "redacted"
    texts = [t.text for t in view.turns]
    # staff and practice untouched
    assert texts[0] == TURNS[0][1]
    assert "docteur Morel" in texts[1] and "[SANTE_1]" in texts[1]
    # typed placeholders, the same value keeps its number across the call
    assert texts[3] == "Oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    assert texts[4] == "Merci, monsieur [NOM_1]. Un numéro où vous joindre ?"
    assert texts[5] == "[TELEPHONE_1]."
    assert texts[6] == "Je répète : [TELEPHONE_1]. Au revoir, monsieur [NOM_1]."
    assert not any("Jacquet" in t or "quarante-cinq" in t for t in texts)
    spans = [s for t in view.turns for s in t.spans]
    assert {s.status for s in spans} == {"proposed"}
    assert {s.source for s in spans} <= {"rule", "ner", "patient_list"}
    assert all(s.original is None for s in spans)
    # the originals come back only for roles that may see them
    full = await store.get_call(cid, can_see_pii=True)
    assert full is not None
    assert [t.original_text for t in full.turns] == [t for _s, t in TURNS]
    # audited, and not picked up again by --all
    actions = [a.action for a in await store.list_audit(call_id=cid)]
    assert "turn.redact" in actions and "call.status" in actions
    assert await redactable_call_ids(store) == []


async def test_imported_call_only_gets_missed_spans(store: TranscriptStore) -> None:
    text = "Oui. Jacquet, Rémi Jacquet. Le dix-sept février quatre-vingt-onze."
    call = NewCall(external_id="P9-001", source="import", started_at=STARTED,
                   secretary_id="sec-bruno", status="redacted",
                   turns=[NewTurn(speaker="secretary", text="Votre nom ?"),
                          NewTurn(speaker="patient", text=text)])
    # the labels cover the names but forgot the date of birth
    start = text.index("Rémi Jacquet")
    labels = {1: [PiiSpanProposal(start=5, end=12, type="person", source="label"),
                  PiiSpanProposal(start=start, end=start + 12, type="person", source="label")]}
    cid = await store.add_call(call, actor="import", redactions=labels, span_status="accepted")
    assert await redactable_call_ids(store) == [cid]
    report = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile())
    assert dict(report.spans) == {"birth_date": 1}
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "redacted"
    assert view.turns[1].text == "Oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    by_source = {(s.source, s.status, s.type) for s in view.turns[1].spans}
    assert by_source == {("label", "accepted", "person"), ("rule", "proposed", "birth_date")}
    assert view.metadata["pii_detector"]["spans"] == 1
    assert await redactable_call_ids(store) == []


async def test_a_rejected_span_is_not_proposed_again(store: TranscriptStore) -> None:
    cid = await store.add_call(_recording("rec-000000000002"), actor="test")
    await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile())
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    phone = next(s for s in view.turns[5].spans if s.type == "phone")
    await store.set_span_status(phone.id, "rejected", actor="reviewer")
    again = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile())
    assert again.spans["phone"] == 0
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    assert view.turns[5].text == TURNS[5][1]  # the reviewer's decision stands


@pytest.mark.slow
def test_cli_import_then_redact(tmp_path: Path) -> None:
    from twin.cli import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    runner = CliRunner()
    res = runner.invoke(main, ["transcripts", "import", str(CORPUS), "--url", url])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["transcripts", "redact", "--all", "--call", "1", "--url", url])
    assert res.exit_code != 0 and "not both" in res.output
    res = runner.invoke(main, ["transcripts", "redact", "--url", url])
    assert res.exit_code == 0, res.output
    m = re.search(r"redacted (\d+) calls", res.output)
    assert m is not None and int(m.group(1)) >= 1, res.output
    # a second run has nothing left to do
    res = runner.invoke(main, ["transcripts", "redact", "--all", "--url", url])
    assert res.exit_code == 0 and "redacted 0 calls" in res.output, res.output
