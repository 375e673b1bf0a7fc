"""Recordings → transcripts with the real Whisper model: stereo (one party per channel), mono
(diarized), FLAC and MP3; resuming after an interruption; the same batch on a local Ray
cluster gives the same transcripts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transcripts import TranscriptStore
from transcripts.audio import load_channels, write_audio
from transcripts.distributed import InlineBackend, JobResult, RayBackend
from transcripts.ingest import ingest, transcribe_pending
from transcripts.transcribe import TranscribeConfig
from twin.models import ModelMissingError, require

pytestmark = [pytest.mark.slow, pytest.mark.models]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"
STEREO = FIXTURES / "P1-001_head.flac"
MONO = FIXTURES / "P3-023_mono.flac"  # a whole two-party call, both legs summed
CONFIG = TranscribeConfig(beam_size=1)  # greedy: the tests' budget; the CLI defaults to 5


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return require("whisper-base")
    except ModelMissingError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (scripts/test.sh installs the models)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """stereo FLAC (the fixture), a mono call as WAV, a short stereo MP3, a corrupt file and
    an empty one."""
    folder = tmp_path_factory.mktemp("archive")
    rate = 8000
    right = load_channels(STEREO, rate=rate)[1]
    files = {"stereo": folder / "20261005-083400.flac", "mono": folder / "mono.wav",
             "mp3": folder / "short.mp3", "corrupt": folder / "corrupt.wav",
             "empty": folder / "empty.flac"}
    files["stereo"].write_bytes(STEREO.read_bytes())
    write_audio(files["mono"], load_channels(MONO, rate=rate), rate=rate)
    greeting = right[int(1.3 * rate):int(5.5 * rate)]  # "Cabinet médical des Tilleuls, …"
    answer = load_channels(ROOT / "demo_audio" / "11_confirm_slot.wav", rate=rate)[0]
    pause = np.zeros(rate // 2, dtype=np.float32)
    mp3_right = np.concatenate([pause, greeting, pause, np.zeros_like(answer), pause])
    mp3_left = np.concatenate([pause, np.zeros_like(greeting), pause, answer, pause])
    write_audio(files["mp3"], [mp3_left, mp3_right], rate=rate)
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 600)
    files["empty"].write_bytes(b"")
    return files


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    s = TranscriptStore(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await s.migrate()
    yield s
    await s.dispose()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zàâçéèêëîïôûùüÿœ]+", text.lower()))


async def _turns(store: TranscriptStore, call_id: int) -> list[Any]:
    view = await store.get_call(call_id, can_see_pii=True)
    assert view is not None
    return view.turns


class _Interrupt(KeyboardInterrupt):
    pass


async def test_ingest_transcribe_resume(store: TranscriptStore, recordings: dict[str, Path],
                                        model_dir: Path,
                                        shared_results: dict[str, Any]) -> None:
    report = await ingest(store, list(recordings.values()), secretary_id="sec-amelie")
    assert {r.path.name for r in report.rejected} == {"corrupt.wav", "empty.flac"}
    ids = {p.name: cid for p, cid in report.added}
    assert len(ids) == 3

    # first run, interrupted once the first call is saved
    def stop(result: JobResult) -> None:
        raise _Interrupt

    backend = InlineBackend(model_dir=model_dir, config=CONFIG)
    first = await transcribe_pending(store, backend, progress=False, on_result=stop)
    assert first.interrupted and len(first.done) == 1 and first.left == 2
    statuses = {c.id: c.status for c in (await store.list_calls()).items}
    assert sorted(statuses.values()) == ["new", "new", "transcribed"]
    done_id = first.done[0]
    done_before = await store.get_call(done_id, can_see_pii=False)
    assert done_before is not None

    # the second run picks up the two calls left, and only them
    second = await transcribe_pending(store, InlineBackend(model_dir=model_dir, config=CONFIG),
                                      progress=True)
    assert not second.interrupted and second.failed == []
    assert sorted(second.done) == sorted(set(ids.values()) - {done_id})
    done_after = await store.get_call(done_id, can_see_pii=False)
    assert done_after is not None and done_after.version == done_before.version
    assert {c.status for c in (await store.list_calls()).items} == {"transcribed"}
    third = await transcribe_pending(store, InlineBackend(model_dir=model_dir, config=CONFIG))
    assert third.done == [] and third.left == 0

    # stereo FLAC: one party per channel, turns in time order
    stereo = await _turns(store, ids["20261005-083400.flac"])
    assert [t.speaker for t in stereo] == ["secretary", "patient", "secretary"]
    assert {"bonjour"} <= _words(stereo[0].text)
    assert {"voudrais", "docteur"} <= _words(stereo[1].text)
    assert {"regarde", "naissance"} <= _words(stereo[2].text)
    assert all(t.start_s is not None and t.end_s is not None and t.start_s < t.end_s
               for t in stereo)
    assert [t.start_s for t in stereo] == sorted(t.start_s for t in stereo)
    assert stereo[1].words and all({"w", "start", "end", "p"} <= set(w) for w in stereo[1].words)
    assert 0.0 < (stereo[2].confidence or 0) <= 1.0
    call = await store.get_call(ids["20261005-083400.flac"], can_see_pii=False)
    assert call is not None and call.metadata["asr"]["diarized"] is False

    # mono WAV: diarized; the secretary opens the call; words attributed to the speaker of
    # the reference turn they fall in (the corpus's turn timings)
    mono = await _turns(store, ids["mono.wav"])
    mono_call = await store.get_call(ids["mono.wav"], can_see_pii=False)
    assert mono_call is not None and mono_call.metadata["asr"]["diarized"] is True
    assert mono[0].speaker == "secretary" and len(mono) >= 6
    assert any("personnellement" in _words(t.text) for t in mono if t.speaker == "patient")
    assert any("consultation" in _words(t.text) for t in mono if t.speaker == "secretary")
    reference = json.loads(MONO.with_suffix(".json").read_text())["turns"]
    right = counted = 0
    for turn in mono:
        for w in turn.words:
            mid = (w["start"] + w["end"]) / 2
            refs = [r["speaker"] for r in reference if r["start_s"] - 0.3 <= mid <= r["end_s"] + 0.3]
            if len(refs) == 1:
                counted += 1
                right += refs[0] == turn.speaker
    assert counted > 100 and right / counted >= 0.8, (right, counted)

    # stereo MP3
    short = await _turns(store, ids["short.mp3"])
    assert [t.speaker for t in short] == ["secretary", "patient"]
    assert {"parfait", "merci"} <= _words(short[1].text)

    shared_results["local"] = {name: [(t.speaker, t.text) for t in await _turns(store, cid)]
                               for name, cid in ids.items()}


@pytest.fixture(scope="module")
def shared_results() -> Iterator[dict[str, Any]]:
    yield {}


async def test_ray_local_cluster_gives_the_same_transcripts(
        tmp_path: Path, recordings: dict[str, Path], model_dir: Path,
        shared_results: dict[str, Any]) -> None:
    pytest.importorskip("ray")
    if "local" not in shared_results:
        pytest.skip("needs the local run of test_ingest_transcribe_resume first")
    store = TranscriptStore(url=f"sqlite+aiosqlite:///{tmp_path / 'ray.db'}")
    await store.migrate()
    try:
        names = ["20261005-083400.flac", "short.mp3"]
        report = await ingest(store, [p for p in recordings.values() if p.name in names])
        ids = {p.name: cid for p, cid in report.added}
        backend = RayBackend(address="local", model_dir=model_dir, config=CONFIG, workers=2,
                             cpu_threads=1, num_cpus=2)
        workers: set[str] = set()
        result = await transcribe_pending(store, backend, progress=False,
                                          on_result=lambda r: workers.add(r.worker))
        assert result.failed == [] and sorted(result.done) == sorted(ids.values())
        assert len(workers) == 2  # both actors took a call
        for name, cid in ids.items():
            got = [(t.speaker, t.text) for t in await _turns(store, cid)]
            assert got == shared_results["local"][name], name
    finally:
        await store.dispose()


def test_language_detected_per_call(tmp_path: Path, model_dir: Path) -> None:
    """With detect_language, an English call is transcribed in English (the default is
    French for every call)."""
    from transcripts.transcribe import CallTranscriber
    from voice.tts import ESpeakTTS

    tts = ESpeakTTS(language="en")
    tts.load()
    speech = tts.synthesize("Hello, I would like to book an appointment with the doctor "
                            "tomorrow morning, please.").astype(np.float32) / 32768.0
    path = tmp_path / "english.wav"
    write_audio(path, [np.concatenate([np.zeros(tts.sample_rate // 2, np.float32), speech])],
                rate=tts.sample_rate)
    detecting = CallTranscriber(model_dir=model_dir,
                                config=TranscribeConfig(beam_size=1, detect_language=True))
    detecting.load()
    result = detecting.transcribe_file(path)
    assert result.language == "en"
    assert {"appointment", "doctor"} <= _words(" ".join(t.text for t in result.turns))
    assert detecting.detect_language(load_channels(STEREO)) == "fr"
