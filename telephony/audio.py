"""Small audio helpers for the telephony edge: WAV loading, level, stereo call recordings.

Everything is mono signed 16-bit little-endian PCM (what AudioSocket carries).
"""

from __future__ import annotations

import logging
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["AudioFileError", "StereoRecorder", "load_wav", "resample", "rms_dbfs"]

logger = logging.getLogger(__name__)


class AudioFileError(ValueError):
    """A WAV file could not be read (the message names the file)."""


def rms_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS of s16le PCM (-120 for digital silence or empty input)."""
    n = len(pcm) // 2
    if n == 0:
        return -120.0
    x = np.frombuffer(pcm[: n * 2], dtype="<i2").astype(np.float64)
    r = float(np.sqrt(np.mean(x * x)))
    if r <= 0.0:
        return -120.0
    return max(-120.0, 20.0 * float(np.log10(r / 32768.0)))


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample mono s16le PCM (linear interpolation; good enough for telephone-band tests)."""
    if src_rate == dst_rate or not pcm:
        return pcm
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    n_out = round(len(x) * dst_rate / src_rate)
    if n_out == 0:
        return b""
    t_out = np.arange(n_out) * (src_rate / dst_rate)
    y = np.interp(t_out, np.arange(len(x)), x)
    return np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes()


def load_wav(path: Path | str, sample_rate: int) -> bytes:
    """Read a PCM WAV file as mono s16le at ``sample_rate`` (downmix, resample, 8/16/24/32-bit)."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise AudioFileError(f"{p}: file not found") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioFileError(f"{p}: not a readable PCM WAV file ({exc})") from None
    if rate <= 0 or channels <= 0:
        raise AudioFileError(f"{p}: invalid WAV header (rate {rate}, channels {channels})")
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif width == 2:
        x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64)
    elif width == 3:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3)
        v = b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16)
        v = np.where(v & 0x800000, v - 0x1000000, v)
        x = v.astype(np.float64) / 256.0
    elif width == 4:
        x = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4").astype(np.float64) / 65536.0
    else:
        raise AudioFileError(f"{p}: unsupported sample width {width * 8} bits")
    if channels > 1:
        x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return resample(pcm, rate, sample_rate)


@dataclass
class _Channel:
    buf: bytearray
    written: int = 0  # samples already in the file


class StereoRecorder:
    """Writes both directions of a call to a stereo WAV, time-aligned.

    Left = caller, right = bot. Each side is placed on a shared wall-clock
    timeline: when a side falls behind the clock (a gap in its frames), silence
    is inserted so later audio lands where it was heard. ``close()`` pads the
    shorter side and finalises the header; it is safe to call twice.
    """

    _SLACK_S = 0.06  # jitter tolerated before a gap is filled with silence

    def __init__(self, *, path: Path, sample_rate: int, clock: object = time.monotonic) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._clock = clock
        self._wav: wave.Wave_write | None = None
        self._t0: float | None = None
        self._sides = [_Channel(bytearray()), _Channel(bytearray())]
        self._closed = False

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w = wave.open(str(self.path), "wb")
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(self.sample_rate)
        self._wav = w

    @property
    def closed(self) -> bool:
        return self._closed

    def add_caller(self, pcm: bytes, now: float | None = None) -> None:
        self._add(0, pcm, now)

    def add_bot(self, pcm: bytes, now: float | None = None) -> None:
        self._add(1, pcm, now)

    def _now(self, now: float | None) -> float:
        return float(self._clock()) if now is None else now  # type: ignore[operator]

    def _add(self, side: int, pcm: bytes, now: float | None) -> None:
        if self._closed or self._wav is None or not pcm:
            return
        t = self._now(now)
        if self._t0 is None:
            self._t0 = t - len(pcm) / 2 / self.sample_rate
        ch = self._sides[side]
        have = ch.written + len(ch.buf) // 2
        # where this chunk should start on the shared timeline
        start = int((t - self._t0) * self.sample_rate) - len(pcm) // 2
        if start - have > int(self._SLACK_S * self.sample_rate):
            ch.buf += b"\x00\x00" * (start - have)
        ch.buf += pcm[: len(pcm) // 2 * 2]
        self._flush()

    def _flush(self, *, final: bool = False) -> None:
        assert self._wav is not None
        left, right = self._sides
        n = min(len(left.buf), len(right.buf)) // 2
        if final:
            n = max(len(left.buf), len(right.buf)) // 2
            for ch in self._sides:
                ch.buf += b"\x00\x00" * (n - len(ch.buf) // 2)
        if n < (1 if final else self.sample_rate // 10):  # write in >= 100 ms chunks
            return
        a = np.frombuffer(bytes(left.buf[: n * 2]), dtype="<i2")
        b = np.frombuffer(bytes(right.buf[: n * 2]), dtype="<i2")
        inter = np.empty(n * 2, dtype="<i2")
        inter[0::2] = a
        inter[1::2] = b
        self._wav.writeframes(inter.tobytes())
        for ch in self._sides:
            del ch.buf[: n * 2]
            ch.written += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._wav is None:
            return
        try:
            self._flush(final=True)
        finally:
            self._wav.close()
            logger.debug("recording finalised: %s", self.path)
