"""eSpeak NG speech synthesis through its C library (ctypes), French by default.

The library ships in the ``espeakng-loader`` wheel (no system package needed).
eSpeak keeps global state, so one :class:`ESpeakEngine` per process is shared
behind a lock; synthesis of one sentence takes a few milliseconds.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["ESpeakEngine", "ESpeakError", "ESpeakVoice"]

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


class ESpeakError(RuntimeError):
    """eSpeak NG is missing or failed."""


@dataclass(frozen=True)
class ESpeakVoice:
    """Voice settings: language (``fr``, ``en``…), words per minute, pitch 0–100."""

    language: str = "fr"
    rate_wpm: int = 165
    pitch: int = 45


class ESpeakEngine:
    """Process-wide eSpeak NG engine. Call :meth:`load` once before :meth:`synthesize`."""

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _sample_rate: int = 0
    _chunks: ClassVar[list[bytes]] = []
    _callback: object = None
    _voice: ESpeakVoice | None = None

    def __init__(self, *, voice: ESpeakVoice | None = None) -> None:
        self.voice = voice or ESpeakVoice()

    @property
    def sample_rate(self) -> int:
        return type(self)._sample_rate

    def load(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._lib is not None:
                return
            try:
                import espeakng_loader
            except ModuleNotFoundError as exc:  # pragma: no cover - install hint
                raise ESpeakError(
                    "eSpeak NG is not installed: pip install -e '.[voice]' (espeakng-loader)") from exc
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                         espeakng_loader.get_data_path().encode(), 0)
            if rate <= 0:
                raise ESpeakError("espeak_Initialize failed")

            def _on_audio(wav: ctypes.POINTER(ctypes.c_short), n: int, _events: int) -> int:  # type: ignore[valid-type]
                if n > 0 and wav:
                    cls._chunks.append(ctypes.string_at(wav, n * 2))
                return 0

            cls._callback = _SYNTH_CALLBACK(_on_audio)
            lib.espeak_SetSynthCallback(cls._callback)
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            cls._lib = lib
            cls._sample_rate = rate
            logger.info("eSpeak NG loaded (%d Hz)", rate)

    def synthesize(self, text: str) -> np.ndarray:
        """Synthesize ``text``; returns int16 mono samples at :attr:`sample_rate`."""
        cls = type(self)
        if cls._lib is None:
            raise ESpeakError("ESpeakEngine.load() was not called")
        lib = cls._lib
        data = text.encode("utf-8") + b"\0"
        with cls._lock:
            if cls._voice != self.voice:
                if lib.espeak_SetVoiceByName(self.voice.language.encode()) != _EE_OK:
                    raise ESpeakError(f"eSpeak NG has no voice '{self.voice.language}'")
                lib.espeak_SetParameter(1, self.voice.rate_wpm, 0)  # espeakRATE
                lib.espeak_SetParameter(3, self.voice.pitch, 0)  # espeakPITCH
                cls._voice = self.voice
            cls._chunks = []
            buf = ctypes.create_string_buffer(data)
            err = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            if err != _EE_OK:
                raise ESpeakError(f"espeak_Synth failed with code {err}")
            pcm = b"".join(cls._chunks)
            cls._chunks = []
        return np.frombuffer(pcm, dtype=np.int16).copy()
