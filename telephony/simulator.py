"""A caller on a phone line: an AudioSocket *client* that plays the patient.

It connects like Asterisk does (UUID frame first, then a 20 ms audio frame every
20 ms, silence when the patient is quiet), waits for the bot to finish speaking
before each patient turn, streams the turn at real time, records both sides to a
stereo WAV (left patient, right bot) and measures what the caller hears:
voice-to-voice latency (end of the patient's speech -> first bot audio) and how
long the bot spoke. Used by ``twin demo``, ``twin call --wav``, the end-to-end
tests and the latency bench.

Example::

    sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000)
    rec = await sim.run([PatientTurn(wav=Path("hello.wav"))], record_to=Path("call.wav"))
    for t in rec.turns:
        print(t.index, t.latency_s, t.bot_speech_s)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from telephony.audio import StereoRecorder, load_wav, rms_dbfs
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

__all__ = ["CallRecording", "CallerSimulator", "PatientTurn", "SimEvent", "TurnResult"]

logger = logging.getLogger(__name__)

FRAME_S = 0.02


@dataclass
class PatientTurn:
    """One thing the patient does: say a WAV file or raw PCM, or press keys."""

    wav: Path | None = None
    pcm: bytes | None = field(default=None, repr=False)  # s16le mono at the call's rate
    dtmf: str = ""  # keys pressed (after the audio, if any), 100 ms apart
    wait_for_bot: bool = True  # wait until the bot finished its turn before speaking
    timeout_s: float = 30.0  # longest wait for the bot's turn to end
    barge_in_after_s: float | None = None  # speak this long after the bot *starts* talking
    label: str = ""
    # A caller asked again repeats themselves: once the bot has answered this turn, say it
    # again while ``repeat_if()`` is true, at most ``max_repeats`` times (the caller does not
    # hear words: the test or demo decides from what the bot said, e.g. its transcript).
    repeat_if: Callable[[], bool] | None = field(default=None, repr=False)
    max_repeats: int = 1

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.wav is not None:
            return Path(self.wav).name
        if self.pcm is not None:
            return f"pcm {len(self.pcm)} bytes"
        return f"dtmf {self.dtmf}"


@dataclass
class SimEvent:
    """Progress report: ``kind`` in bot_speech_start, bot_speech_end, patient_start,
    patient_end, dtmf, turn_timeout, bot_hangup, hangup; ``t`` seconds since connect."""

    kind: str
    t: float
    turn: int | None = None
    detail: str = ""


@dataclass
class TurnResult:
    index: int
    source: str
    patient_start_s: float | None = None  # seconds since connect
    patient_end_s: float | None = None  # the turn's audio (incl. trailing silence) was sent
    patient_speech_end_s: float | None = None  # its last non-silent 20 ms frame was sent
    bot_turn_ended: bool = True  # False: we spoke after timeout_s without the bot finishing
    barged_in: bool = False  # we spoke while the bot was talking
    bot_first_audio_s: float | None = None  # first non-silent bot frame after patient_end
    bot_last_audio_s: float | None = None
    bot_overlaps: int = 0  # the bot spoke in a pause, then the patient went on speaking

    @property
    def speech_end_s(self) -> float | None:
        return self.patient_speech_end_s if self.patient_speech_end_s is not None \
            else self.patient_end_s

    @property
    def latency_s(self) -> float | None:
        """Voice-to-voice latency as heard by the caller: end of the patient's speech
        (last non-silent frame) -> first non-silent bot frame after it."""
        end = self.speech_end_s
        if self.bot_first_audio_s is None or end is None:
            return None
        return self.bot_first_audio_s - end

    @property
    def bot_speech_s(self) -> float | None:
        if self.bot_first_audio_s is None or self.bot_last_audio_s is None:
            return None
        return self.bot_last_audio_s - self.bot_first_audio_s + FRAME_S

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "source": self.source,
                "patient_start_s": self.patient_start_s, "patient_end_s": self.patient_end_s,
                "patient_speech_end_s": self.patient_speech_end_s,
                "bot_overlaps": self.bot_overlaps,
                "bot_turn_ended": self.bot_turn_ended, "barged_in": self.barged_in,
                "bot_first_audio_s": self.bot_first_audio_s, "latency_s": self.latency_s,
                "bot_speech_s": self.bot_speech_s}


@dataclass
class CallRecording:
    path: Path
    call_id: str
    sample_rate: int
    turns: list[TurnResult]
    duration_s: float
    ended_by: str  # "simulator" (we hung up), "bot" (0x00 or socket closed), "error: ..."
    greeting_s: float | None = None  # when the bot first spoke (seconds since connect)
    bot_frames: int = 0
    bot_frame_gaps: int = 0  # bot frames that arrived > 100 ms after the previous one
    max_bot_gap_s: float = 0.0  # longest time without any frame from the bot


class CallerSimulator:
    """Plays the patient over a real TCP AudioSocket connection."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sample_rate: int = 8000,
        call_id: str | None = None,
        end_of_turn_silence_s: float = 1.0,
        speech_threshold_dbfs: float = -45.0,
        hangup_after: bool = True,
        final_timeout_s: float = 30.0,
        barge_in_after_s: float | None = None,
        connect_timeout_s: float = 5.0,
        on_event: Callable[[SimEvent], None] | None = None,
    ) -> None:
        audio_kind_for(sample_rate)  # validates the rate
        self.host = host
        self.port = port
        self.sample_rate = sample_rate
        self.call_id = call_id or str(uuid.uuid4())
        self.end_of_turn_silence_s = end_of_turn_silence_s
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self.hangup_after = hangup_after
        self.final_timeout_s = final_timeout_s
        self.barge_in_after_s = barge_in_after_s
        self.connect_timeout_s = connect_timeout_s
        self.on_event = on_event
        self._reset()

    def _reset(self) -> None:
        """Live state of one run."""
        self._t0 = 0.0
        self._since = 0.0  # end of the patient's last turn: the bot's turn starts after it
        self._bot_speaking = False
        self._bot_speech_start: float | None = None
        self._last_bot_speech: float | None = None
        self._first_bot_speech: float | None = None
        self._bot_gone = asyncio.Event()
        self._bot_activity = asyncio.Event()
        self._out = bytearray()
        self._out_done = asyncio.Event()
        self._dtmf: list[str] = []
        self._current: TurnResult | None = None
        self._results: list[TurnResult] = []

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    def _emit(self, kind: str, detail: str = "") -> None:
        turn = self._current.index if self._current is not None else None
        if self.on_event is not None:
            try:
                self.on_event(SimEvent(kind=kind, t=self._now(), turn=turn, detail=detail))
            except Exception:
                logger.exception("on_event callback failed")

    def _load(self, turn: PatientTurn) -> bytes:
        if turn.pcm is not None:
            if len(turn.pcm) % 2:
                raise ValueError(f"turn {turn.describe()}: PCM length {len(turn.pcm)} is odd")
            return turn.pcm
        if turn.wav is not None:
            return load_wav(turn.wav, self.sample_rate)
        if not turn.dtmf:
            raise ValueError("a PatientTurn needs wav, pcm or dtmf")
        return b""

    async def run(self, turns: Sequence[PatientTurn], *, record_to: Path) -> CallRecording:
        """Place the call, play every turn, return timings and the stereo recording."""
        audio = [await asyncio.to_thread(self._load, t) for t in turns]  # errors before dialing
        loop = asyncio.get_running_loop()
        self._reset()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout=self.connect_timeout_s)
        self._t0 = loop.time()
        rec = StereoRecorder(path=Path(record_to), sample_rate=self.sample_rate)
        await asyncio.to_thread(rec.open)
        stats = {"frames": 0, "gaps": 0, "max_gap": 0.0}
        ended_by = "simulator"
        writer.write(encode(Frame.for_uuid(self.call_id)))
        sender = asyncio.create_task(self._send_loop(writer, rec))
        receiver = asyncio.create_task(self._recv_loop(reader, rec, stats))
        try:
            index = 0
            for turn, pcm in zip(turns, audio, strict=True):
                repeats = 0
                while not self._bot_gone.is_set():
                    self._current = TurnResult(index=index, source=turn.describe())
                    self._results.append(self._current)
                    index += 1
                    await self._wait_for_bot(turn)
                    if self._bot_gone.is_set():
                        break
                    await self._speak(turn, pcm)
                    if turn.repeat_if is None or repeats >= turn.max_repeats:
                        break
                    await self._wait_for_bot(turn)  # the bot's answer to this turn
                    if self._bot_gone.is_set() or not turn.repeat_if():
                        break
                    repeats += 1
                    self._emit("repeat", turn.describe())
                if self._bot_gone.is_set():
                    break
            await self._wait_for_bot(PatientTurn(pcm=b"", timeout_s=self.final_timeout_s))
            if self._bot_gone.is_set():
                ended_by = "bot"
        except ConnectionError as exc:
            ended_by = f"error: {exc}"
        finally:
            if receiver.done() and receiver.exception() is not None:
                ended_by = f"error: {receiver.exception()}"
            if self.hangup_after and not self._bot_gone.is_set():
                with contextlib.suppress(Exception):
                    self._emit("hangup")
                    writer.write(encode(Frame.hangup()))
                    await writer.drain()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
            await asyncio.to_thread(rec.close)
        return CallRecording(
            path=Path(record_to), call_id=self.call_id, sample_rate=self.sample_rate,
            turns=self._results, duration_s=self._now(), ended_by=ended_by,
            greeting_s=self._first_bot_speech, bot_frames=int(stats["frames"]),
            bot_frame_gaps=int(stats["gaps"]), max_bot_gap_s=float(stats["max_gap"]))

    # -- waiting for the bot ------------------------------------------------------------

    async def _wait_for_bot(self, turn: PatientTurn) -> None:
        """Until the bot spoke and then stayed silent ``end_of_turn_silence_s``
        (or started speaking + ``barge_in_after_s`` for a barge-in turn)."""
        cur = self._current
        since = self._since
        barge = turn.barge_in_after_s if turn.barge_in_after_s is not None else self.barge_in_after_s
        if not turn.wait_for_bot and barge is None:
            return
        deadline = self._now() + turn.timeout_s
        while not self._bot_gone.is_set():
            now = self._now()
            spoke = self._last_bot_speech is not None and self._last_bot_speech >= since
            if barge is not None and self._bot_speaking and self._bot_speech_start is not None:
                if now - self._bot_speech_start >= barge:
                    if cur is not None:
                        cur.barged_in = True
                    return
            elif (barge is None and spoke and not self._bot_speaking
                  and self._last_bot_speech is not None
                  and now - self._last_bot_speech >= self.end_of_turn_silence_s):
                return
            if now >= deadline:
                if cur is not None:
                    cur.bot_turn_ended = False
                self._emit("turn_timeout", f"bot turn did not end within {turn.timeout_s:g} s")
                return
            self._bot_activity.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bot_activity.wait(), timeout=FRAME_S)

    async def _speak(self, turn: PatientTurn, pcm: bytes) -> None:
        cur = self._current
        assert cur is not None
        if pcm:
            cur.patient_start_s = self._now()
            self._emit("patient_start", turn.describe())
            self._out_done.clear()
            self._out += pcm
            await self._out_done.wait()
        for d in turn.dtmf:
            self._dtmf.append(d)
            await asyncio.sleep(0.1)
        cur.patient_end_s = self._now()
        self._since = cur.patient_end_s
        if cur.patient_start_s is None:
            cur.patient_start_s = cur.patient_end_s
        self._emit("patient_end", turn.describe())

    # -- the line -----------------------------------------------------------------------

    async def _send_loop(self, writer: asyncio.StreamWriter, rec: StereoRecorder) -> None:
        loop = asyncio.get_running_loop()
        n = frame_bytes(self.sample_rate)
        kind = audio_kind_for(self.sample_rate)
        next_t = loop.time()
        while True:
            while self._dtmf:
                d = self._dtmf.pop(0)
                writer.write(encode(Frame.dtmf(d)))
                self._emit("dtmf", d)
            chunk = bytes(self._out[:n])
            del self._out[:n]
            if len(chunk) < n:
                chunk += b"\x00" * (n - len(chunk))
            writer.write(encode(Frame(kind, chunk)))
            await writer.drain()
            rec.add_caller(chunk)
            cur = self._current
            if (cur is not None and cur.patient_start_s is not None and cur.patient_end_s is None
                    and rms_dbfs(chunk) > self.speech_threshold_dbfs):
                cur.patient_speech_end_s = self._now()  # its last speech frame left now
                if cur.bot_first_audio_s is not None:  # the bot had started in a pause
                    cur.bot_first_audio_s = cur.bot_last_audio_s = None
                    cur.bot_overlaps += 1
            if not self._out:
                self._out_done.set()
            next_t += FRAME_S
            now = loop.time()
            if now - next_t > 0.1:
                next_t = now
            await asyncio.sleep(max(0.0, next_t - now))

    async def _recv_loop(self, reader: asyncio.StreamReader, rec: StereoRecorder,
                         stats: dict[str, float]) -> None:
        last_frame: float | None = None
        try:
            while True:
                frame = await read_frame(reader)
                now = self._now()
                if frame is None or frame.kind in (Kind.HANGUP, Kind.ERROR):
                    what = "socket closed" if frame is None else frame.kind.name.lower()
                    self._emit("bot_hangup", what)
                    return
                if frame.kind not in AUDIO_KINDS:
                    continue
                if sample_rate_for(frame.kind) != self.sample_rate:
                    raise ProtocolError(f"bot sent {sample_rate_for(frame.kind)} Hz audio in a "
                                        f"{self.sample_rate} Hz call")
                if last_frame is not None:
                    gap = now - last_frame
                    stats["max_gap"] = max(stats["max_gap"], gap)
                    if gap > 0.1:
                        stats["gaps"] += 1
                last_frame = now
                stats["frames"] += 1
                rec.add_bot(frame.payload)
                self._on_bot_audio(frame.payload, now)
        finally:
            self._bot_gone.set()
            self._bot_activity.set()
            self._out_done.set()

    def _on_bot_audio(self, pcm: bytes, now: float) -> None:
        speech = rms_dbfs(pcm) > self.speech_threshold_dbfs
        if speech:
            if self._first_bot_speech is None:
                self._first_bot_speech = now
            self._last_bot_speech = now
            if not self._bot_speaking:
                self._bot_speaking = True
                self._bot_speech_start = now
                self._emit("bot_speech_start")
            # the bot answers the latest turn the patient has started
            cur = next((t for t in reversed(self._results) if t.patient_start_s is not None),
                       None)
            end = cur.speech_end_s if cur is not None else None
            if cur is not None and end is not None and now >= end:
                if cur.bot_first_audio_s is None:
                    cur.bot_first_audio_s = now
                cur.bot_last_audio_s = now
        elif self._bot_speaking and self._last_bot_speech is not None and \
                now - self._last_bot_speech >= 0.3:
            self._bot_speaking = False
            self._emit("bot_speech_end")
        self._bot_activity.set()
