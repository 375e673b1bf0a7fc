"""Two-speaker diarization of a mono call recording, without downloaded models.

A mono recording mixes the secretary and the caller. They are told apart by:

1. **speech regions** from the Silero VAD bundled with faster-whisper (split at pauses of
   ``min_silence_s``, so a turn change, which nearly always has a short gap, is a cut);
2. **voice features** per 1 s window (0.5 s hop) inside the regions, over the loud frames
   only: the mean log-mel spectrum and MFCCs of the telephone band, the level and the
   median pitch — a voice and its phone line differ on exactly these;
3. **2-cluster k-means** on the standardised windows (k-means++ starts, best of several),
   refined by two diagonal Gaussians (hard EM);
4. each region takes the cluster that explains its windows best (summed log-likelihood);
5. **roles**: the party who speaks first answers the phone, so on an incoming call it is
   the secretary — unless greeting words are configured (e.g. the practice's name) and the
   other cluster's opening turn starts with one while the first turn does not. :func:`assign_roles` applies this once words are known.

Speaker attribution accuracy is measured on the corpus's mono mixes by
``bench/transcripts_wer.py`` (see docs/PERFORMANCE.md, "Transcription").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SpeakerSegment", "assign_roles", "diarize", "speech_regions", "window_features"]

logger = logging.getLogger(__name__)

RATE = 16000
_WIN_S = 1.0
_HOP_S = 0.5


@dataclass(frozen=True)
class SpeakerSegment:
    """A speech region and its cluster (0 or 1)."""

    start_s: float
    end_s: float
    label: int


def speech_regions(audio: np.ndarray, *, min_silence_s: float = 0.15,
                   threshold: float = 0.5) -> list[tuple[float, float]]:
    """Speech regions (seconds) by the Silero VAD that ships with faster-whisper."""
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ModuleNotFoundError as exc:  # pragma: no cover - install hint
        raise ImportError("diarization needs faster-whisper: pip install -e '.[voice]'") from exc
    opts = VadOptions(threshold=threshold, min_silence_duration_ms=int(min_silence_s * 1000),
                      min_speech_duration_ms=150, speech_pad_ms=30)
    stamps = get_speech_timestamps(audio, opts)
    return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]


def _mel_filterbank(n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / RATE).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(1, n_mels + 1):
        lo, mid, hi = bins[i - 1], bins[i], bins[i + 1]
        for k in range(lo, mid):
            fb[i - 1, k] = (k - lo) / max(mid - lo, 1)
        for k in range(mid, hi):
            fb[i - 1, k] = (hi - k) / max(hi - mid, 1)
    return fb


_N_FFT = 512
_FRAME = 400  # 25 ms
_STEP = 160  # 10 ms
_FB = None
_DCT = None


def _frame_features(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per 10 ms frame: 24 log-mel bands, 13 MFCCs, level (dB), pitch (Hz, 0 when unvoiced)."""
    global _FB, _DCT
    if _FB is None or _DCT is None:
        _FB = _mel_filterbank(_N_FFT, 24, 250.0, 3600.0)
        n = np.arange(24)
        _DCT = np.cos(np.pi / 24 * (n[None, :] + 0.5) * np.arange(13)[:, None])
    if len(audio) < _FRAME:
        audio = np.pad(audio, (0, _FRAME - len(audio)))
    count = 1 + (len(audio) - _FRAME) // _STEP
    idx = np.arange(_FRAME)[None, :] + _STEP * np.arange(count)[:, None]
    frames = audio[idx] * np.hamming(_FRAME)[None, :]
    spec = np.abs(np.fft.rfft(frames, n=_N_FFT)) ** 2
    mel = np.log(spec @ _FB.T + 1e-10)
    mfcc = mel @ _DCT.T
    energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    pitch = _pitch(frames)
    return mel, mfcc, energy, pitch


def _pitch(frames: np.ndarray) -> np.ndarray:
    """Autocorrelation pitch per frame (60-400 Hz); 0 where the peak is weak."""
    spec = np.fft.rfft(frames, n=1024)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=1024)[:, :_FRAME]
    lo, hi = RATE // 400, RATE // 60
    ac0 = ac[:, :1] + 1e-12
    seg = ac[:, lo:hi] / ac0
    lag = np.argmax(seg, axis=1)
    strength = seg[np.arange(len(seg)), lag]
    f0 = RATE / (lag + lo)
    return np.where(strength > 0.4, f0, 0.0)


