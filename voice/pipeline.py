"""The per-call pipecat pipeline and its latency probe.

    AudioSocket in → Whisper STT → user turn (Silero VAD + smart-turn v3)
      → CallAgent (safety rules, LLM, tools) → TTS, sentence by sentence → AudioSocket out

The agent sits where pipecat's LLM service usually sits: it receives the
aggregated user turn and streams text frames, so pipecat's sentence aggregation,
TTS and interruption handling work unchanged, while the tool loop and the safety
rules stay deterministic and ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voice.agent import CallAgent, Handoff
from voice.vad import PauseAwareVAD

try:
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        CancelFrame,
        EndFrame,
        Frame,
        InputDTMFFrame,
        InterruptionFrame,
        LLMContextFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMTextFrame,
        StartFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
        UserStoppedSpeakingFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.observers.base_observer import BaseObserver, FramePushed
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMUserAggregator,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner
except ModuleNotFoundError as e:  # pragma: no cover - install hint
    raise ImportError(f"voice.pipeline needs pipecat: pip install -e '.[voice]' ({e})") from e

__all__ = ["CallPipeline", "TurnTiming"]

logger = logging.getLogger(__name__)

# Silence the VAD waits for before it calls a speech segment over. smart-turn v3 then decides
# whether the turn is complete (answer now) or not (wait for more, up to the stop timeout), so
# the hangover can be short; the split-utterance hold (below) keeps a paused sentence whole.
VAD_STOP_SECS = 0.2
# How long a turn is held when the VAD hears speech it has not confirmed as a start yet (its
# start_secs is 0.2 s): a confirmed start keeps it held for the whole utterance.
START_CONFIRM_S = 0.3
# No answer sooner than this after the caller's speech ended: a pause inside a sentence ("Je
# suis Paul Girard, … né le …") lasts up to ~0.6 s, and a transcript decoded at the pause's
# onset (voice/stt.py) can be in before the caller goes on. Turns whose transcript takes
# longer (most of them: Whisper's decode is 0.7-0.9 s here) are not delayed at all.
MIN_GAP_S = 0.7


@dataclass
class TurnTiming:
    """Monotonic timestamps of one patient turn, and the latencies derived from them."""

    speech_end: float | None = None  # VAD stop minus the VAD's own hangover
    turn_end: float | None = None  # smart-turn (or the stop timeout) decided the turn is over
    transcript: float | None = None
    llm_first_text: float | None = None
    tts_first_audio: float | None = None
    bot_started: float | None = None
    text: str = ""
    speculative: bool = False  # the transcript was decoded at the pause's onset (voice.stt)

    def _d(self, a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    @property
    def stt_s(self) -> float | None:
        return self._d(self.speech_end, self.transcript)

    @property
    def turn_end_s(self) -> float | None:
        return self._d(self.speech_end, self.turn_end)

    @property
    def llm_s(self) -> float | None:
        return self._d(self.transcript, self.llm_first_text)

    @property
    def tts_s(self) -> float | None:
        return self._d(self.llm_first_text, self.tts_first_audio)

    @property
    def voice_to_voice_s(self) -> float | None:
        return self._d(self.speech_end, self.bot_started)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "stt_s": self.stt_s, "turn_end_s": self.turn_end_s,
                "llm_first_token_s": self.llm_s, "tts_first_audio_s": self.tts_s,
                "voice_to_voice_s": self.voice_to_voice_s, "speculative": self.speculative}

    def log_line(self) -> str:
        """Stage timings from the end of speech, for the call's log (no words)."""
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}s"

        return (f"turn end {f(self.turn_end_s)}, transcript {f(self.stt_s)}, first text "
                f"{f(self._d(self.speech_end, self.llm_first_text))}, first audio "
                f"{f(self._d(self.speech_end, self.tts_first_audio))}, bot speaking "
                f"{f(self.voice_to_voice_s)} ({len(self.text)} chars heard)")


