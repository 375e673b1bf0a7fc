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

Asterisk forwards only the frames the channel delivers: a trunk with silence
suppression or a caller on hold sends nothing for seconds. The session then feeds
the handler silence at real time (``caller_gap_fill_ms``), so the end of speech is
still detected and the recording stays aligned; only minutes without any frame
(``caller_idle_timeout_s``) hand the caller to a human. A dead peer is detected by
TCP (the server sets ``TCP_USER_TIMEOUT`` and keepalives), not by the caller's silence.

Ending the bot's leg (:meth:`CallSession.hangup`, :meth:`CallSession.handoff`) first
lets the queued words and a short tail of silence (``end_tail_ms``) reach the line,
so the far end's jitter buffer plays the last syllable before Asterisk hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
from telephony.handoff_labels import french_summary, handoff_label

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
FRAME_S = FRAME_MS / 1000.0
GAP_GRACE_S = 0.01


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
    label: str = ""  # the reason in French words, as the secretaries read it


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
    caller_gap_fill_ms: float = field(default=0.0, metadata={
        "help": "When the caller's audio frames stop for this long (silence suppression, "
                "hold), feed the handler silence at real time until they resume; 0: off. "
                "twin serve, which faces a real Asterisk, uses 200 ms; an in-process caller "
                "simulator starved of CPU makes holes of its own, which must not be filled."})
    caller_idle_timeout_s: float = field(default=300.0, metadata={
        "help": "No frame at all from the peer for this long: the caller is handed to a "
                "human (reason caller_silent). Asterisk forwards only what the channel "
                "delivers, so seconds of nothing are normal; a dead peer is found by TCP."})
    end_tail_ms: float = field(default=300.0, metadata={
        "help": "Silence sent after the bot's last words before the hangup frame, so the "
                "far end's jitter buffer plays them out before Asterisk hangs up."})
    end_play_timeout_s: float = field(default=10.0, metadata={
        "help": "Longest wait for queued bot audio to be sent when the bot ends its leg."})


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
        self.frames_filled = 0  # silence frames fed to the handler in the caller's gaps
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
        self._leg_ended = False  # the hangup frame is written: nothing may follow it
        self._bot_spoke = False  # any bot audio queued: its end needs a tail of silence
        self._fill_clock = 0.0  # caller audio (real or filled) delivered up to this time
        self._last_audio = 0.0  # when the caller's last real audio frame arrived

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

    def stop_recording(self) -> bool:
        """The caller objected to being recorded: stop now and delete what was written
        (idempotent). True if a recording was deleted."""
        rec, path = self._recorder, self.recording_path
        self._recorder, self.recording_path = None, None
        if rec is not None and not rec.closed:
            with contextlib.suppress(OSError):
                rec.close()
        if path is None:
            return False
        Path(path).unlink(missing_ok=True)
        logger.info("call %s: recording stopped and deleted at the caller's request", self.call_id)
        return True

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
            with contextlib.suppress(RuntimeError):  # no loop: frames fed before start()
                self._last_audio = self._fill_clock = asyncio.get_running_loop().time()
            self._deliver_audio(frame.payload)
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

    def _deliver_audio(self, pcm: bytes) -> None:
        if self._recorder is not None:
            self._recorder.add_caller(pcm)
        if self._audio_queued >= self._opt.event_queue_frames:
            return  # slow handler: drop caller audio, never the control events
        self._audio_queued += 1
        self._events.put_nowait(AudioIn(pcm))

    def _fill_gap(self, now: float) -> None:
        """The caller's frames stopped: deliver silence up to ``now``, at real time."""
        frames = int((now - self._fill_clock) / FRAME_S)
        if frames <= 0:
            return
        self._fill_clock += frames * FRAME_S
        silence = bytes(frame_bytes(self.sample_rate, FRAME_MS))
        for _ in range(frames):
            self._deliver_audio(silence)
        self.frames_filled += frames

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
        loop = asyncio.get_running_loop()
        idle = self._opt.caller_idle_timeout_s
        gap = self._opt.caller_gap_fill_ms / 1000.0
        last_frame = loop.time()
        if not self.frames_in:
            self._last_audio = self._fill_clock = last_frame
        # One read in flight at a time, never cancelled mid-frame: waiting on it with a
        # timeout lets the gap filler run without losing half a frame.
        pending: asyncio.Task[Frame | None] | None = None
        try:
            while not self.closed:
                if pending is None:
                    pending = asyncio.ensure_future(read_frame(self._reader))
                now = loop.time()
                in_gap = gap > 0 and now - self._last_audio >= gap
                wait = FRAME_S if in_gap else (gap if gap > 0 else idle)
                wait = max(0.001, min(wait, last_frame + idle - now))
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if not done:
                    # A stall of this process looks like a gap too: let frames that are
                    # already on the socket be read before calling it silence.
                    done, _ = await asyncio.wait({pending}, timeout=GAP_GRACE_S)
                now = loop.time()
                if not done:
                    if now - last_frame >= idle:
                        await self._caller_idle(idle)
                        return
                    if gap > 0 and now - self._last_audio >= gap:
                        self._fill_gap(now)
                    continue
                frame = pending.result()
                pending = None
                last_frame = now
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
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _caller_idle(self, idle: float) -> None:
        """Minutes without a single frame while the connection is alive: a caller left on
        hold, or a line that carries nothing. A human takes it over (never a cut)."""
        logger.warning("call %s: no frame from %s for %g s; handing the call to a human",
                       self.call_id, self.remote, idle)
        await self.handoff(reason="caller_silent",
                           summary=f"Aucun son de l'appelant depuis {idle:.0f} s")

    # -- bot side -----------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        """Queue bot audio (s16le mono at ``sample_rate``); returns once less than
        ``backpressure_ms`` is left queued, so a producer runs at real time.
        Audio sent after the call ended is dropped."""
        if self.closed or not pcm:
            return
        self._out += pcm[: len(pcm) // 2 * 2]
        self._bot_spoke = True
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

    async def _write(self, data: bytes, *, final: bool = False) -> bool:
        """Write one frame; after the final (hangup/error) frame nothing more is sent."""
        async with self._write_lock:
            if self._leg_ended:
                return False
            if final:
                self._leg_ended = True
            self._writer.write(data)
            await self._writer.drain()
            return True

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
                if not await self._write(encode(Frame(audio_kind_for(self.sample_rate), chunk))):
                    break
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
        (so the dialplan hangs up instead of queueing) while the queued words and
        ``end_tail_ms`` of silence are sent, then the hangup frame, and closes the
        connection. Idempotent; a no-op after the caller left."""
        if self._hangup_sent or self.closed:
            return
        await asyncio.gather(self._set_variables({"TWIN_OUTCOME": "done"}), self._play_out())
        await self._end_leg()

    async def _play_out(self) -> None:
        """Until the queued bot audio and a tail of silence have been written (paced at
        real time by the writer), the call ended, or ``end_play_timeout_s``."""
        if self.closed or self._hangup_sent or not self._tasks or not self._bot_spoke:
            return
        try:
            async with asyncio.timeout(self._opt.end_play_timeout_s):
                while not self.closed and self._out:
                    await self._drained.wait()
                    if self._out:  # more was queued meanwhile
                        self._drained.clear()
                target = self.frames_out + math.ceil(self._opt.end_tail_ms / FRAME_MS)
                while not self.closed and self.frames_out < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            logger.warning("call %s: %.0f ms of bot audio not sent before ending the leg",
                           self.call_id, self.queued_ms())

    async def _end_leg(self) -> None:
        if self._hangup_sent:
            return
        self._hangup_sent = True
        if not self.closed:
            with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._write(encode(Frame.hangup()), final=True),
                                       timeout=1.0)
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
            await asyncio.wait_for(self._write(encode(Frame.error(0)), final=True), timeout=1.0)
        with contextlib.suppress(Exception):
            self._writer.close()

    async def handoff(self, *, reason: str, summary: str) -> None:
        """Hand the caller to a human: record the request, set ``TWIN_OUTCOME=handoff``,
        ``TWIN_HANDOFF_REASON`` (the code), ``TWIN_HANDOFF_LABEL`` (the reason in French
        words, for the desk phone) and ``TWIN_HANDOFF_SUMMARY`` through call control while
        the queued words play out, then end the bot's leg so the dialplan continues to the
        secretaries' queue (the dialplan queues any call whose outcome is not ``done``, so
        this works without AMI too). Never raises for backend trouble."""
        reason_v = _one_line(reason, 64) or "unspecified"
        label = handoff_label(reason_v)
        summary_v = _one_line(french_summary(summary), self._opt.summary_max_chars)
        ok = False
        if not self.closed and not self._hangup_sent:
            ok, _ = await asyncio.gather(self._set_variables({
                "TWIN_OUTCOME": "handoff",
                "TWIN_HANDOFF_REASON": reason_v,
                "TWIN_HANDOFF_LABEL": label,
                "TWIN_HANDOFF_SUMMARY": summary_v,
            }), self._play_out())
        if self.handoff_request is None:  # the first reason given is the one that counts
            self.handoff_request = HandoffRequest(reason=reason_v, summary=summary_v,
                                                  at=time.time(), variables_set=ok, label=label)
        logger.info("call %s: handoff to a human (%s)", self.call_id, reason_v)
        await self._end_leg()
