"""Silero VAD that also reports the quiet inside its hangover.

pipecat's VAD calls the speech over only after ``stop_secs`` of quiet; the frames in between
are its internal "stopping" state, which no frame or event reports. Speculative speech
recognition (``voice.stt.WhisperSTT.speech_quiet``) starts decoding at the pause's onset, so
this analyzer tells a listener how long it has been quiet, and when speech came back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState
except ModuleNotFoundError as e:  # pragma: no cover - install hint
    raise ImportError(f"voice.vad needs pipecat: pip install -e '.[voice]' ({e})") from e

__all__ = ["PauseAwareVAD"]


class PauseAwareVAD(SileroVADAnalyzer):
    """``on_quiet(seconds)`` on each chunk analysed while the VAD is stopping (the caller has
    gone quiet, not yet long enough for a stop); ``on_speech()`` when speech comes back
    before the stop; ``hearing_speech()`` whether the latest audio has speech in it."""

    def __init__(self, *, params: VADParams,
                 on_quiet: Callable[[float], None] | None = None,
                 on_speech: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(params=params, **kwargs)
        self.on_quiet = on_quiet
        self.on_speech = on_speech
        self._quiet_bytes = 0
        self._state = VADState.QUIET

    def hearing_speech(self) -> bool:
        """Speech in the latest audio, even before the VAD confirms a start (``start_secs``)."""
        return self._state in (VADState.STARTING, VADState.SPEAKING)

    async def analyze_audio(self, buffer: bytes) -> VADState:
        state = await super().analyze_audio(buffer)
        self._state = state
        if state == VADState.STOPPING:
            self._quiet_bytes += len(buffer)
            if self.on_quiet is not None and self.sample_rate:
                self.on_quiet(self._quiet_bytes / (2 * self.num_channels * self.sample_rate))
        elif self._quiet_bytes:
            self._quiet_bytes = 0
            if state == VADState.SPEAKING and self.on_speech is not None:
                self.on_speech()
        return state