class _LatencyObserver(BaseObserver):
    def __init__(self, *, turns: list[TurnTiming], on_bot_stopped: Callable[[], None],
                 vad_stop_s: float = VAD_STOP_SECS, call_id: str = "") -> None:
        super().__init__()
        self._vad_stop_s = vad_stop_s
        self._call_id = call_id
        self._turn_end: float | None = None
        self._turns = turns
        self._on_bot_stopped = on_bot_stopped
        self._seen: set[int] = set()
        self._pending_end: float | None = None

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if frame.id in self._seen:
            return
        self._seen.add(frame.id)
        now = time.monotonic()
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._pending_end = None
            self._turn_end = None
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._pending_end = now - self._vad_stop_s
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._turn_end = now
            if self._turns and self._turns[-1].turn_end is None \
                    and self._turns[-1].llm_first_text is None:
                self._turns[-1].turn_end = now  # the transcript came first
        elif isinstance(frame, TranscriptionFrame):
            turn = TurnTiming(speech_end=self._pending_end, transcript=now, text=frame.text,
                              turn_end=self._turn_end,
                              speculative=bool(getattr(frame.result, "speculative", False)))
            self._turns.append(turn)
        elif self._turns:
            turn = self._turns[-1]
            if isinstance(frame, LLMTextFrame) and turn.llm_first_text is None:
                turn.llm_first_text = now
            elif isinstance(frame, TTSAudioRawFrame) and turn.tts_first_audio is None and turn.llm_first_text:
                turn.tts_first_audio = now
            elif isinstance(frame, BotStartedSpeakingFrame) and turn.bot_started is None and turn.llm_first_text:
                turn.bot_started = now
                logger.info("call %s: %s", self._call_id, turn.log_line())
        if isinstance(frame, BotStoppedSpeakingFrame):
            self._on_bot_stopped()


