"""Recording → speaker turns with faster-whisper (word timestamps), one call at a time.

- **Stereo** (MixMonitor, one party per channel): each channel is transcribed on its own
  (Whisper's VAD skips the other party's silence), its segments become that party's
  utterances, and the utterances of both channels are merged by start time; consecutive
  utterances of the same party form one turn.
- **Mono**: the whole recording is transcribed once; :mod:`transcripts.diarize` labels the
  speech regions with two clusters, each word takes the cluster of the region around it,
  runs of words of one cluster are turns, and :func:`transcripts.diarize.assign_roles`
  says which cluster is the secretary.

The language is French unless ``detect_language`` is set: then it is detected on the
first 30 s of speech of the call (both channels mixed) and used for the whole call.

:class:`CallTranscriber` holds one loaded model (``load()``); the worker pools in
:mod:`transcripts.distributed` create one per process or Ray actor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transcripts.audio import TARGET_RATE, load_channels
from transcripts.diarize import assign_roles, diarize

__all__ = [
    "DEFAULT_CHANNEL_ROLES",
    "CallTranscriber",
    "CallTranscript",
    "TranscribeConfig",
    "TurnResult",
    "default_threads",
]

logger = logging.getLogger(__name__)

#: The corpus's and this project's MixMonitor convention: left = caller, right = secretary.
DEFAULT_CHANNEL_ROLES: tuple[str, str] = ("patient", "secretary")
_UTTERANCE_GAP_S = 0.8
#: Whisper's VAD on a leg of a phone call: Silero's default threshold (0.5) misses much of
#: a caller's speech on a noisy line (word error rate 0.6 instead of 0.2 on the corpus).
_VAD = {"threshold": 0.25, "min_silence_duration_ms": 500}
_PHRASE_GAP_S = 0.3



@dataclass(frozen=True)
class TranscribeConfig:
    """How calls are transcribed (the same for every worker)."""

    language: str = "fr"
    detect_language: bool = False
    beam_size: int = 5
    #: Speaker of each channel of a stereo file (left, right).
    channel_roles: tuple[str, str] = DEFAULT_CHANNEL_ROLES
    #: Words of the secretary's greeting (e.g. the practice's name): on a mono recording, a
    #: cluster whose opening words hold one is the secretary even if it does not speak first.
    greeting_words: tuple[str, ...] = ()
    initial_prompt: str | None = None
    #: A new turn of the same party starts after this much silence on its channel.
    max_pause_s: float = 8.0


@dataclass
class TurnResult:
    speaker: str
    text: str
    start_s: float
    end_s: float
    confidence: float | None
    #: ``[{"w": word, "start": s, "end": s, "p": probability}]``
    words: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CallTranscript:
    """A transcribed call, ready for the store (plain data: pickles to workers and back)."""

    turns: list[TurnResult]
    language: str
    duration_s: float
    channels: int
    diarized: bool
    elapsed_s: float
    model: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Utterance:
    speaker: str
    start: float
    end: float
    words: list[dict[str, Any]]
    text: str


def default_threads(workers: int) -> int:
    """CTranslate2 threads per worker so that workers x threads <= cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


