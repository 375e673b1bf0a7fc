"""The assistant's own calls enter the transcripts store when they end (twin/call_archive)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from transcripts import TranscriptStore
from twin.call_archive import CallArchive, open_call_archive, report_fanout
from voice.agent import Handoff
from voice.call import CallReport

STARTED = 1_790_000_000.0  # 2026-09-21


def _report(call_id: str, recording: str | None, *, objected: bool = False) -> CallReport:
    return CallReport(
        call_id=call_id, started=STARTED, ended=STARTED + 75.5, ended_by="assistant",
        handoff=Handoff(reason="emergency", summary="douleur thoracique"),
        transcript=[("assistant", "Cabinet médical, bonjour."),
                    ("patient", "Bonjour, je suis Paul Girard, j'ai mal à la poitrine."),
                    ("assistant", "Raccrochez et appelez le 15.")],
        turns=[{"text": "Bonjour, je suis Paul Girard", "stt_s": 0.4, "llm_first_token_s": None,
                "tts_first_audio_s": 0.2, "voice_to_voice_s": 0.9}],
        recording=recording,
        summary={"outcome": "handoff", "actions": [{"tool": "transfer_to_human", "args": {},
                                                    "by": "rules"}],
                 "safety": ["emergency"], "follow_up": ["handed to a human"],
                 "recording_objected": objected})


async def test_a_finished_call_is_stored(store: TranscriptStore, tmp_path: Path) -> None:
    wav = tmp_path / "call-1.wav"
    wav.write_bytes(b"RIFF")
    archive = CallArchive(store=store, practice_id="cabinet-test")
    archive.observe(_report("call-1", str(wav)))  # the on_report callback: schedules
    await archive.drain()
    assert (archive.stored, archive.failed) == (1, 0)
    cid = await store.find_call_id(external_id="call-1")
    assert cid is not None
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None
    assert (view.source, view.handled_by, view.status) == ("assistant", "assistant", "transcribed")
    assert view.practice_id == "cabinet-test" and view.outcome == "handoff"
    assert [t.speaker for t in view.turns] == ["assistant", "patient", "assistant"]
    assert view.turns[1].text.startswith("Bonjour, je suis")
    assert view.duration_s == pytest.approx(75.5)
    assert int(view.started_at.timestamp()) == int(STARTED)
    assert view.audio_path == str(wav) and view.channels == 2
    meta = view.metadata
    assert meta["handoff_reason"] == "emergency" and meta["ended_by"] == "assistant"
    assert meta["latency"] == [{"stt_s": 0.4, "llm_first_token_s": None,
                                "tts_first_audio_s": 0.2, "voice_to_voice_s": 0.9}]
    assert meta["tools"] == ["transfer_to_human"] and meta["safety"] == ["emergency"]
    assert "Girard" not in str(meta)  # the latency figures carry no words


async def test_an_objection_keeps_neither_audio_nor_text(store: TranscriptStore) -> None:
    archive = CallArchive(store=store)
    cid = await archive.record(_report("call-2", None, objected=True))
    assert cid is not None
    view = await store.get_call(cid, can_see_pii=True)
    assert view is not None and view.objection and view.turns == [] and view.audio_path is None
    assert [a.action for a in await store.list_audit(call_id=cid)] == ["call.objection",
                                                                       "call.add"]


async def test_a_failure_is_logged_and_never_raised(store: TranscriptStore,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    archive = CallArchive(store=store)
    assert await archive.record(_report("call-3", None)) is not None
    with caplog.at_level(logging.ERROR):
        assert await archive.record(_report("call-3", None)) is None  # same id: refused
    assert (archive.stored, archive.failed) == (1, 1)
    assert "storing an assistant call failed" in caplog.text
    assert "Girard" not in caplog.text and "poitrine" not in caplog.text


async def test_unreachable_store_gives_no_archive(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        async with open_call_archive(url="postgresql+asyncpg://nobody:x@127.0.0.1:9/none") as a:
            assert a is None
    assert "call archive unavailable" in caplog.text


async def test_open_archive_drains_on_exit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    seen: list[str] = []

    def broken(_report: object) -> None:
        raise RuntimeError("metrics down")

    async with open_call_archive(url=url, practice_id="p") as archive:
        assert archive is not None
        on_report = report_fanout(broken, lambda r: seen.append(r.call_id),
                                  archive.observe, None)
        on_report(_report("call-4", None))
    store = TranscriptStore(url=url)
    try:
        assert await store.find_call_id(external_id="call-4") is not None
    finally:
        await store.dispose()
    assert seen == ["call-4"]