class _AgentProcessor(FrameProcessor):
    """Runs the :class:`CallAgent` on each completed user turn and streams its words."""

    def __init__(self, *, agent: CallAgent, on_agent_done: Callable[[], Awaitable[None]],
                 on_text: Callable[[str, str], None] | None = None,
                 stt_segments_done: Callable[[], int] | None = None,
                 caller_active: Callable[[], bool] | None = None,
                 vad_stop_s: float = VAD_STOP_SECS, min_gap_s: float = MIN_GAP_S) -> None:
        super().__init__()
        self._vad_stop_s = vad_stop_s
        self._min_gap_s = min_gap_s
        self._speech_end: float | None = None  # when the caller's last speech ended (monotonic)
        self._stt_segments_done = stt_segments_done
        self._caller_active = caller_active
        self._agent = agent
        self._on_agent_done = on_agent_done
        self._on_text = on_text or (lambda _who, _text: None)
        self._task: asyncio.Task[None] | None = None
        self._spoke = True  # whether any of the current answer was already pushed
        self._user_speaking = False
        self._held_text = ""  # a turn that ended while the patient had already started again
        self._held_timer: asyncio.Task[None] | None = None
        self._vad_stops = 0  # speech segments ended since the bot last started speaking
        self._bot_quiet = asyncio.Event()  # no bot audio playing (Bot*SpeakingFrame upstream)
        self._bot_quiet.set()
        self._dtmf_task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            greeting = self._agent.greeting()
            self._on_text("assistant", greeting)
            await self._speak([greeting])
            self._task = self.create_task(self._agent.warm())
        elif isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            if getattr(frame, "speculation", False):
                return
            text = _last_user_text(frame.context)
            if text:
                await self._on_user_turn(text)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            logger.debug("VAD: user started speaking")
            self._user_speaking = True
            await self._cancel_held_timer()  # still talking: the next transcript covers it all
            await self.push_frame(frame, direction)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            logger.debug("VAD: user stopped speaking")
            self._user_speaking = False
            self._speech_end = time.monotonic() - self._vad_stop_s
            self._vad_stops += 1
            if self._held_text and self._held_timer is None:
                self._held_timer = self.create_task(self._answer_held_later())
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._vad_stops = 0
            self._bot_quiet.clear()
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_quiet.set()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputDTMFFrame):
            await self._on_dtmf(str(frame.button.value))
        elif isinstance(frame, InterruptionFrame):
            await self._cancel()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._cancel()
            await self._cancel_held_timer()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _on_user_turn(self, text: str) -> None:
        """A completed user turn. The end-of-turn detector can close a turn at a pause
        inside a sentence ("Je suis Paul Girard, … né le …"); the transcript then
        arrives while the patient is already talking again. Such a turn is held, not
        answered: the STT re-transcribes the whole utterance when the patient stops."""
        logger.debug("user turn (speaking=%s, stt pending=%s, spoke=%s): %r", self._user_speaking,
                     self._more_speech_pending(), self._spoke, text)
        if not self._spoke:
            # nothing was said in answer to the previous turn: this transcript covers it
            self._agent.retract_last_turn()
        await self._cancel()
        await self._cancel_held_timer()
        if self._user_speaking or self._more_speech_pending():
            logger.debug("holding the turn: the patient is still talking")
            self._held_text = text
            if not self._user_speaking:  # a later segment is being transcribed
                self._held_timer = self.create_task(self._answer_held_later())
            return
        gap = (0.0 if self._speech_end is None
               else self._speech_end + self._min_gap_s - time.monotonic())
        if gap > 0 or (self._caller_active is not None and self._caller_active()):
            # too soon after the speech ended, or the VAD hears speech it has not yet confirmed
            # as a start: the patient may be going on after a pause ("Je suis Paul Girard, …
            # né le …"); hold the turn (a confirmed start keeps it held for the whole
            # utterance) and answer it if the patient stays quiet
            logger.debug("holding the turn %.2f s: the patient may go on", max(gap, START_CONFIRM_S))
            self._held_text = text
            self._held_timer = self.create_task(self._answer_held_later(
                wait_s=gap if gap > 0 else START_CONFIRM_S))
            return
        self._held_text = ""
        self._spoke = False
        self._task = self.create_task(self._respond(text))

    def _more_speech_pending(self) -> bool:
        """Speech segments ended that the STT has not transcribed yet."""
        if self._stt_segments_done is None:
            return False
        return self._vad_stops > self._stt_segments_done()

    async def _answer_held_later(self, wait_s: float = 4.0) -> None:
        """The patient paused again but no new transcript came (noise, a cough, a
        segment that transcribed to nothing): answer the held turn after all."""
        await asyncio.sleep(wait_s)
        if self._caller_active is not None and self._caller_active() and not self._user_speaking:
            await asyncio.sleep(START_CONFIRM_S)  # speech heard at the last moment: confirm it
        self._held_timer = None
        text, self._held_text = self._held_text, ""
        if text and not self._user_speaking:
            self._spoke = False
            self._task = self.create_task(self._respond(text))

    async def _cancel_held_timer(self) -> None:
        if self._held_timer is not None:
            timer, self._held_timer = self._held_timer, None
            if timer is not asyncio.current_task():
                await self.cancel_task(timer)

    async def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            await self.cancel_task(self._task)
        self._task = None

    async def _speak(self, pieces: list[str]) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        for p in pieces:
            await self.push_frame(LLMTextFrame(p))
        await self.push_frame(LLMFullResponseEndFrame())

    async def _respond(self, text: str) -> None:
        self._on_text("patient", text)
        await self.push_frame(LLMFullResponseStartFrame())
        said = ""
        async for piece in self._agent.respond(text):
            said += piece
            self._spoke = True
            await self.push_frame(LLMTextFrame(piece))
        await self.push_frame(LLMFullResponseEndFrame())
        self._on_text("assistant", said.strip())
        if self._agent.ended:
            await self._on_agent_done()
        else:  # cancelled with this task when the caller's next turn comes
            await self._agent.warm_after_turn()

    async def _on_dtmf(self, digit: str) -> None:
        if digit == "0" and not self._agent.ended:
            say = "Je vous passe une secrétaire, ne quittez pas."
            self._agent.ended = True
            self._agent.handoff = Handoff(reason="caller_request", summary="touche 0 (secrétariat)")
            self._on_text("assistant", say)
            await self._cancel()
            # not awaited here: the bot's stop comes back through this processor's input
            self._dtmf_task = self.create_task(self._hand_off_now(say))

    async def _hand_off_now(self, say: str) -> None:
        """The key cuts what is still queued (TTS, output, the session), like barge-in;
        once the bot is quiet (so the end of the cut greeting is not taken for the end of
        the handoff sentence), the handoff sentence is spoken and the call handed off."""
        speaking = not self._bot_quiet.is_set()
        await self.broadcast_interruption()
        if speaking:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bot_quiet.wait(), timeout=5.0)
        await self._speak([say])
        await self._on_agent_done()


