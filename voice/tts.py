"""Text-to-speech for the call pipeline: eSpeak NG (embedded French) and Piper (production).

Both engines are loaded once per process (:class:`TTSEngine.load`) and shared by
every call; each call gets a light pipecat ``TTSService`` that synthesizes one
sentence at a time off the event loop and streams it, resampled to the call's
rate. pipecat's own sentence aggregation feeds it, so the first sentence is
spoken while the model is still writing the second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from knowledge.privacy import redacted
from voice.espeak import ESpeakEngine, ESpeakVoice

__all__ = ["ESpeakTTS", "PiperTTS", "TTSEngine", "make_tts_service"]

logger = logging.getLogger(__name__)

try:
    from pipecat.frames.frames import ErrorFrame, Frame
    from pipecat.services.settings import TTSSettings
    from pipecat.services.tts_service import TTSService
except ModuleNotFoundError as e:  # pragma: no cover - install hint
    raise ImportError(f"voice.tts needs pipecat: pip install -e '.[voice]' ({e})") from e


class TTSEngine(Protocol):
    sample_rate: int

    def load(self) -> None: ...

    def synthesize(self, text: str) -> np.ndarray:
        """int16 mono samples at ``sample_rate``."""
        ...


class ESpeakTTS:
    """eSpeak NG, French: always available offline, robotic but intelligible."""

    def __init__(self, *, language: str = "fr", rate_wpm: int = 165) -> None:
        self._engine = ESpeakEngine(voice=ESpeakVoice(language=language, rate_wpm=rate_wpm))

    @property
    def sample_rate(self) -> int:
        return self._engine.sample_rate

    def load(self) -> None:
        self._engine.load()

    def synthesize(self, text: str) -> np.ndarray:
        return self._engine.synthesize(text)


class PiperTTS:
    """Piper voice from a local ``.onnx`` + ``.onnx.json`` (a French voice in production)."""

    def __init__(self, *, model_path: Path) -> None:
        self.model_path = model_path
        self._voice: Any = None
        self._lock = threading.Lock()
        self.sample_rate = 0

    def load(self) -> None:
        if self._voice is not None:
            return
        try:
            from piper import PiperVoice
        except ModuleNotFoundError as exc:  # pragma: no cover
            raise RuntimeError("Piper is not installed: pip install -e '.[voice]'") from exc
        config = Path(str(self.model_path) + ".json")
        if not self.model_path.is_file() or not config.is_file():
            raise FileNotFoundError(f"Piper voice {self.model_path} (or its .json) is missing")
        self.sample_rate = int(json.loads(config.read_text())["audio"]["sample_rate"])
        self._voice = PiperVoice.load(self.model_path)
        logger.info("Piper voice loaded: %s (%d Hz)", self.model_path.name, self.sample_rate)

    def synthesize(self, text: str) -> np.ndarray:
        if self._voice is None:
            raise RuntimeError("PiperTTS.load() was not called")
        with self._lock:
            chunks = [c.audio_int16_array for c in self._voice.synthesize(text)]
        return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


class EngineTTSService(TTSService):
    """pipecat TTS service over a shared, already loaded :class:`TTSEngine`."""

    def __init__(self, *, engine: TTSEngine, **kwargs: Any) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True,
                         settings=TTSSettings(model=None, voice=type(engine).__name__, language=None),
                         **kwargs)
        self._engine = engine

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        text = text.strip()
        if not text:
            return
        try:
            await self.start_tts_usage_metrics(text)
            samples = await asyncio.to_thread(self._engine.synthesize, text)

            async def chunks() -> AsyncIterator[bytes]:
                pcm = samples.tobytes()
                step = self._engine.sample_rate // 5 * 2  # 200 ms pieces
                for i in range(0, len(pcm), step):
                    yield pcm[i:i + step]

            async for frame in self._stream_audio_frames_from_iterator(
                    chunks(), in_sample_rate=self._engine.sample_rate, context_id=context_id):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:  # keep the call alive: log, report, go on
            logger.exception("TTS failed for %s", redacted(text))
            yield ErrorFrame(error=f"TTS failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()


def make_tts_service(engine: TTSEngine, **kwargs: Any) -> EngineTTSService:
    return EngineTTSService(engine=engine, **kwargs)