def window_features(audio: np.ndarray,
                    regions: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors of the 1 s windows inside the regions, and each window's centre (s).

    Only the loud frames of a window count (within 30 dB of the recording's loud speech):
    pauses and line noise between words would otherwise blur the voice. A window's vector:
    mean log-mel spectrum (24 bands), mean MFCC 1-12, 90th percentile level, log median
    pitch (the median of the call where a window has too few voiced frames).
    """
    width = 24 + 12 + 2
    if not regions:
        return np.zeros((0, width)), np.zeros(0)
    mel, mfcc, energy, pitch = _frame_features(audio)
    loud = float(np.percentile(energy, 95)) - 30.0
    per_s = RATE / _STEP
    rows: list[np.ndarray] = []
    centres: list[float] = []
    for start, end in regions:
        span = end - start
        starts = [start] if span < _WIN_S else list(np.arange(start, end - _WIN_S + 1e-6, _HOP_S))
        length = min(_WIN_S, span)
        for s in starts:
            frames = np.arange(int(s * per_s), min(int((s + length) * per_s), len(energy)))
            speech = frames[energy[frames] > loud]
            if len(speech) < 5:
                speech = frames
            if len(speech) < 3:
                continue
            voiced = pitch[speech][pitch[speech] > 0]
            f0 = float(np.log(np.median(voiced))) if len(voiced) >= 3 else np.nan
            rows.append(np.concatenate([mel[speech].mean(axis=0), mfcc[speech].mean(axis=0)[1:],
                                        [float(np.percentile(energy[speech], 90)), f0]]))
            centres.append(s + length / 2)
    if not rows:
        return np.zeros((0, width)), np.zeros(0)
    feats = np.vstack(rows)
    f0_col = feats[:, -1]
    known = ~np.isnan(f0_col)
    f0_col[~known] = float(np.median(f0_col[known])) if known.any() else 0.0
    return feats, np.asarray(centres)


def _kmeans2(x: np.ndarray, *, restarts: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    best_labels = np.zeros(len(x), dtype=int)
    best_inertia = np.inf
    for _ in range(restarts):
        c0 = x[rng.integers(len(x))]
        d = ((x - c0) ** 2).sum(axis=1)
        probs = d / d.sum() if d.sum() > 0 else None
        c1 = x[rng.choice(len(x), p=probs)]
        centres = np.vstack([c0, c1])
        labels = np.zeros(len(x), dtype=int)
        for _it in range(50):
            dist = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new = dist.argmin(axis=1)
            if _it and np.array_equal(new, labels):
                break
            labels = new
            for k in (0, 1):
                if np.any(labels == k):
                    centres[k] = x[labels == k].mean(axis=0)
        inertia = float(((x - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels.copy()
    return best_labels


def _gmm_refine(z: np.ndarray, labels: np.ndarray,
                iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Two diagonal Gaussians started from the k-means labels (hard EM); returns the labels
    and each window's log-likelihood under each cluster."""
    loglik = np.zeros((len(z), 2))
    for _ in range(iterations):
        for k in (0, 1):
            member = z[labels == k] if np.sum(labels == k) > 1 else z
            mu, var = member.mean(axis=0), member.var(axis=0) + 1e-2
            weight = max(float(np.mean(labels == k)), 1e-3)
            loglik[:, k] = (-0.5 * (((z - mu) ** 2) / var + np.log(var)).sum(axis=1)
                            + np.log(weight))
        new = loglik.argmax(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, loglik


def diarize(audio: np.ndarray, *, min_silence_s: float = 0.15) -> list[SpeakerSegment]:
    """Speech regions of a two-party mono recording (16 kHz float32), each with a cluster.

    Cluster 0 is the cluster of the first region (the likely secretary on an incoming call).
    """
    regions = speech_regions(audio, min_silence_s=min_silence_s)
    if not regions:
        return []
    feats, centres = window_features(audio, regions)
    if len(feats) < 2:
        return [SpeakerSegment(s, e, 0) for s, e in regions]
    std = feats.std(axis=0)
    z = (feats - feats.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
    labels, loglik = _gmm_refine(z, _kmeans2(z))
    out: list[SpeakerSegment] = []
    for start, end in regions:
        inside = (centres >= start) & (centres <= end)
        if inside.any():  # the cluster that explains the region's windows best
            label = int(loglik[inside].sum(axis=0).argmax())
        else:
            label = int(labels[np.argmin(np.abs(centres - (start + end) / 2))])
        out.append(SpeakerSegment(start, end, label))
    first = out[0].label
    if first != 0:
        out = [SpeakerSegment(s.start_s, s.end_s, 1 - s.label) for s in out]
    logger.debug("diarized %d regions (%d windows)", len(out), len(feats))
    return out


def assign_roles(opening: Sequence[tuple[int, str]], greeting_words: Sequence[str]) -> dict[int, str]:
    """Map clusters to ``secretary``/``patient`` from the call's opening turns.

    ``opening`` holds the first turns as ``(cluster, text)``. The first speaker is the
    secretary, unless the first turn has no greeting word and the first turn of the other
    cluster (among the first three) has one.
    """
    if not opening:
        return {0: "secretary", 1: "patient"}
    words = tuple(w.lower() for w in greeting_words if w)

    def greets(text: str) -> bool:  # in the first words of the turn only
        low = " ".join(text.lower().split()[:8])
        return any(w in low for w in words)

    first_cluster, first_text = opening[0]
    secretary = first_cluster
    if words and not greets(first_text):
        for cluster, text in opening[1:3]:
            if cluster != first_cluster and greets(text):
                secretary = cluster
                break
    return {secretary: "secretary", 1 - secretary: "patient"}
