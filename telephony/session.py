"""One AudioSocket call: caller events in, paced bot audio out, recording, handoff.

The server creates a :class:`CallSession` per accepted connection once the
UUID frame has arrived, calls :meth:`CallSession.start`, runs the call handler,
then :meth:`CallSession.close`. A handler only uses the public API:

* ``async for event in session.events()`` -> :class:`AudioIn`, :class:`Dtmf`,
  and always exactly one final :class:`Hangup` (caller hung up, socket closed,
  protocol error, or the bot hung up);
* ``await session.send_audio(pcm)`` (backpressure at real time),
  ``session.clear_audio()`` (barge-in), ``await session.wait_played()``;
* ``await session.handoff(reason=..., summary=...)`` and ``await session.hangup()``.

While nothing is queued the writer sends silence frames every 20 ms: Asterisk
drops an AudioSocket call after 2 s without frames, and a caller must never hear
a dead line while the bot thinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from telephony.audio import StereoRecorder
from telephony.audiosocket import (
    AUDIO_KINDS,
    Frame,
    Kind,
    ProtocolError,
    audio_kind_for,
    encode,
    frame_bytes,
    read_frame,
    sample_rate_for,
)

__all__ = [
    "AudioIn",
    "CallControl",
    "CallEvent",
    "CallSession",
    "Dtmf",
    "HandoffRequest",
    "Hangup",
    "NullCallControl",
    "SessionOptions",
]

logger = logging.getLogger(__name__)

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AudioIn:
    """Caller audio: s16le mono at ``session.sample_rate`` (usually 20 ms)."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller pressed: one of ``0-9 * # A-D``."""

    digit: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """The call is over; ``reason`` says why (``caller hangup``, ``socket closed``...)."""

    reason: str


CallEvent = AudioIn | Dtmf | Hangup


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """What the bot asked for when it handed the call to a human."""

    reason: str
    summary: str
    at: float  # time.time()
    variables_set: bool  # the call-control backend accepted the channel variables


class CallControl(Protocol):
    """Call control for handoff (the AMI client implements it; tests use fakes)."""

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        """Set channel variables on the call's channel; False if it could not."""
        ...


class NullCallControl:
    """No AMI configured: handoff only ends the bot's leg (the dialplan continues)."""

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        logger.debug("call %s: no call control configured; variables not set: %s",
                    call_id, dict(variables))
        return False


