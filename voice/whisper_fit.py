"""Whisper on a window fitted to the utterance instead of a fixed 30 s.

faster-whisper pads every input to Whisper's 30 s window (3,000 mel frames), so the encoder
costs the same for a 2 s "oui, merci" as for 30 s of speech: about 1.2 s on 2 cores with
Whisper base. CTranslate2's Whisper encoder accepts shorter inputs, so for a live phone
turn (a few seconds) we compute the log-mel features ourselves, pad them to the utterance
plus a little silence, and run the encoder and the decoder directly: the encoder time falls
with the window (measured in ``bench/stt_wer.py --window``; see docs/PERFORMANCE.md).

The decoder is the same as faster-whisper's (same prompt tokens, no timestamps, greedy or
beam search). Whisper was trained on 30 s windows, so a fitted window can derail on rare
inputs; a reply that looks like a derailment (repetition, too long for the audio, very low
log-probability) is decoded again on the full window.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FitResult", "TranscriptionCancelled", "echoes_prompt", "fitted_frames",
           "transcribe_fitted"]

FRAMES_PER_S = 100  # Whisper: 10 ms hop
FULL_FRAMES = 3000
MIN_FRAMES = 2000  # never encode less than 20 s: shorter windows derail more often on names
# and dates (measured on the phone fixtures, docs/PERFORMANCE.md)
TAIL_FRAMES = 100  # 1 s of silence after the speech, as the model expects an ending


class TranscriptionCancelled(Exception):
    """A speculative transcription was called off (the caller spoke again) before decoding."""


@dataclass(frozen=True)
class FitResult:
    text: str
    avg_logprob: float
    no_speech_prob: float
    frames: int
    fell_back: bool = False


def fitted_frames(n_frames: int) -> int:
    """The encoder window for ``n_frames`` of audio: the speech plus 1 s, rounded up to
    the next 0.5 s, at least 20 s and at most Whisper's 30 s."""
    want = max(MIN_FRAMES, n_frames + TAIL_FRAMES)
    return min(FULL_FRAMES, math.ceil(want / 50.0) * 50)


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def echoes_prompt(text: str, prompt: str | None) -> bool:
    """Whisper sometimes "transcribes" its initial prompt instead of the audio."""
    if not prompt:
        return False
    said = set(re.findall(r"\w+", text.lower()))
    primed = set(re.findall(r"\w+", prompt.lower()))
    return len(said) >= 3 and len(said & primed) / len(said) >= 0.8


def _looks_derailed(text: str, tokens: int, audio_s: float, avg_logprob: float) -> bool:
    if not text:
        return False
    if _compression_ratio(text) > 2.4:  # the same words over and over
        return True
    if tokens > 12 + 8 * audio_s:  # far more words than the audio can hold
        return True
    return avg_logprob < -1.2


def transcribe_fitted(model: Any, audio: np.ndarray, *, language: str, beam_size: int,
                      initial_prompt: str | None,
                      cancelled: Callable[[], bool] | None = None) -> FitResult | None:
    """Decode ``audio`` (16 kHz float32) with ``model`` (a loaded
    ``faster_whisper.WhisperModel``) on a fitted window.

    Returns ``None`` when the audio is longer than one window or the fitted decode looks
    derailed: the caller then runs faster-whisper's own 30 s path. Raises
    :class:`TranscriptionCancelled` when ``cancelled()`` is true once the audio is encoded
    (the decoder, two thirds of the time, is then not paid).
    """
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    features = model.feature_extractor(audio)  # (n_mels, frames), log-mel normalised
    n = int(features.shape[-1])
    if n > FULL_FRAMES:
        return None
    frames = fitted_frames(n)
    if n < frames:  # zeros are what faster-whisper pads with too (silence after normalising)
        features = np.pad(features, ((0, 0), (0, frames - n)))
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                          language=language)
    prompt: list[int] = []
    if initial_prompt:
        prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + initial_prompt.strip())[-223:]]
    prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    batch = ctranslate2.StorageView.from_array(
        np.ascontiguousarray(features[np.newaxis].astype(np.float32)))
    encoded = model.model.encode(batch, to_cpu=False)
    if cancelled is not None and cancelled():
        raise TranscriptionCancelled
    result = model.model.generate(
        encoded, [prompt], beam_size=beam_size, max_length=224, return_scores=True,
        return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1])[0]
    ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    text = tokenizer.decode(ids).strip()
    # generate() scores are length-normalised log-probabilities of the sequence
    avg_logprob = float(result.scores[0]) if result.scores else 0.0
    if _looks_derailed(text, len(ids), len(audio) / 16000.0, avg_logprob) \
            or echoes_prompt(text, initial_prompt):
        return None
    return FitResult(text=text, avg_logprob=avg_logprob,
                     no_speech_prob=float(result.no_speech_prob), frames=frames)