def _last_user_text(context: LLMContext) -> str:
    for msg in reversed(context.get_messages()):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content.strip()
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


@dataclass
class CallOutcome:
    ended_by: str  # "assistant" | "caller" | "error"
    handoff: Handoff | None
    turns: list[TurnTiming] = field(default_factory=list)


class CallPipeline:
    """One call: builds the pipeline around ``session`` and runs it until the call ends."""

    def __init__(self, *, session: Any, agent: CallAgent, stt: Any, tts: Any,
                 on_text: Callable[[str, str], None] | None = None,
                 max_call_s: float = 900.0, vad_stop_s: float = VAD_STOP_SECS) -> None:
        self._vad_stop_s = vad_stop_s
        self._session = session
        self._agent = agent
        self._stt = stt
        self._tts = tts
        self._on_text = on_text
        self._max_call_s = max_call_s
        self.turns: list[TurnTiming] = []
        self._ended_by = "caller"
        self._worker: PipelineWorker | None = None
        self._agent_done = asyncio.Event()
        self._bot_stopped = asyncio.Event()

    async def run(self) -> CallOutcome:
        from voice.transport import AudioSocketTransport

        transport = AudioSocketTransport(session=self._session, on_hangup=self._caller_hung_up)
        context = LLMContext()
        vad = PauseAwareVAD(params=VADParams(stop_secs=self._vad_stop_s),
                            on_quiet=getattr(self._stt, "speech_quiet", None),
                            on_speech=getattr(self._stt, "speech_resumed", None))
        user = LLMUserAggregator(context, params=LLMUserAggregatorParams(
            vad_analyzer=vad, user_turn_stop_timeout=3.0))
        agent_proc = _AgentProcessor(agent=self._agent, on_agent_done=self._agent_finished,
                                     on_text=self._on_text,
                                     stt_segments_done=(lambda: int(self._stt.completed_segments))
                                     if hasattr(self._stt, "completed_segments") else None,
                                     caller_active=vad.hearing_speech,
                                     vad_stop_s=self._vad_stop_s)
        pipeline = Pipeline([transport.input(), self._stt, user, agent_proc, self._tts,
                             transport.output()])
        rate = int(self._session.sample_rate)
        observer = _LatencyObserver(turns=self.turns, on_bot_stopped=self._bot_stopped.set,
                                    vad_stop_s=self._vad_stop_s,
                                    call_id=str(self._session.call_id))
        self._worker = PipelineWorker(
            pipeline, params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
            observers=[observer], idle_timeout_secs=None, enable_rtvi=False,
            check_dangling_tasks=False)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self._worker)
        watchdog = asyncio.create_task(self._watch())
        try:
            await runner.run()
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        return CallOutcome(ended_by=self._ended_by, handoff=self._agent.handoff, turns=self.turns)

    async def _caller_hung_up(self, reason: str) -> None:
        logger.info("call %s: leg ended (%s)", self._session.call_id, reason)
        if self._ended_by != "assistant":
            self._ended_by = "caller"
        if self._worker is not None:
            await self._worker.cancel(reason=f"caller hung up: {reason}")

    async def _agent_finished(self) -> None:
        self._bot_stopped.clear()
        self._agent_done.set()

    async def _watch(self) -> None:
        """End the call once the agent has finished and its last words were played."""
        try:
            await asyncio.wait_for(self._agent_done.wait(), timeout=self._max_call_s)
        except TimeoutError:
            logger.warning("call %s: maximum call length reached", self._session.call_id)
        else:
            logger.debug("call %s: agent done, waiting for its last words", self._session.call_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bot_stopped.wait(), timeout=30.0)
            logger.debug("call %s: bot stopped speaking", self._session.call_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._session.wait_played(), timeout=10.0)
            logger.debug("call %s: played out; ending the leg", self._session.call_id)
            self._ended_by = "assistant"
        handoff = self._agent.handoff
        if handoff is not None:
            await self._session.handoff(reason=handoff.reason, summary=handoff.summary)
        else:
            await self._session.hangup()
        if self._worker is not None:
            await self._worker.cancel(reason="call ended")
