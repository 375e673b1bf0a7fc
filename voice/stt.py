"""Speech-to-text with faster-whisper, one model per process shared by every call.

Phone audio (8 kHz) is resampled to Whisper's 16 kHz. The language is forced to
French and the decoder is primed with the practice's vocabulary (practitioners'
names, "rendez-vous"…), which helps most on exactly the words phone audio
garbles: names and dates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.privacy import redacted
from voice.whisper_fit import TranscriptionCancelled, echoes_prompt, transcribe_fitted

__all__ = ["Transcript", "TranscriptionCancelled", "WhisperEngine", "WhisperSTT"]

logger = logging.getLogger(__name__)

try:
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        ErrorFrame,
        Frame,
        StartFrame,
        TranscriptionFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.services.settings import STTSettings
    from pipecat.services.stt_service import SegmentedSTTService
    from pipecat.utils.time import time_now_iso8601
except ModuleNotFoundError as e:  # pragma: no cover - install hint
    raise ImportError(f"voice.stt needs pipecat: pip install -e '.[voice]' ({e})") from e

WHISPER_RATE = 16000
LATE_TRANSCRIPT_MARGIN_S = 0.05  # pipecat's late-transcript wait past the VAD hangover


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    no_speech_prob: float
    avg_logprob: float
    audio_s: float
    elapsed_s: float
    speculative: bool = False  # decoded at the pause's onset, before the VAD's stop


class WhisperEngine:
    """A loaded faster-whisper model (CTranslate2, int8 on CPU)."""

    def __init__(self, *, model_dir: Path, language: str = "fr", beam_size: int = 1,
                 cpu_threads: int = 0, initial_prompt: str | None = None,
                 no_speech_threshold: float = 0.6, workers: int = 1,
                 window: str = "fit") -> None:
        if window not in ("fit", "full"):
            raise ValueError(f"window must be 'fit' or 'full', not {window!r}")
        self.model_dir = model_dir
        # "fit": encode the utterance plus 1 s (at least 20 s) instead of Whisper's 30 s
        # window (voice/whisper_fit.py); "full": faster-whisper's own 30 s path.
        self.window = window
        self.language = language
        self.beam_size = beam_size
        self.initial_prompt = initial_prompt
        self.no_speech_threshold = no_speech_threshold
        self._cpu_threads = cpu_threads
        self._model: Any = None
        # ``workers`` decodes run at once (CTranslate2 num_workers, the cores split between
        # them); more calls wait for a free one. ``twin serve`` admits calls by this pace.
        self.workers = max(1, workers)
        self._slots = threading.BoundedSemaphore(self.workers)
        self._pending = 0  # decodes running or waiting for a slot
        self._waiting = 0  # decodes that are not speculative, waiting for a slot
        self.sessions = 0  # calls using this engine (WhisperSTT attaches at start)
        self._pending_lock = threading.Lock()
        self.decode_s: float | None = None  # recent decode time (moving average), seconds

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from faster_whisper import WhisperModel
        except ModuleNotFoundError as exc:  # pragma: no cover
            raise RuntimeError("faster-whisper is not installed: pip install -e '.[voice]'") from exc
        threads = max(1, (self._cpu_threads or (os.cpu_count() or 1)) // self.workers)
        self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, num_workers=self.workers,
                                   local_files_only=True)
        logger.info("Whisper loaded from %s", self.model_dir)

    def attach(self) -> None:
        with self._pending_lock:
            self.sessions += 1

    def detach(self) -> None:
        with self._pending_lock:
            self.sessions = max(0, self.sessions - 1)

    @property
    def idle(self) -> bool:
        """No decode is running or waiting (a speculative one would delay nobody)."""
        with self._pending_lock:
            return self._pending == 0

    def transcribe(self, pcm: bytes, sample_rate: int, *,
                   cancelled: Callable[[], bool] | None = None) -> Transcript:
        """Transcribe 16-bit mono ``pcm``. A decode with ``cancelled`` is speculative: it
        raises :class:`TranscriptionCancelled` when ``cancelled()`` is true, or when another
        call's decode is waiting for Whisper (speculation yields to it), once a slot is free
        and again once the audio is encoded."""
        if self._model is None:
            raise RuntimeError("WhisperEngine.load() was not called")
        started = time.monotonic()
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        if sample_rate != WHISPER_RATE:
            import soxr

            audio = soxr.resample(audio, sample_rate, WHISPER_RATE)
        check: Callable[[], bool] | None = None
        if cancelled is not None:
            def check() -> bool:
                return cancelled() or self._waiting > 0
        with self._pending_lock:
            self._pending += 1
            self._waiting += cancelled is None
        try:
            return self._transcribe(audio, started, check)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def _transcribe(self, audio: np.ndarray, started: float,
                    cancelled: Callable[[], bool] | None) -> Transcript:
        waiting = cancelled is None
        try:
            self._slots.acquire()
        finally:
            if waiting:
                with self._pending_lock:
                    self._waiting -= 1
        try:  # 2 cores are better used by one decode than by two
            if cancelled is not None and cancelled():
                raise TranscriptionCancelled
            t = time.monotonic()
            fitted = (transcribe_fitted(self._model, audio, language=self.language,
                                        beam_size=self.beam_size, initial_prompt=self.initial_prompt,
                                        cancelled=cancelled)
                      if self.window == "fit" else None)
            if fitted is None:
                segments, info = self._model.transcribe(
                    audio, language=self.language, beam_size=self.beam_size,
                    initial_prompt=self.initial_prompt, condition_on_previous_text=False,
                    vad_filter=False)
                segments = list(segments)
                if self.initial_prompt and echoes_prompt(
                        " ".join(s.text for s in segments), self.initial_prompt):
                    # the 30 s path "transcribed" the prompt too (seen on a chest-pain call):
                    # decode once more without it rather than lose what the caller said
                    logger.info("Whisper echoed its initial prompt: decoding again without it")
                    segments, info = self._model.transcribe(
                        audio, language=self.language, beam_size=self.beam_size,
                        condition_on_previous_text=False, vad_filter=False)
                    segments = list(segments)
            took = time.monotonic() - t
            self.decode_s = took if self.decode_s is None else 0.7 * self.decode_s + 0.3 * took
        finally:
            self._slots.release()
        if fitted is not None:
            keep = (fitted.no_speech_prob < self.no_speech_threshold or fitted.avg_logprob > -0.8)
            return Transcript(text=fitted.text if keep else "", language=self.language,
                              no_speech_prob=fitted.no_speech_prob, avg_logprob=fitted.avg_logprob,
                              audio_s=len(audio) / WHISPER_RATE,
                              elapsed_s=time.monotonic() - started)
        kept = [s for s in segments if s.no_speech_prob < self.no_speech_threshold or s.avg_logprob > -0.8]
        text = " ".join(s.text.strip() for s in kept).strip()
        nsp = max((s.no_speech_prob for s in segments), default=1.0)
        alp = float(np.mean([s.avg_logprob for s in segments])) if segments else -10.0
        return Transcript(text=text, language=info.language, no_speech_prob=nsp, avg_logprob=alp,
                          audio_s=len(audio) / WHISPER_RATE, elapsed_s=time.monotonic() - started)


@dataclass
class _Speculation:
    audio: bytes  # the turn's audio at the pause's onset (no trailing silence)
    task: asyncio.Task[Transcript | None]
    called_off: threading.Event


class WhisperSTT(SegmentedSTTService):
    """pipecat segmented STT over a shared :class:`WhisperEngine`.

    The VAD cuts speech at every pause, and Whisper garbles a short fragment heard
    alone ("Je suis Paul Girard," then "né le 4 juin 1978"). So each new segment is
    transcribed *together with* the earlier segments the patient said since the bot
    last spoke: Whisper always encodes a 30 s window, so this costs no more, and the
    transcript of a split utterance comes out whole. ``TranscriptionFrame.result``
    is a :class:`Transcript`; ``segments > 1`` marks such a re-transcription.

    Speculative decoding: the VAD waits ``vad_stop_s`` of quiet before it calls the speech
    over. When it reports ``speculate_after_s`` of quiet (``speech_quiet``, from
    :class:`voice.vad.PauseAwareVAD`) and Whisper is idle, the turn so far is decoded at
    once; if the VAD then stops with nothing but its quiet hangover added, that transcript is
    the segment's, ready up to the hangover sooner. Speech again (``speech_resumed``) calls it
    off: the decoder is skipped if the encoder has not finished, and the result is dropped.
    ``None`` turns it off. It runs only while at most ``speculate_max_calls`` calls share the
    engine: with more, a speculation that had to be dropped delays the other calls' decodes
    (measured: p95 over 2 s at two calls, docs/PERFORMANCE.md).
    """

    MAX_TURN_S = 25.0

    def __init__(self, *, engine: WhisperEngine, vad_stop_s: float = 0.2,
                 late_transcript_wait_s: float | None = None,
                 speculate_after_s: float | None = 0.0, speculate_max_calls: int = 1,
                 **kwargs: Any) -> None:
        # Each transcript here is final, so pipecat's wait for a late transcript ("TTFS p99",
        # 1.0 s by default) only delays: when smart-turn closes a split utterance on its first
        # piece, the re-transcribed whole arrives after and opened a new turn that waited
        # 1.0 - vad_stop_s = 0.8 s before it was answered (every split turn in bench/latency.py).
        # (a little over the hangover: pipecat warns that an equal value "collapses" its wait)
        kwargs["ttfs_p99_latency"] = (vad_stop_s + LATE_TRANSCRIPT_MARGIN_S
                                      if late_transcript_wait_s is None else late_transcript_wait_s)
        super().__init__(settings=STTSettings(model=str(engine.model_dir.name), language=engine.language),
                         **kwargs)
        self._engine = engine
        self.last: Transcript | None = None
        self._turn_audio = bytearray()
        self._completed = 0
        self._vad_stop_s = vad_stop_s
        self._speculate_after_s = speculate_after_s
        self._speculate_max_calls = speculate_max_calls
        self._attached = False
        self._spec: _Speculation | None = None
        self._in_stt = False
        # speculations started / whose transcript was the segment's / called off or not matching
        self.speculation_counts = {"started": 0, "used": 0, "dropped": 0}

    @property
    def completed_segments(self) -> int:
        """Speech segments transcribed since the bot last started speaking."""
        return self._completed

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._turn_audio.clear()  # the bot answered: a new utterance starts
            self._completed = 0
            self.speech_resumed()
        await super().process_frame(frame, direction)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if not self._attached:
            self._attached = True
            self._engine.attach()

    async def cleanup(self) -> None:
        self.speech_resumed()
        if self._attached:
            self._attached = False
            self._engine.detach()
        await super().cleanup()

    def speech_quiet(self, quiet_s: float) -> None:
        """The VAD has heard ``quiet_s`` of quiet since the caller's last speech, short of its
        stop: decode the turn so far now, if nothing else waits for Whisper."""
        if (self._speculate_after_s is None or quiet_s < self._speculate_after_s
                or self._spec is not None or self._in_stt or not self._user_speaking
                or not self._engine.idle or self._engine.sessions > self._speculate_max_calls):
            return
        audio = bytes(self._turn_audio) + bytes(self._audio_buffer)
        called_off = threading.Event()
        pcm = audio + self._trailing_silence()
        task = self.create_task(self._decode_speculatively(pcm, called_off),
                                name="whisper-speculative")
        self._spec = _Speculation(audio=audio, task=task, called_off=called_off)
        self.speculation_counts["started"] += 1

    async def _decode_speculatively(self, pcm: bytes, called_off: threading.Event) -> Transcript | None:
        try:
            return await asyncio.to_thread(self._engine.transcribe, pcm, self.sample_rate,
                                           cancelled=called_off.is_set)
        except TranscriptionCancelled:
            return None
        except Exception as exc:  # the segment is decoded again when the VAD stops
            logger.warning("speculative transcription failed: %r", exc)
            return None

    def speech_resumed(self) -> None:
        """The caller spoke again (or the bot did): the speculative decode is not the turn's."""
        spec, self._spec = self._spec, None
        if spec is not None:
            spec.called_off.set()
            self.speculation_counts["dropped"] += 1

    async def _speculative_result(self, audio: bytes) -> Transcript | None:
        """The speculative transcript if ``audio`` is its audio plus only the VAD's quiet."""
        spec, self._spec = self._spec, None
        if spec is None:
            return None
        tail = len(audio) - len(spec.audio)
        if not audio.startswith(spec.audio) or tail > int((self._vad_stop_s + 0.5) * self.sample_rate) * 2:
            spec.called_off.set()
            self.speculation_counts["dropped"] += 1
            return None
        result = await spec.task
        if result is None:  # failed: decode the segment itself
            self.speculation_counts["dropped"] += 1
            return None
        self.speculation_counts["used"] += 1
        return dataclasses.replace(result, speculative=True)

    @property
    def wants_wav_segments(self) -> bool:
        return False

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        pad = self._trailing_silence()  # pipecat appends it to every segment: keep it once, at the end
        if pad and audio.endswith(pad):
            audio = audio[:-len(pad)]
        self._turn_audio += audio
        limit = int(self.MAX_TURN_S * self.sample_rate) * 2
        if len(self._turn_audio) > limit:
            del self._turn_audio[:len(self._turn_audio) - limit]
        pcm = bytes(self._turn_audio) + pad
        self._in_stt = True
        await self.start_processing_metrics()
        try:
            result = await self._speculative_result(pcm[:len(pcm) - len(pad)])
            if result is None:
                result = await asyncio.to_thread(self._engine.transcribe, pcm, self.sample_rate)
        except Exception as exc:
            logger.exception("transcription failed")
            yield ErrorFrame(error=f"transcription failed: {exc}")
            return
        finally:
            self._in_stt = False
            self._completed += 1
            await self.stop_processing_metrics()
        self.last = result
        logger.info("STT %.2fs for %.1fs audio%s: %s", result.elapsed_s, result.audio_s,
                    " (speculative)" if result.speculative else "", redacted(result.text))
        if result.text:
            frame = TranscriptionFrame(text=result.text, user_id="caller",
                                       timestamp=time_now_iso8601(), result=result)
            yield frame

