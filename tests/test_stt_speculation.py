"""Speculative speech recognition (voice/stt.py, voice/vad.py): the turn is decoded at the
pause's onset, kept when only the VAD's quiet follows, called off when the caller speaks again.

The real Silero VAD runs over a real phone fixture (a sentence with short pauses inside it,
then a final pause) inside the same pipecat aggregator as a call; Whisper is a double behind
the engine's small interface, so the test sees every decode and whether it was called off.
"""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from voice.stt import Transcript, TranscriptionCancelled, WhisperSTT

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "demo_audio" / "07_identity_paul_girard.wav"


class FakeWhisper:
    """The engine's interface (``idle``, ``sessions``, ``transcribe``); a decode takes
    ``decode_s`` unless it is called off first."""

    def __init__(self, *, decode_s: float = 0.05, busy: bool = False) -> None:
        self.model_dir = Path("fake-whisper")
        self.language = "fr"
        self.decode_s = decode_s
        self.busy = busy
        self.decodes: list[dict[str, object]] = []  # each: audio bytes, called_off, speculative
        self._running = 0
        self._lock = threading.Lock()
        self.sessions = 0

    def attach(self) -> None:
        self.sessions += 1

    def detach(self) -> None:
        self.sessions -= 1

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self.busy and self._running == 0

    def transcribe(self, pcm: bytes, sample_rate: int, *,
                   cancelled: Callable[[], bool] | None = None) -> Transcript:
        record: dict[str, object] = {"pcm": pcm, "called_off": False,
                                     "speculative": cancelled is not None}
        self.decodes.append(record)
        with self._lock:
            self._running += 1
        try:
            end = time.monotonic() + self.decode_s
            while time.monotonic() < end:
                if cancelled is not None and cancelled():
                    record["called_off"] = True
                    raise TranscriptionCancelled
                time.sleep(0.005)
            return Transcript(text=f"heard {len(pcm)} bytes", language="fr", no_speech_prob=0.0,
                              avg_logprob=-0.2, audio_s=len(pcm) / 2 / sample_rate,
                              elapsed_s=self.decode_s)
        finally:
            with self._lock:
                self._running -= 1


def _chunks(path: Path, silence_s: float = 1.0) -> tuple[list[bytes], int]:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    pcm += bytes(int(rate * silence_s) * 2)
    step = int(rate * 0.02) * 2
    return [pcm[i:i + step] for i in range(0, len(pcm) - step + 1, step)], rate


async def _run(stt: WhisperSTT, chunks: list[bytes], rate: int) -> None:
    """The fixture through [STT → user aggregator with the pause-aware VAD], 20 ms a chunk."""
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.frames.frames import InputAudioRawFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMUserAggregator,
        LLMUserAggregatorParams,
    )
    from pipecat.tests.utils import SleepFrame, run_test

    from voice.vad import PauseAwareVAD

    vad = PauseAwareVAD(params=VADParams(stop_secs=0.2), on_quiet=stt.speech_quiet,
                        on_speech=stt.speech_resumed)
    user = LLMUserAggregator(LLMContext(), params=LLMUserAggregatorParams(
        vad_analyzer=vad, user_turn_stop_timeout=3.0))
    frames: list[object] = []
    for c in chunks:  # paced like a call, so each decode finishes where a real one would
        frames += [InputAudioRawFrame(audio=c, sample_rate=rate, num_channels=1), SleepFrame(0.02)]
    await run_test(Pipeline([stt, user]), frames_to_send=frames,  # type: ignore[arg-type]
                   pipeline_params=PipelineParams(audio_in_sample_rate=rate),
                   start_timeout=30.0)


@pytest.mark.timeout(120)
def test_the_pause_onset_decode_is_the_segments_transcript_and_a_resumed_one_is_called_off() -> None:
    chunks, rate = _chunks(FIXTURE)
    engine = FakeWhisper()
    stt = WhisperSTT(engine=engine)  # type: ignore[arg-type]
    asyncio.run(_run(stt, chunks, rate))
    assert engine.sessions == 0  # the call detached at its end

    counts = stt.speculation_counts
    # the fixture: "Je suis Paul Girard," (a VAD stop), then "né le 4 juin 1978" with short
    # pauses inside it (speech again before the VAD's stop), then the final pause
    assert counts["started"] >= 2 and counts["used"] >= 1 and counts["dropped"] >= 1, counts
    assert any(d["called_off"] for d in engine.decodes), "a resumed pause's decode went on"
    assert stt.last is not None and stt.last.speculative
    # every transcript came from a speculative decode: no segment was decoded twice
    assert all(d["speculative"] for d in engine.decodes)
    # the last decode holds the whole turn (both segments) up to the final pause's onset
    whole = b"".join(chunks)
    last = engine.decodes[-1]["pcm"]
    assert isinstance(last, bytes) and len(last) > 0.6 * len(whole)


@pytest.mark.timeout(120)
def test_no_speculation_when_it_is_off_whisper_is_busy_or_another_call_shares_it() -> None:
    chunks, rate = _chunks(FIXTURE)
    shared = FakeWhisper()
    shared.attach()  # another call in progress
    for stt, engine in ((WhisperSTT(engine=(e := FakeWhisper()), speculate_after_s=None), e),  # type: ignore[arg-type]
                        (WhisperSTT(engine=(b := FakeWhisper(busy=True))), b),  # type: ignore[arg-type]
                        (WhisperSTT(engine=shared), shared)):  # type: ignore[arg-type]
        asyncio.run(_run(stt, chunks, rate))
        assert stt.speculation_counts["started"] == 0
        assert engine.decodes and not any(d["speculative"] for d in engine.decodes)
        assert stt.last is not None and not stt.last.speculative


def test_a_pause_shorter_than_the_setting_starts_nothing() -> None:
    engine = FakeWhisper()
    stt = WhisperSTT(engine=engine, speculate_after_s=0.1)  # type: ignore[arg-type]
    stt._user_speaking = True  # the VAD has confirmed speech (pipecat's own flag)
    stt.speech_quiet(0.04)
    assert stt.speculation_counts["started"] == 0


def test_a_speculative_decode_yields_to_another_calls_decode(tmp_path: Path) -> None:
    """Whisper decodes one utterance at a time: a speculation must not make another call's
    real transcript wait behind it."""
    import concurrent.futures

    import numpy as np

    from voice.stt import WhisperEngine

    class Segment:
        text, no_speech_prob, avg_logprob = "Bonjour.", 0.1, -0.2

    class Info:
        language = "fr"

    class Model:  # faster-whisper's surface on the 30 s path
        def transcribe(self, audio: np.ndarray, **kw: object) -> tuple[object, Info]:
            return iter([Segment()]), Info()

    engine = WhisperEngine(model_dir=tmp_path, window="full")
    engine._model = Model()
    pcm = np.zeros(8000, np.int16).tobytes()
    engine._slots.acquire()  # a decode in progress
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        spec = pool.submit(engine.transcribe, pcm, 8000, cancelled=lambda: False)
        deadline = time.monotonic() + 60
        waiters = engine._slots._cond._waiters  # type: ignore[attr-defined]  # CPython's
        while len(waiters) < 1 and time.monotonic() < deadline:  # the speculation waits first
            time.sleep(0.01)
        real = pool.submit(engine.transcribe, pcm, 8000)
        while engine._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine._slots.release()
        with pytest.raises(TranscriptionCancelled):
            spec.result(timeout=60)
        assert real.result(timeout=60).text == "Bonjour."
    assert engine.idle