class CallTranscriber:
    """One loaded faster-whisper model transcribing whole calls."""

    def __init__(self, *, model_dir: Path, config: TranscribeConfig | None = None,
                 cpu_threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.config = config or TranscribeConfig()
        self.cpu_threads = cpu_threads or default_threads(1)
        self._model: Any = None

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from faster_whisper import WhisperModel
        except ModuleNotFoundError as exc:  # pragma: no cover - install hint
            raise ImportError("transcription needs faster-whisper: pip install -e '.[voice]'") from exc
        self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=self.cpu_threads, num_workers=1,
                                   local_files_only=True)
        logger.info("Whisper loaded from %s (%d threads)", self.model_dir, self.cpu_threads)

    @property
    def model(self) -> Any:
        if self._model is None:
            raise RuntimeError("CallTranscriber.load() was not called")
        return self._model

    def transcribe_file(self, source: str | Path | bytes,
                        channel_roles: Sequence[str] | None = None) -> CallTranscript:
        """Decode and transcribe one recording (a path, or the file's bytes)."""
        return self.transcribe_channels(load_channels(source), channel_roles=channel_roles)

    def transcribe_channels(self, channels: list[np.ndarray],
                            channel_roles: Sequence[str] | None = None) -> CallTranscript:
        started = time.monotonic()
        roles = tuple(channel_roles or self.config.channel_roles)
        duration = len(channels[0]) / TARGET_RATE
        language = (self.detect_language(channels) if self.config.detect_language
                    else self.config.language)
        if len(channels) >= 2:
            utterances: list[_Utterance] = []
            for audio, role in zip(channels[:2], roles, strict=False):
                utterances += self._utterances(audio, role, language)
            utterances.sort(key=lambda u: (u.start, u.end))
            turns = _merge(utterances, self.config.max_pause_s)
            diarized = False
        else:
            turns = self._mono_turns(channels[0], language)
            diarized = True
        return CallTranscript(turns=turns, language=language, duration_s=duration,
                              channels=len(channels), diarized=diarized,
                              elapsed_s=time.monotonic() - started, model=self.model_dir.name)

    def detect_language(self, channels: list[np.ndarray]) -> str:
        """The language spoken in the first 30 s of speech of the call (channels mixed)."""
        mix = np.mean(np.vstack(channels), axis=0) if len(channels) > 1 else channels[0]
        try:
            lang, prob, _ = self.model.detect_language(mix, vad_filter=True)
        except (TypeError, AttributeError):  # older faster-whisper: detect via transcribe
            _, info = self.model.transcribe(mix[: 30 * TARGET_RATE], vad_filter=True)
            lang, prob = info.language, info.language_probability
        logger.info("detected language %s (p=%.2f)", lang, prob)
        return str(lang)

    def _segments(self, audio: np.ndarray, language: str) -> list[Any]:
        segments, _info = self.model.transcribe(
            audio, language=language, beam_size=self.config.beam_size, word_timestamps=True,
            vad_filter=True, vad_parameters=_VAD,
            condition_on_previous_text=False, initial_prompt=self.config.initial_prompt)
        kept = []
        for seg in segments:
            if seg.no_speech_prob > 0.6 and seg.avg_logprob < -0.8:
                continue  # noise Whisper would otherwise turn into words
            kept.append(seg)
        return kept

    def _utterances(self, audio: np.ndarray, speaker: str, language: str) -> list[_Utterance]:
        """One party's speech cut at pauses of ``_UTTERANCE_GAP_S`` (a Whisper segment can
        span a pause during which the other party spoke)."""
        words: list[dict[str, Any]] = []
        for seg in self._segments(audio, language):
            words += _words(seg)
        out: list[_Utterance] = []
        current: list[dict[str, Any]] = []
        for w in words:
            if current and w["start"] - current[-1]["end"] > _UTTERANCE_GAP_S:
                out.append(_Utterance(speaker, current[0]["start"], current[-1]["end"], current,
                                      _join(current)))
                current = []
            current.append(w)
        if current:
            out.append(_Utterance(speaker, current[0]["start"], current[-1]["end"], current,
                                  _join(current)))
        return [u for u in out if u.text]

    def _mono_turns(self, audio: np.ndarray, language: str) -> list[TurnResult]:
        regions = diarize(audio)
        words: list[dict[str, Any]] = []
        for seg in self._segments(audio, language):
            words += _words(seg)
        if not words:
            return []
        starts = np.array([r.start_s for r in regions]) if regions else np.zeros(0)
        ends = np.array([r.end_s for r in regions]) if regions else np.zeros(0)
        clusters: dict[int, int] = {}
        for w in words:
            mid = (w["start"] + w["end"]) / 2
            if not len(starts):
                clusters[id(w)] = 0
                continue
            inside = np.nonzero((starts <= mid) & (ends >= mid))[0]
            if len(inside):
                clusters[id(w)] = regions[int(inside[0])].label
            else:  # between regions: the closest one
                gap = np.minimum(np.abs(starts - mid), np.abs(ends - mid))
                clusters[id(w)] = regions[int(np.argmin(gap))].label
        # A phrase (words between pauses or after a sentence end) belongs to one speaker:
        # it takes the duration-weighted majority of its words' clusters.
        runs: list[tuple[int, list[dict[str, Any]]]] = []
        for phrase in _phrases(words):
            weight = [0.0, 0.0]
            for w in phrase:
                weight[clusters[id(w)]] += max(w["end"] - w["start"], 0.01)
            cluster = 0 if weight[0] >= weight[1] else 1
            if runs and runs[-1][0] == cluster:
                runs[-1][1].extend(phrase)
            else:
                runs.append((cluster, list(phrase)))
        opening = [(c, _join(ws)) for c, ws in runs[:3]]
        roles = assign_roles(opening, self.config.greeting_words)
        return [TurnResult(speaker=roles[c], text=_join(ws), start_s=ws[0]["start"],
                           end_s=ws[-1]["end"], confidence=_confidence(ws), words=ws)
                for c, ws in runs]


def _words(seg: Any) -> list[dict[str, Any]]:
    """Words as Whisper wrote them (a leading space marks a word boundary)."""
    return [{"w": w.word, "start": round(float(w.start), 3), "end": round(float(w.end), 3),
             "p": round(float(w.probability), 3)} for w in (seg.words or []) if w.word.strip()]


def _phrases(words: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for w in words:
        if out and (w["start"] - out[-1][-1]["end"] > _PHRASE_GAP_S
                    or out[-1][-1]["w"].rstrip().endswith((".", "?", "!", "…"))):
            out.append([w])
        elif out:
            out[-1].append(w)
        else:
            out.append([w])
    return out


def _join(words: list[dict[str, Any]]) -> str:
    return "".join(w["w"] for w in words).strip()


def _confidence(words: list[dict[str, Any]]) -> float | None:
    return round(float(np.mean([w["p"] for w in words])), 3) if words else None


def _merge(utterances: list[_Utterance], max_pause_s: float) -> list[TurnResult]:
    turns: list[TurnResult] = []
    for u in utterances:
        last = turns[-1] if turns else None
        if last is not None and last.speaker == u.speaker and u.start - last.end_s <= max_pause_s:
            last.text = f"{last.text} {u.text}"
            last.end_s = max(last.end_s, u.end)
            last.words += u.words
            last.confidence = _confidence(last.words)
        else:
            turns.append(TurnResult(speaker=u.speaker, text=u.text, start_s=u.start, end_s=u.end,
                                    confidence=_confidence(u.words), words=list(u.words)))
    return turns
