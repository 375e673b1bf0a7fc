"""pipecat transport over one AudioSocket call (``telephony.session.CallSession``).

Input: caller audio becomes ``InputAudioRawFrame``s, DTMF digits become
``InputDTMFFrame``s, and a hangup ends the pipeline. Output: bot audio is handed
to the session, which paces it at real time in 20 ms frames (and sends silence
whenever the bot is quiet, so Asterisk never times out); an interruption
(barge-in) drops what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

try:
    from pipecat.audio.dtmf.types import KeypadEntry
    from pipecat.frames.frames import (
        EndFrame,
        InputAudioRawFrame,
        InputDTMFFrame,
        InterruptionFrame,
        OutputAudioRawFrame,
        StartFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.transports.base_input import BaseInputTransport
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.base_transport import BaseTransport, TransportParams
except ModuleNotFoundError as e:  # pragma: no cover - install hint
    raise ImportError(f"voice.transport needs pipecat: pip install -e '.[voice]' ({e})") from e

__all__ = ["AudioSocketTransport"]

logger = logging.getLogger(__name__)


class _Input(BaseInputTransport):
    def __init__(self, *, session: Any, params: TransportParams,
                 on_hangup: Callable[[str], Awaitable[None]]) -> None:
        super().__init__(params)
        self._session = session
        self._on_hangup = on_hangup
        self._reader: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._reader is None:
            self._reader = self.create_task(self._read_events())
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_reader()

    async def cancel(self, frame: Any) -> None:
        await super().cancel(frame)
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    async def _read_events(self) -> None:
        from telephony.session import AudioIn, Dtmf, Hangup

        reason = "socket closed"
        async for event in self._session.events():
            if isinstance(event, AudioIn):
                await self.push_audio_frame(InputAudioRawFrame(
                    audio=event.pcm, sample_rate=self._session.sample_rate, num_channels=1))
            elif isinstance(event, Dtmf):
                try:
                    entry = KeypadEntry(event.digit)
                except ValueError:
                    logger.warning("call %s: ignoring DTMF %r", self._session.call_id, event.digit)
                    continue
                await self.push_frame(InputDTMFFrame(button=entry))
            elif isinstance(event, Hangup):
                reason = event.reason
                break
        await self._on_hangup(reason)


class _Output(BaseOutputTransport):
    def __init__(self, *, session: Any, params: TransportParams) -> None:
        super().__init__(params)
        self._session = session

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self._session.clear_audio()  # barge-in: the patient talks, the bot goes quiet now
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if getattr(self._session, "closed", False):
            return False
        await self._session.send_audio(frame.audio)
        return True


class AudioSocketTransport(BaseTransport):
    """One call's transport. ``on_hangup`` is awaited when the caller's leg ends."""

    def __init__(self, *, session: Any, on_hangup: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        rate = int(session.sample_rate)
        self._params = TransportParams(
            audio_in_enabled=True, audio_in_sample_rate=rate, audio_in_channels=1,
            audio_out_enabled=True, audio_out_sample_rate=rate, audio_out_channels=1,
            audio_out_auto_silence=False, audio_out_end_silence_secs=0,
            audio_out_10ms_chunks=2)
        self._input = _Input(session=session, params=self._params, on_hangup=on_hangup)
        self._output = _Output(session=session, params=self._params)

    def input(self) -> FrameProcessor:
        return self._input

    def output(self) -> FrameProcessor:
        return self._output
