"""Decoding call recordings (WAV, FLAC, MP3) with PyAV, one array per channel.

Asterisk's MixMonitor can record the two legs of a call on the two channels of a
stereo file; the channels are kept apart here (never mixed) so each party can be
transcribed on its own. :func:`probe` decodes a whole file frame by frame without
keeping the samples (a corrupt file fails here, at ingestion, not hours later);
:func:`load_channels` returns the samples at Whisper's 16 kHz as float32, one array
per channel. A call is held whole in memory while it is transcribed: 16 kHz float32
is about 230 MB per hour per channel, so files above ``MAX_DURATION_S`` (4 h) are
refused rather than risk exhausting memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_DURATION_S",
    "TARGET_RATE",
    "AudioError",
    "AudioInfo",
    "file_sha256",
    "load_channels",
    "probe",
    "write_audio",
]

logger = logging.getLogger(__name__)

TARGET_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3")
MAX_DURATION_S = 4 * 3600.0
_MIN_DURATION_S = 0.05

AudioSource = str | Path | bytes


class AudioError(ValueError):
    """A file that cannot be used as a call recording, with the reason in plain words."""


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` found in a recording."""

    codec: str
    channels: int
    sample_rate: int
    duration_s: float
    peak: float


def _av() -> Any:
    try:
        import av
    except ModuleNotFoundError as exc:  # pragma: no cover - install hint
        raise ImportError("transcripts.audio needs PyAV (comes with faster-whisper): "
                          "pip install -e '.[voice]'") from exc
    return av


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(source: AudioSource) -> Any:
    av = _av()
    target: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if not source:
            raise AudioError("empty file (0 bytes)")
    elif Path(source).stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise AudioError(f"not a readable audio file ({_reason(exc)})") from exc
    if not container.streams.audio:
        container.close()
        raise AudioError("no audio stream in the file")
    return container


def _reason(exc: BaseException) -> str:
    # PyAV's message repeats the errno and the file name: keep the reason only.
    return str(getattr(exc, "strerror", None) or exc)


def _frames(container: Any, stream: Any) -> Any:
    av = _av()
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.FFmpegError as exc:
        raise AudioError(f"cannot decode the audio ({_reason(exc)})") from exc


def probe(source: AudioSource) -> AudioInfo:
    """Decode the whole file (streaming; nothing is kept) and say what it holds.

    Raises :class:`AudioError` for an empty, truncated-to-nothing, undecodable, silent
    (no sample), too long or more-than-stereo file.
    """
    container = _open(source)
    try:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        channels = stream.codec_context.channels
        rate = stream.codec_context.sample_rate
        if channels not in (1, 2):
            raise AudioError(f"{channels} channels: only mono or stereo (one party per channel) "
                             "recordings are supported")
        samples = 0
        peak = 0.0
        for frame in _frames(container, stream):
            arr = frame.to_ndarray()
            samples += frame.samples
            if arr.size:
                scale = _full_scale(arr.dtype)
                peak = max(peak, float(np.abs(arr).max()) / scale)
            if samples / max(rate, 1) > MAX_DURATION_S:
                raise AudioError(f"longer than {MAX_DURATION_S / 3600:.0f} h: split the recording")
    finally:
        container.close()
    duration = samples / rate if rate else 0.0
    if duration < _MIN_DURATION_S:
        raise AudioError("no audio in the file (0 samples decoded)" if samples == 0
                         else f"too short ({duration:.3f} s)")
    return AudioInfo(codec=codec, channels=channels, sample_rate=rate, duration_s=duration,
                     peak=min(peak, 1.0))


def _full_scale(dtype: np.dtype[Any]) -> float:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max) + 1.0
    return 1.0


def load_channels(source: AudioSource, *, rate: int = TARGET_RATE) -> list[np.ndarray]:
    """The recording at ``rate`` Hz as float32 in [-1, 1], one array per channel."""
    av = _av()
    container = _open(source)
    try:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        if channels not in (1, 2):
            raise AudioError(f"{channels} channels: only mono or stereo recordings are supported")
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        for frame in _frames(container, stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    finally:
        container.close()
    if not chunks:
        raise AudioError("no audio in the file (0 samples decoded)")
    data = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return [np.ascontiguousarray(data[c]) for c in range(data.shape[0])]


_CODECS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"), ".mp3": ("libmp3lame", "s16p")}


def write_audio(path: Path, channels: list[np.ndarray], *, rate: int) -> None:
    """Write float32 channels (same length) as WAV (16-bit), FLAC or MP3, chosen by suffix.

    Used by the tests and benchmarks to make recordings in every supported format.
    """
    av = _av()
    suffix = path.suffix.lower()
    if suffix not in _CODECS:
        raise AudioError(f"cannot write {suffix}: one of {', '.join(_CODECS)}")
    codec, fmt = _CODECS[suffix]
    n = min(len(c) for c in channels)
    data = np.stack([c[:n] for c in channels])
    pcm = np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
    layout = "mono" if len(channels) == 1 else "stereo"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        if suffix == ".mp3":
            stream.bit_rate = 32000 * len(channels)
        step = 1152
        for start in range(0, n, step):
            block = pcm[:, start:start + step]
            frame_data = block if fmt.endswith("p") else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame_data), format=fmt,
                                               layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
