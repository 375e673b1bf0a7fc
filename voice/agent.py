"""The call agent: one patient conversation, at text level (no audio, no pipecat).

Each patient turn goes through, in order:

1. the deterministic safety layer (``knowledge.safety``): an emergency, a request
   for a human or anger is answered by a fixed script and a handoff, without
   asking the model;
2. the LLM, which either speaks or proposes a tool call;
3. the tools, which validate and act, and phrase their result in plain French
   themselves (``ToolResult.say``), so dates, times and names reach the patient
   exactly as stored and a second model round is rarely needed.

The same agent runs behind the audio pipeline (``voice.pipeline``), in
``twin call --text`` and in the text-level scenario tests.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from knowledge.consent import objects_to_recording
from knowledge.safety import EscalationTracker, TurnOutcome, classify_transcript, detect_language
from voice.llm import ChatLLM, LLMUnavailableError, TextDelta, ToolCall
from voice.understanding import leaks_personal_data

__all__ = [
    "AgentTurn",
    "CallAgent",
    "CallTools",
    "Handoff",
    "SafetyCheck",
    "ToolResult",
]

logger = logging.getLogger(__name__)

MEDICAL_HANDOFF_FR = ("Je ne peux pas vous répondre sur ce point. Je vous passe une secrétaire, "
                      "qui verra avec le médecin. Ne quittez pas.")
FALLBACK_HANDOFF_FR = ("Je suis désolée, je rencontre un problème technique. "
                       "Je vous passe une secrétaire.")


@dataclass(frozen=True)
class Handoff:
    reason: str  # "caller_request" | "emergency" | "misunderstanding" | "bot_failure" | ...
    summary: str


@dataclass
class ToolResult:
    """What a tool gives back: ``content`` for the model, ``say`` for the patient."""

    content: str
    say: str | None = None
    end_call: bool = False
    handoff: Handoff | None = None
    ok: bool = True


class CallTools(Protocol):
    def schemas(self) -> list[dict[str, Any]]: ...

    async def execute(self, call: ToolCall) -> ToolResult: ...

    async def on_user_turn(self, text: str) -> ToolResult | None:
        """Called with every patient utterance before the model.

        Returns a result to act on directly (a pending booking the patient just
        confirmed, a goodbye), or None to let the model answer.
        """


class SafetyCheck(Protocol):
    def assess(self, text: str, *, context: Sequence[str] = ()) -> Any: ...


@dataclass
class AgentTurn:
    """Record of one patient turn, for transcripts, metrics and tests."""

    user: str
    reply: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    safety: str = "none"
    llm_first_token_s: float | None = None


_CLOCK_TIME = re.compile(r"\b\d{1,2} ?(?:h|heures?)\b(?: ?\d{2})?|\b\d{1,2}:\d{2}\b", re.I)
_SENTENCE_END = re.compile(r"[.!?…](?:\s+|$)(?=\S|$)")
_ESCALATE = {"emergency", "suicide", "human_request", "anger"}


class CallAgent:
    """Drives one call. ``greeting()`` first, then ``respond(text)`` per patient turn."""

    def __init__(self, *, llm: ChatLLM, tools: CallTools, system_prompt: str, greeting: str,
                 safety: SafetyCheck | None = None, filler: str = "Un instant, je regarde.",
                 max_tool_rounds: int = 3, max_failed_turns: int = 2,
                 allowed_numbers: tuple[str, ...] = ()) -> None:
        self._llm = llm
        self._tools = tools
        self._safety = safety
        self._filler = filler
        self._max_tool_rounds = max_tool_rounds
        self._greeting = greeting
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self.turns: list[AgentTurn] = []
        self.ended = False
        self.handoff: Handoff | None = None
        self.recording_objected = False
        self._allowed_numbers: tuple[str, ...] = tuple(allowed_numbers)
        self._escalation = EscalationTracker(max_failures=max_failed_turns)

    def greeting(self) -> str:
        self.messages.append({"role": "assistant", "content": self._greeting})
        return self._greeting

    def retract_last_turn(self) -> None:
        """Forget the last patient turn if nothing was said in answer to it (the patient
        was still talking: the next transcript covers the whole utterance)."""
        if self.turns and not self.turns[-1].reply and not self.turns[-1].tool_calls:
            last = self.turns.pop()
            for i in range(len(self.messages) - 1, 0, -1):
                if self.messages[i].get("role") == "user" and self.messages[i].get("content") == last.user:
                    del self.messages[i:]
                    break

    async def warm(self) -> None:
        """Have the LLM evaluate the stable prefix (system prompt, tools, greeting) now,
        while the greeting plays, instead of on the patient's first turn."""
        warm = getattr(self._llm, "warm", None)
        if warm is not None:
            await warm(self.messages, self._tools.schemas())

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [c for t in self.turns for c in t.tool_calls]

    def _finish(self, *, handoff: Handoff | None = None) -> None:
        self.ended = True
        if handoff and not self.handoff:
            self.handoff = handoff

    async def respond(self, user_text: str) -> AsyncIterator[str]:
        """Yield the spoken reply in pieces, as soon as each piece is known."""
        turn = AgentTurn(user=user_text)
        self.turns.append(turn)
        if self.ended:
            return
        self.messages.append({"role": "user", "content": user_text})

        context = [t.user for t in self.turns[:-1]][-2:]
        verdict = self._safety.assess(user_text, context=context) if self._safety else None
        category = getattr(verdict, "category", "none") if verdict else "none"
        turn.safety = category
        outcome = classify_transcript(user_text)
        decision = self._escalation.record(outcome, verdict=verdict)
        if verdict is not None and category in _ESCALATE:
            script = verdict.response_fr
            reason = "caller_request" if category == "human_request" else category
            async for piece in self._scripted(turn, script, Handoff(
                    reason=reason, summary=f"{category}: « {user_text[:160]} »")):
                yield piece
            return
        if decision.handoff:  # failed understandings in a row, or insisting on medical advice
            async for piece in self._scripted(turn, decision.say_fr or FALLBACK_HANDOFF_FR, Handoff(
                    reason=decision.reason or "misunderstanding",
                    summary=f"{decision.reason}: « {user_text[:160]} »")):
                yield piece
            return
        if outcome is not TurnOutcome.UNDERSTOOD:
            async for piece in self._scripted(turn, decision.say_fr or "Pouvez-vous répéter ?"):
                yield piece
            return
        if detect_language(user_text) == "en":
            async for piece in self._scripted(
                    turn, "I will put you through to a secretary who can help you in English. "
                          "Please hold the line.",
                    Handoff(reason="language", summary=f"English-speaking caller: « {user_text[:160]} »")):
                yield piece
            return
        if objects_to_recording(user_text) and not self.recording_objected:
            self.recording_objected = True
            async for piece in self._scripted(
                    turn, "C'est noté : votre appel ne sera pas conservé. Que puis-je faire pour vous ?"):
                yield piece
            return
        if verdict is not None and category == "medical_advice":
            # Decline in fixed words; the script offers an appointment or a message.
            async for piece in self._scripted(turn, verdict.response_fr):
                yield piece
            return

        direct = await self._tools.on_user_turn(user_text)
        previous = self.turns[-2].safety if len(self.turns) > 1 else "none"
        if direct is None and previous == "medical_advice":
            # Medical advice was just declined and the caller goes on without anything the
            # rules can act on: they need a person, not the model improvising around a refusal.
            async for piece in self._scripted(turn, MEDICAL_HANDOFF_FR, Handoff(
                    reason="medical_insistence", summary=f"« {user_text[:160]} »")):
                yield piece
            return
        if direct is not None:
            async for piece in self._speak_result(direct):
                turn.reply += piece
                yield piece
            return

        try:
            async for piece in self._run_llm(turn):
                turn.reply += piece
                yield piece
        except LLMUnavailableError as exc:
            logger.error("LLM unavailable, handing the call to a human: %s", exc)
            turn.reply += FALLBACK_HANDOFF_FR
            self._finish(handoff=Handoff(reason="bot_failure", summary=f"LLM unavailable: {exc}"[:200]))
            yield FALLBACK_HANDOFF_FR

    async def _run_llm(self, turn: AgentTurn) -> AsyncIterator[str]:
        """The model's words, sentence by sentence, each checked before it is spoken: the
        model holds no patient data, so a phone number or a date of birth in its words
        can only be invented or leaked, and is replaced by a refusal."""
        pending = ""
        async for piece in self._run_llm_raw(turn):
            if not isinstance(piece, TextDelta):  # the tools' own words: trusted
                if pending.strip():
                    yield self._checked(pending) + " "
                pending = ""
                yield piece
                continue
            pending += piece.text
            while (m := _SENTENCE_END.search(pending)) is not None:
                sentence, pending = pending[:m.end()].strip(), pending[m.end():]
                yield self._checked(sentence) + " "
        if pending.strip():
            yield self._checked(pending.strip())

    def _checked(self, sentence: str) -> str:
        if leaks_personal_data(sentence, allowed=self._allowed_numbers):
            logger.warning("withheld a model sentence with personal data: %r", sentence[:120])
            return ("Je ne peux pas communiquer ce type d'information par téléphone. "
                    "Puis-je faire autre chose pour vous ?")
        if _CLOCK_TIME.search(sentence):
            # Times (slots, opening hours) only ever come from the agenda or the profile,
            # through the tools: a time in the model's own words is made up.
            logger.warning("withheld a model sentence with a time in it: %r", sentence[:120])
            return "Je vérifie dans l'agenda : quel jour et quel moment vous arrangeraient ?"
        return sentence

    async def _run_llm_raw(self, turn: AgentTurn) -> AsyncIterator[str | TextDelta]:
        said_filler = False
        for _round in range(self._max_tool_rounds + 1):
            started = time.monotonic()
            text = ""
            calls: list[ToolCall] = []
            async for item in self._llm.stream(self.messages, self._tools.schemas()):
                if turn.llm_first_token_s is None:
                    turn.llm_first_token_s = time.monotonic() - started
                if isinstance(item, TextDelta):
                    if calls:
                        continue  # ignore chatter after a tool call
                    text += item.text
                    yield item
                else:
                    calls.append(item)
            if not calls:
                self.messages.append({"role": "assistant", "content": text.strip()})
                return
            calls = calls[:1]  # one action at a time: small models over-call
            self.messages.append({"role": "assistant", "content": text.strip(),
                                  "tool_calls": [c.as_message() for c in calls]})
            if not said_filler and not text.strip() and calls[0].name in {"find_slots", "book",
                                                                          "cancel_appointment"}:
                said_filler = True
                yield self._filler + " "
            result = await self._execute(calls[0])
            turn.tool_calls.append(calls[0])
            self.messages.append({"role": "tool", "tool_call_id": calls[0].id, "name": calls[0].name,
                                  "content": result.content})
            if result.say is not None or result.end_call or result.handoff:
                async for piece in self._speak_result(result):
                    yield piece
                return
        yield "Pouvez-vous répéter, s'il vous plaît ?"

    async def _scripted(self, turn: AgentTurn, text: str,
                        handoff: Handoff | None = None) -> AsyncIterator[str]:
        self.messages.append({"role": "assistant", "content": text})
        turn.reply += text
        if handoff is not None:
            self._finish(handoff=handoff)
        yield text

    async def _speak_result(self, result: ToolResult) -> AsyncIterator[str]:
        if result.say:
            self.messages.append({"role": "assistant", "content": result.say})
            yield result.say
        if result.end_call or result.handoff:
            self._finish(handoff=result.handoff)

    async def _execute(self, call: ToolCall) -> ToolResult:
        try:
            return await self._tools.execute(call)
        except Exception as exc:  # a tool bug must not leave the caller in silence
            logger.exception("tool %s failed", call.name)
            return ToolResult(content=f"error: {exc}", ok=False,
                              say="Je n'arrive pas à faire cela pour le moment. "
                                  "Je vous passe une secrétaire.",
                              handoff=Handoff(reason="bot_failure", summary=f"tool {call.name} failed"))


def transcript_lines(agent: CallAgent) -> Sequence[str]:
    out = []
    for t in agent.turns:
        out.append(f"patient: {t.user}")
        out.append(f"assistant: {t.reply.strip()}")
    return out