@dataclass
class SessionOptions:
    """Tuning of a call session."""

    backpressure_ms: float = field(default=100.0, metadata={
        "help": "send_audio() returns once less than this much bot audio is queued."})
    event_queue_frames: int = field(default=1500, metadata={
        "help": "Caller events buffered for a slow handler (1500 = 30 s of 20 ms audio); "
                "older audio is dropped beyond that, never DTMF or hangup."})
    handoff_timeout_s: float = field(default=3.0, metadata={
        "help": "How long handoff() waits for the call-control backend before ending the leg."})
    summary_max_chars: int = field(default=200, metadata={
        "help": "Longest handoff summary put in a channel variable (one line)."})
    caller_idle_timeout_s: float = field(default=10.0, metadata={
        "help": "End the call when the peer sends no frame at all for this long (Asterisk "
                "sends audio every 20 ms; a silent peer is a dead or rogue connection)."})


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class CallSession:
    """One call on one AudioSocket connection."""

    def __init__(
        self,
        *,
        call_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        remote: str = "",
        sample_rate: int = 8000,
        recording_path: Path | None = None,
        control: CallControl | None = None,
        options: SessionOptions | None = None,
    ) -> None:
        self.call_id = call_id
        self.remote = remote
        self.sample_rate = sample_rate
        self.recording_path = recording_path
        self.caller_number: str | None = None
        self.channel: str | None = None
        self.handoff_request: HandoffRequest | None = None
        self.hangup_reason: str | None = None
        self.started_at = time.time()
        self.frames_in = 0
        self.frames_out = 0
        self.dtmf_digits: list[str] = []
        self._reader = reader
        self._writer = writer
        self._control: CallControl = control or NullCallControl()
        self._opt = options or SessionOptions()
        self._out = bytearray()
        self._drained = asyncio.Event()
        self._drained.set()
        self._progress = asyncio.Event()
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._audio_queued = 0
        self._closed = asyncio.Event()
        self._hangup_sent = False
        self._tasks: list[asyncio.Task[None]] = []
        self._recorder: StereoRecorder | None = None
        self._rate_fixed = False
        self._hangup_delivered = False
        self._write_lock = asyncio.Lock()

    # -- lifecycle (the server calls these) -------------------------------------------------

    async def start(self, first_frames: list[Frame] | None = None) -> None:
        """Start the reader and the paced writer. ``first_frames`` were read before the
        session existed (after the UUID); the first audio frame fixes the sample rate."""
        for frame in first_frames or []:
            self._fix_rate(frame)
        if self.recording_path is not None:
            rec = StereoRecorder(path=self.recording_path, sample_rate=self.sample_rate)
            try:
                await asyncio.to_thread(rec.open)
                self._recorder = rec
            except OSError:
                logger.exception("call %s: cannot open recording %s", self.call_id,
                                 self.recording_path)
        for frame in first_frames or []:
            self._on_frame(frame)
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"audiosocket-read-{self.call_id}"),
            asyncio.create_task(self._write_loop(), name=f"audiosocket-write-{self.call_id}"),
        ]

    async def close(self) -> None:
        """Stop everything, finalise the recording, close the socket (idempotent)."""
        self._mark_closed("closed")
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._recorder is not None and not self._recorder.closed:
            try:
                await asyncio.to_thread(self._recorder.close)
            except OSError:
                logger.exception("call %s: cannot finalise recording", self.call_id)
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), timeout=1.0)

    # -- state --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def queued_ms(self) -> float:
        """Milliseconds of bot audio still waiting to be sent."""
        return len(self._out) / 2 / self.sample_rate * 1000.0

    # -- caller side ------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[CallEvent]:
        """Caller events until the call ends; the last one is always a :class:`Hangup`."""
        while not self._hangup_delivered:
            event = await self._events.get()
            if isinstance(event, AudioIn):
                self._audio_queued -= 1
            if isinstance(event, Hangup):
                self._hangup_delivered = True
            yield event

    def _fix_rate(self, frame: Frame) -> None:
        if frame.kind in AUDIO_KINDS and not self._rate_fixed:
            self._rate_fixed = True
            self.sample_rate = sample_rate_for(frame.kind)

    def _on_frame(self, frame: Frame) -> bool:
        """Handle one caller frame; False when the call is over."""
        kind = frame.kind
        if kind in AUDIO_KINDS:
            self._fix_rate(frame)
            rate = sample_rate_for(kind)
            if rate != self.sample_rate:
                raise ProtocolError(
                    f"audio kind 0x{int(kind):02x} ({rate} Hz) in a {self.sample_rate} Hz call")
            self.frames_in += 1
            if self._recorder is not None:
                self._recorder.add_caller(frame.payload)
            if self._audio_queued >= self._opt.event_queue_frames:
                return True  # slow handler: drop caller audio, never the control events
            self._audio_queued += 1
            self._events.put_nowait(AudioIn(frame.payload))
        elif kind is Kind.DTMF:
            self.dtmf_digits.append(frame.digit)
            logger.info("call %s: DTMF %s", self.call_id, frame.digit)
            self._events.put_nowait(Dtmf(frame.digit))
        elif kind is Kind.HANGUP:
            self._finish("caller hangup")
            return False
        elif kind is Kind.ERROR:
            code = frame.error_code
            self._finish(f"asterisk error {code if code is not None else '?'}")
            return False
        elif kind is Kind.UUID:
            logger.warning("call %s: ignoring a second UUID frame", self.call_id)
        return True

    def _finish(self, reason: str) -> None:
        if self.hangup_reason is None:
            self.hangup_reason = reason
            self._events.put_nowait(Hangup(reason))
        self._mark_closed(reason)

    def _mark_closed(self, reason: str) -> None:
        if self.hangup_reason is None:
            self.hangup_reason = reason
            self._events.put_nowait(Hangup(reason))
        self._closed.set()
        self._drained.set()
        self._progress.set()

    async def _read_loop(self) -> None:
        try:
            idle = self._opt.caller_idle_timeout_s
            while not self.closed:
                try:
                    frame = await asyncio.wait_for(read_frame(self._reader), timeout=idle)
                except TimeoutError:
                    logger.error("call %s: no frame from %s for %.0f s; ending the call",
                                 self.call_id, self.remote, idle)
                    self._finish(f"no frames for {idle:g} s")
                    await self._send_error_and_close()
                    return
                if frame is None:
                    self._finish("socket closed")
                    return
                if not self._on_frame(frame):
                    return
        except ProtocolError as exc:
            logger.error("call %s: AudioSocket protocol error from %s: %s",
                         self.call_id, self.remote, exc)
            self._finish(f"protocol error: {exc}")
            await self._send_error_and_close()
        except (ConnectionError, OSError) as exc:
            logger.info("call %s: connection lost: %s", self.call_id, exc)
            self._finish("socket closed")
        except Exception:  # a bug here must end this call cleanly, not hang it
            logger.exception("call %s: reader failed", self.call_id)
            self._finish("internal error")
            await self._send_error_and_close()

    # -- bot side -----------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        """Queue bot audio (s16le mono at ``sample_rate``); returns once less than
        ``backpressure_ms`` is left queued, so a producer runs at real time.
        Audio sent after the call ended is dropped."""
        if self.closed or not pcm:
            return
        self._out += pcm[: len(pcm) // 2 * 2]
        self._drained.clear()
        while not self.closed and self.queued_ms() >= self._opt.backpressure_ms:
            self._progress.clear()
            await self._progress.wait()

    def clear_audio(self) -> None:
        """Barge-in: drop all queued bot audio now."""
        if self._out:
            logger.debug("call %s: barge-in, dropping %.0f ms", self.call_id, self.queued_ms())
        self._out.clear()
        self._drained.set()
        self._progress.set()

    async def wait_played(self) -> None:
        """Until every queued bot frame has been sent (or the call ended)."""
        await self._drained.wait()

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            self._writer.write(data)
            await self._writer.drain()

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        try:
            while not self.closed:
                n = frame_bytes(self.sample_rate, FRAME_MS)
                chunk = bytes(self._out[:n])
                del self._out[:n]
                if len(chunk) < n:
                    chunk += b"\x00" * (n - len(chunk))  # silence keep-alive / padding
                await self._write(encode(Frame(audio_kind_for(self.sample_rate), chunk)))
                self.frames_out += 1
                if self._recorder is not None:
                    self._recorder.add_bot(chunk)
                if not self._out:
                    self._drained.set()
                self._progress.set()
                next_t += FRAME_MS / 1000.0
                now = loop.time()
                if now - next_t > 0.1:  # we fell behind (CPU stall): do not burst
                    next_t = now
                await asyncio.sleep(max(0.0, next_t - now))
        except (ConnectionError, OSError) as exc:
            logger.info("call %s: cannot send audio: %s", self.call_id, exc)
            self._finish("socket closed")
        except Exception:
            logger.exception("call %s: writer failed", self.call_id)
            self._finish("internal error")
            await self._send_error_and_close()

    # -- ending the bot's leg ----------------------------------------------------------------

    async def hangup(self) -> None:
        """The bot ends the call normally: sets ``TWIN_OUTCOME=done`` through call control
        (so the dialplan hangs up instead of queueing), sends the hangup frame and closes
        the connection. Idempotent; a no-op after the caller left."""
        if self._hangup_sent or self.closed:
            return
        await self._set_variables({"TWIN_OUTCOME": "done"})
        await self._end_leg()

    async def _end_leg(self) -> None:
        if self._hangup_sent:
            return
        self._hangup_sent = True
        if not self.closed:
            with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._write(encode(Frame.hangup())), timeout=1.0)
        self._mark_closed("hangup by bot")
        with contextlib.suppress(Exception):
            self._writer.close()

    async def _set_variables(self, variables: dict[str, str]) -> bool:
        try:
            return bool(await asyncio.wait_for(
                self._control.set_call_variables(self.call_id, variables),
                timeout=self._opt.handoff_timeout_s))
        except Exception as exc:
            logger.error("call %s: channel variables %s not set (%s: %s)", self.call_id,
                         sorted(variables), type(exc).__name__, exc)
            return False

    async def _send_error_and_close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(encode(Frame.error(0))), timeout=1.0)
        with contextlib.suppress(Exception):
            self._writer.close()

    async def handoff(self, *, reason: str, summary: str) -> None:
        """Hand the caller to a human: record the request, set ``TWIN_OUTCOME=handoff``,
        ``TWIN_HANDOFF_REASON`` and ``TWIN_HANDOFF_SUMMARY`` through call control, then end
        the bot's leg so the dialplan continues to the secretaries' queue (the dialplan
        queues any call whose outcome is not ``done``, so this works without AMI too).
        Never raises for backend trouble."""
        reason_v = _one_line(reason, 64) or "unspecified"
        summary_v = _one_line(summary, self._opt.summary_max_chars)
        ok = False
        if not self.closed and not self._hangup_sent:
            ok = await self._set_variables({
                "TWIN_OUTCOME": "handoff",
                "TWIN_HANDOFF_REASON": reason_v,
                "TWIN_HANDOFF_SUMMARY": summary_v,
            })
        self.handoff_request = HandoffRequest(reason=reason_v, summary=summary_v,
                                              at=time.time(), variables_set=ok)
        logger.info("call %s: handoff to a human (%s)", self.call_id, reason_v)
        await self._end_leg()
