"""One call, end to end: the handler the AudioSocket server runs for every session.

:class:`VoiceServices` holds what is loaded once per process (the LLM client,
Whisper, the TTS engine, the booking service, the practice profile, the safety
rules); :func:`build_call_handler` turns it into a ``CallHandler`` that builds a
fresh agent and pipeline for each call, records the call in the agenda
database, and reports it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from voice.agent import CallAgent, Handoff
from voice.llm import ChatLLM
from voice.tools import PracticeTools

__all__ = ["CallReport", "VoiceServices", "build_call_handler", "make_agent"]

logger = logging.getLogger(__name__)


@dataclass
class VoiceServices:
    llm: ChatLLM
    whisper: Any  # voice.stt.WhisperEngine, loaded
    tts_engine: Any  # voice.tts.TTSEngine, loaded
    booking: Any  # records.BookingService
    profile: Any  # knowledge.profile.PracticeProfile
    safety: Any = None  # knowledge.safety.SafetyRules
    today: Callable[[], date] = date.today
    policy: str = "rules"  # the dialogue policy: rules | model | hybrid (voice.policy)
    twin_llm: ChatLLM | None = None  # the twin policy's model; None: ``llm``
    now: Callable[[], datetime] | None = None  # the calls' clock; None: the practice's now
    vad_stop_s: float = 0.2  # the VAD's hangover before smart-turn decides (voice.pipeline)
    late_transcript_wait_s: float | None = None  # pipecat's wait for a late transcript (None:
    # the VAD hangover + 0.05 s, voice.stt.WhisperSTT; bench/latency.py compares it with 1.0 s)
    # decode this long into a pause, before the VAD's stop (voice.stt.WhisperSTT); None: off
    speculate_after_s: float | None = 0.0
    speculate_max_calls: int = 1  # ... only while at most this many calls share Whisper
    # "Un instant, je regarde." as soon as the model starts writing a slow action (a search,
    # a booking), rather than once the action is complete (a lever, switched off to compare)
    early_ack: bool = True
    # the LLM evaluates the call so far after each reply, while the caller answers (a lever)
    warm_turns: bool = True


@dataclass
class CallReport:
    call_id: str
    started: float
    ended: float
    ended_by: str
    handoff: Handoff | None
    transcript: list[tuple[str, str]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    booked: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    recording: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _timed_turns(timings: Sequence[Any], turns: Sequence[Any]) -> list[dict[str, Any]]:
    """Each timed turn, with ``llm``: whether the model was asked for it (the agent's turn
    with the same words; a turn held and answered whole is the agent's last with them)."""
    asked = {t.user.strip(): t.llm_first_token_s is not None for t in turns}
    out = []
    for timing in timings:
        row = timing.as_dict()
        row["llm"] = asked.get(timing.text.strip())
        out.append(row)
    return out


def greeting_for(profile: Any) -> str:
    """Practice name, the recording notice, and whether the practice is open now."""
    from knowledge.consent import build_greeting

    return str(build_greeting(profile))


def make_agent(services: VoiceServices, *, call_id: str, caller_number: str | None = None
               ) -> tuple[CallAgent, PracticeTools]:
    """The call's agent: its tools, the guard and the dialogue policy of the settings."""
    from knowledge.prompts import build_system_prompt
    from voice.actions import SecretaryActions
    from voice.guard import Guard
    from voice.model_policy import ModelPolicy
    from voice.policy import POLICIES, HybridPolicy, RulesPolicy

    if services.policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {services.policy!r}")
    profile = services.profile
    tools = PracticeTools(booking=services.booking, profile=profile, call_id=call_id,
                          today=services.today, caller_number=caller_number, now=services.now)
    numbers = (str(profile.practice.phone),)
    now = services.now or (lambda: datetime.now(profile.practice.tzinfo))
    guard = Guard(call_id=call_id, profile=profile, safety=services.safety,
                  allowed_numbers=numbers, now=now)
    actions = SecretaryActions(tools=tools, booking=services.booking, profile=profile,
                               call_id=call_id, now=now, caller_number=caller_number,
                               safety=services.safety)
    policy: Any = RulesPolicy(tools=tools, llm=services.llm, early_ack=services.early_ack)
    if services.policy != "rules":
        model = ModelPolicy(llm=services.twin_llm or services.llm, profile=profile, now=now,
                            actions=actions, early_ack=services.early_ack)
        policy = model if services.policy == "model" else HybridPolicy(tools=tools, model=model)
    agent = CallAgent(llm=services.llm, tools=tools,
                      system_prompt=build_system_prompt(profile, today=services.today()),
                      greeting=greeting_for(profile), safety=services.safety,
                      allowed_numbers=numbers, policy=policy, guard=guard, actions=actions,
                      call_id=call_id, warm_turns=services.warm_turns)
    return agent, tools


def build_call_handler(services: VoiceServices, *,
                       on_text: Callable[[str, str, str], None] | None = None,
                       on_report: Callable[[CallReport], None] | None = None) -> Any:
    """A ``telephony.server.CallHandler``: ``await handler(session)`` runs one call."""
    from voice.pipeline import CallPipeline
    from voice.stt import WhisperSTT
    from voice.tts import make_tts_service

    async def handle(session: Any) -> None:
        call_id = str(session.call_id)
        caller = getattr(session, "caller_number", None)
        report = CallReport(call_id=call_id, started=time.time(), ended=0.0, ended_by="error",
                            handoff=None, recording=str(getattr(session, "recording_path", "") or "")
                            or None)

        def text_cb(who: str, text: str) -> None:
            if text:
                report.transcript.append((who, text))
                if on_text:
                    on_text(call_id, who, text)
            if agent.recording_objected and report.recording:  # stop now, not at hang-up
                _forget_recording(session, report)

        agent, tools = make_agent(services, call_id=call_id, caller_number=caller)
        await _safe(services.booking.start_call(call_id=call_id, caller_number=caller))
        pipeline = CallPipeline(session=session, agent=agent,
                                stt=WhisperSTT(engine=services.whisper,
                                               vad_stop_s=services.vad_stop_s,
                                               late_transcript_wait_s=services.late_transcript_wait_s,
                                               speculate_after_s=services.speculate_after_s,
                                               speculate_max_calls=services.speculate_max_calls),
                                tts=make_tts_service(services.tts_engine), on_text=text_cb,
                                vad_stop_s=services.vad_stop_s)
        outcome_label = "error"
        try:
            outcome = await pipeline.run()
            report.ended_by = outcome.ended_by
            report.handoff = outcome.handoff
            changed = [kind for kind, _id in tools.changes.done]
            outcome_label = ("handoff" if outcome.handoff else
                             "booked" if tools.booked_ids() else
                             changed[-1] if changed else
                             "completed" if outcome.ended_by == "assistant" else "caller_hangup")
        except Exception as exc:
            logger.exception("call %s failed", call_id)
            report.handoff = Handoff(reason="bot_failure", summary=str(exc)[:200])
            await _safe(session.handoff(reason="bot_failure", summary=str(exc)[:200]))
        finally:
            # The session handed the call off itself (service stopping, caller silent...):
            # that is the outcome stored, with its reason - not "caller_hangup".
            req = getattr(session, "handoff_request", None)
            if report.handoff is None and req is not None:
                report.handoff = Handoff(reason=req.reason, summary=req.summary)
                outcome_label = "handoff"
            if agent.recording_objected:
                _forget_recording(session, report)
            report.ended = time.time()
            report.turns = _timed_turns(pipeline.turns, agent.turns)
            report.booked = tools.booked_ids()
            report.tool_calls = [f"{c.name}({c.arguments})" for c in agent.tool_calls]
            report.summary = call_summary(agent, tools, outcome_label)
            if agent.recording_objected:  # no transcript, no free text: what happened only
                report.transcript = []
                report.turns = [{k: v for k, v in t.items() if k != "text"} for t in report.turns]
                report.summary = objected_summary(report.summary)
            await _safe(services.booking.end_call(
                call_id=call_id, outcome=outcome_label,
                handoff_reason=report.handoff.reason if report.handoff else None,
                summary=json.dumps(report.summary, ensure_ascii=False)))
            if agent.recording_objected:
                await _safe(services.booking.forget_call(call_id=call_id,
                                                         actor=f"assistant:{call_id}"))
            if on_report:
                on_report(report)

    return handle


def call_summary(agent: CallAgent, tools: PracticeTools, outcome: str) -> dict[str, Any]:
    """The structured note staff read for each call: why, what happened, what is left to do."""
    said = [t.user for t in agent.turns if t.user]
    follow_up = []
    if agent.handoff:
        follow_up.append(f"handed to a human: {agent.handoff.reason} — {agent.handoff.summary}")
    if any(name == "leave_message" for name, _a, _s in tools.actions):
        follow_up.append("a message was left for the staff")
    if tools.state.proposed is not None and not tools.booked_ids():
        follow_up.append("a slot was offered but not booked")
    return {
        "reason": said[0][:200] if said else "",
        "outcome": outcome,
        "actions": [{"tool": name, "args": args, "by": source} for name, args, source in tools.actions],
        "booked": tools.booked_ids(),
        "changed": [{"what": what, "appointment": appt} for what, appt in tools.changes.done],
        "safety": sorted({t.safety for t in agent.turns if t.safety != "none"}),
        "follow_up": follow_up,
        "recording_objected": agent.recording_objected,
        # what the guard refused (turn, action, rule): training signal for the twin
        "guard_refusals": agent.guard_refusals,
        "policy": agent.policy.name,
        "turns": len(agent.turns),
    }


def objected_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a call whose caller objected to recording: what was done (outcome,
    bookings, changes, safety categories, tool names), none of the caller's words."""
    return {"outcome": summary.get("outcome"), "recording_objected": True,
            "booked": summary.get("booked", []), "changed": summary.get("changed", []),
            "safety": summary.get("safety", []), "turns": summary.get("turns", 0),
            "actions": [{"tool": a.get("tool"), "by": a.get("by")}
                        for a in summary.get("actions", [])],
            "follow_up": []}


def _forget_recording(session: Any, report: CallReport) -> None:
    """The caller objected to being recorded: stop the recording and delete it, at once."""
    stop = getattr(session, "stop_recording", None)
    path = getattr(session, "recording_path", None)
    if stop is not None:
        stop()
    elif path:
        from pathlib import Path

        Path(path).unlink(missing_ok=True)
        logger.info("call %s: recording deleted at the caller's request", report.call_id)
    report.recording = None


async def _safe(awaitable: Any) -> None:
    """Bookkeeping must never take a call down."""
    try:
        await awaitable
    except Exception:
        logger.exception("bookkeeping failed")
