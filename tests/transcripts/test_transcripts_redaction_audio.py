"""Redaction of real Whisper transcripts: a recording through ingest → transcribe → redact,
and an assistant call stored from the live pipeline's transcript."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redaction_helpers import demo_profile, loaded_redactor

from transcripts import TranscriptStore
from transcripts.distributed import InlineBackend
from transcripts.ingest import ingest, transcribe_pending
from transcripts.redaction_job import redact_calls
from transcripts.redaction_tokens import fold
from transcripts.transcribe import TranscribeConfig
from twin.models import ModelMissingError, require

pytestmark = [pytest.mark.slow, pytest.mark.models]

ROOT = Path(__file__).resolve().parents[2]
STEREO = ROOT / "tests" / "fixtures" / "transcripts" / "P1-001_head.flac"
# "Je suis Paul Girard, né le quatre juin mille neuf cent soixante-dix-huit." (demo_audio/README)
IDENTITY = ROOT / "demo_audio" / "07_identity_paul_girard.wav"
STARTED = datetime(2026, 10, 5, 6, 34, tzinfo=UTC)


@pytest.fixture
def model_dir() -> Path:
    try:
        return require("whisper-base")
    except ModelMissingError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (scripts/test.sh installs the models)")
        pytest.skip(str(exc))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    s = TranscriptStore(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await s.migrate()
    yield s
    await s.dispose()


async def test_recording_transcribed_then_redacted(store: TranscriptStore,
                                                   model_dir: Path) -> None:
    """The corpus call's first seconds hold no name or number: what must hold on a real
    transcript is that the practice's greeting, its secretary (``secretary_id``) and the
    practitioner asked for are left alone while the call goes to ``redacted``."""
    report = await ingest(store, [STEREO], secretary_id="sec-amelie")
    (cid,) = [c for _p, c in report.added]
    done = await transcribe_pending(store, InlineBackend(model_dir=model_dir,
                                                         config=TranscribeConfig(beam_size=1)),
                                    progress=False)
    assert done.done == [cid]
    heard = await store.get_call(cid, can_see_pii=True)
    assert heard is not None
    assert [t.speaker for t in heard.turns] == ["secretary", "patient", "secretary"]
    assert "amelie" in fold(heard.turns[0].text), heard.turns[0].text  # the secretary

    result = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile(),
                                health=True)
    view = await store.get_call(cid, can_see_pii=False)
    assert result.calls == 1 and result.spans["person"] == 0, (
        result, [t.text for t in heard.turns], [t.text for t in view.turns] if view else None)
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "redacted"
    assert view.turns[0].text == heard.turns[0].text
    assert view.turns[2].text == heard.turns[2].text


async def test_assistant_call_transcript_redacted(store: TranscriptStore, model_dir: Path) -> None:
    """The assistant's own calls are stored from the live pipeline's Whisper transcripts
    (``voice.stt``); the caller's name and date of birth must not survive redaction."""
    import wave

    from transcripts import NewCall, NewTurn
    from voice.stt import WhisperEngine

    engine = WhisperEngine(model_dir=model_dir, beam_size=5)
    engine.load()
    with wave.open(str(IDENTITY)) as w:
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    said = engine.transcribe(pcm, rate).text
    assert "Girard" in said, said

    call = NewCall(external_id="assistant-call-1", source="assistant", handled_by="assistant",
                   started_at=STARTED, status="transcribed",
                   turns=[NewTurn(speaker="assistant", text="Cabinet médical des Tilleuls, "
                                  "bonjour. Vous pouvez me donner votre nom et votre date de "
                                  "naissance ?"),
                          NewTurn(speaker="patient", text=said),
                          NewTurn(speaker="assistant", text="Merci, je vous propose jeudi "
                                  "avec le docteur Morel.")])
    cid = await store.add_call(call, actor="assistant")
    result = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile())
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "redacted"
    patient = view.turns[1].text
    assert result.spans["person"] >= 1 and "Girard" not in patient, (said, patient)
    if any(y in said for y in ("1978", "soixante-dix-huit")):
        assert result.spans["birth_date"] == 1 and "[DATE_NAISSANCE_1]" in patient, (said,
                                                                                     patient)
    assert view.turns[0].text == call.turns[0].text and view.turns[2].text == call.turns[2].text


async def test_caller_identity_in_a_recording_is_redacted(store: TranscriptStore,
                                                          model_dir: Path,
                                                          tmp_path: Path) -> None:
    """A stereo recording (the practice's greeting on the right, the demo caller giving
    name and date of birth on the left) through ingest → transcribe → redact."""
    import numpy as np

    from transcripts.audio import load_channels, write_audio

    rate = 8000
    _left, right = load_channels(STEREO, rate=rate)
    greeting = right[int(1.3 * rate):int(5.5 * rate)]  # "Cabinet médical des Tilleuls, …"
    identity = load_channels(IDENTITY, rate=rate)[0]
    pause = np.zeros(rate // 2, dtype=np.float32)
    secretary = np.concatenate([pause, greeting, pause, np.zeros_like(identity), pause])
    caller = np.concatenate([pause, np.zeros_like(greeting), pause, identity, pause])
    path = tmp_path / "20261005-083400.flac"
    write_audio(path, [caller, secretary], rate=rate)

    report = await ingest(store, [path], secretary_id="sec-amelie")
    (cid,) = [c for _p, c in report.added]
    await transcribe_pending(store, InlineBackend(model_dir=model_dir,
                                                  config=TranscribeConfig(beam_size=1)),
                             progress=False)
    heard = await store.get_call(cid, can_see_pii=True)
    assert heard is not None and [t.speaker for t in heard.turns] == ["secretary", "patient"]
    said = heard.turns[1].text
    assert "Girard" in said, said

    result = await redact_calls(store, loaded_redactor(), [cid], profile=demo_profile())
    view = await store.get_call(cid, can_see_pii=False)
    assert view is not None and view.status == "redacted"
    patient = view.turns[1].text
    assert "Girard" not in patient and "[NOM_1]" in patient, (said, patient)
    if "1978" in said or "soixante-dix-huit" in said:
        assert result.spans["birth_date"] == 1, (said, patient)
        assert "1978" not in patient and "soixante-dix-huit" not in patient, (said, patient)
    assert view.turns[0].text == heard.turns[0].text  # the greeting is the practice's
