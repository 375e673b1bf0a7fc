"""The call agent: one patient conversation, at text level (no audio, no pipecat).

Each patient turn goes through, in order:

1. the guard's screen (``voice.guard.Guard.screen``, on ``knowledge.safety``): an
   emergency, a request for a human or anger is answered by a fixed script and a handoff,
   medical advice asked is declined in fixed words, and the escalation rules apply; no
   policy is asked;
2. the dialogue policy (``voice.policy``: rules, the twin model, or hybrid), which
   proposes actions and words;
3. the guard again, on each proposed action (``check_action``: identity before an
   appointment is read or changed, only offered slots booked, ...) and on each sentence of
   the policy's own words (``check_words``: no personal data, no medical advice, no
   practice fact the profile or the agenda did not give);
4. the tools, which act and phrase their result in plain French themselves
   (``ToolResult.say``), so dates, times and names reach the patient exactly as stored.

The same agent runs behind the audio pipeline (``voice.pipeline``), in
``twin call --text`` and in the text-level scenario tests.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from voice.guard import CallFacts, Guard
from voice.llm import ChatLLM, LLMUnavailableError, ToolCall
from voice.policy import DialoguePolicy, PolicyContext, RulesPolicy
from voice.results import FALLBACK_HANDOFF_FR, MEDICAL_HANDOFF_FR, Handoff, ToolResult

__all__ = [
    "FALLBACK_HANDOFF_FR",
    "MEDICAL_HANDOFF_FR",
    "AgentTurn",
    "CallAgent",
    "CallTools",
    "Handoff",
    "SafetyCheck",
    "ToolResult",
]

logger = logging.getLogger(__name__)


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
    policy: str = ""  # which policy answered: rules | model ("" for the guard's scripts)
    #: the turn in the twin's format (``knowledge.twin_format``), when a twin policy
    #: answered it or was told about it
    policy_messages: list[dict[str, Any]] | None = None


_SENTENCE_END = re.compile(r"[.!?…](?:\s+|$)(?=\S|$)")


class CallAgent:
    """Drives one call. ``greeting()`` first, then ``respond(text)`` per patient turn."""

    def __init__(self, *, llm: ChatLLM, tools: CallTools, system_prompt: str, greeting: str,
                 safety: SafetyCheck | None = None, filler: str = "Un instant, je regarde.",
                 max_tool_rounds: int = 3, max_failed_turns: int = 2,
                 allowed_numbers: tuple[str, ...] = (), policy: DialoguePolicy | None = None,
                 guard: Guard | None = None, actions: Any = None, call_id: str = "call",
                 warm_turns: bool = True) -> None:
        self._llm = llm
        self._warm_turns = warm_turns
        self._tools = tools
        self._greeting = greeting
        self.call_id = call_id
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self.turns: list[AgentTurn] = []
        self.ended = False
        self.handoff: Handoff | None = None
        self.guard = guard or Guard(call_id=call_id, safety=safety,
                                    allowed_numbers=allowed_numbers,
                                    max_failed_turns=max_failed_turns)
        if safety is not None:
            self.guard.safety = safety
        self.policy: DialoguePolicy = policy or RulesPolicy(
            tools=tools, llm=llm, filler=filler, max_tool_rounds=max_tool_rounds)
        #: the secretaries' actions (``voice.actions.SecretaryActions``), for twin policies
        self.actions = actions

    # The safety rules live in the guard; kept as an attribute for callers and tests.
    @property
    def _safety(self) -> Any:
        return self.guard.safety

    @_safety.setter
    def _safety(self, value: Any) -> None:
        self.guard.safety = value

    @property
    def recording_objected(self) -> bool:
        return self.guard.recording_objected

    @property
    def guard_refusals(self) -> list[dict[str, Any]]:
        """What the guard refused in this call, as training signal: turn, action, rule."""
        return [r.as_dict() for r in self.guard.refusals]

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

    def _context(self, user_text: str, turn: Any) -> PolicyContext:
        previous = self.turns[-2].safety if len(self.turns) > 1 else "none"
        return PolicyContext(call_id=self.call_id, user_text=user_text, turn=turn,
                             turns=self.turns, greeting=self._greeting, messages=self.messages,
                             previous_safety=previous, act=self._act)

    async def warm(self) -> None:
        """Have the LLM evaluate the stable prefix (system prompt, tools, greeting) now,
        while the greeting plays, instead of on the patient's first turn."""
        await self.policy.warm(self._context("", None))

    async def warm_after_turn(self) -> None:
        """Have the LLM evaluate the call so far (the turns the rules answered included)
        while the reply plays and the caller answers, so a next turn that reaches the model
        only pays for the caller's new words. Off (``warm_turns=False``) it does nothing."""
        if self._warm_turns and not self.ended:
            await self.policy.warm(self._context("", None))

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
        self.guard.turn = len(self.turns) - 1

        context = [t.user for t in self.turns[:-1]][-2:]
        screen = self.guard.screen(user_text, context=context)
        turn.safety = screen.category
        if screen.say is not None:
            self.messages.append({"role": "assistant", "content": screen.say})
            turn.reply += screen.say
            if screen.handoff is not None:
                self._finish(handoff=screen.handoff)
            yield screen.say
            return

        pending = ""  # the policy's own words, spoken sentence by sentence once checked
        try:
            async for speech in self.policy.propose(self._context(user_text, turn)):
                if speech.source == "model":
                    pending += speech.text
                    while (m := _SENTENCE_END.search(pending)) is not None:
                        sentence, pending = pending[:m.end()].strip(), pending[m.end():]
                        out = self._checked(sentence) + " "
                        turn.reply += out
                        if out.strip():  # a withheld repeat says nothing: no empty TTS
                            yield out
                        if self.ended:  # the guard handed the call off: nothing more to say
                            return
                    continue
                if pending.strip():
                    out = self._checked(pending) + " "
                    turn.reply += out
                    if out.strip():
                        yield out
                    if self.ended:
                        return
                pending = ""
                if speech.text:
                    turn.reply += speech.text
                    yield speech.text
                if speech.end_call or speech.handoff:
                    self._finish(handoff=speech.handoff)
            if pending.strip():
                out = self._checked(pending.strip())
                turn.reply += out
                if out.strip():
                    yield out
        except LLMUnavailableError as exc:
            logger.error("LLM unavailable, handing the call to a human: %s", exc)
            turn.reply += FALLBACK_HANDOFF_FR
            self._finish(handoff=Handoff(reason="bot_failure", summary=f"LLM unavailable: {exc}"[:200]))
            yield FALLBACK_HANDOFF_FR

    # -- the guard between the policy and the world ----------------------------------------
    def facts(self, user_text: str = "") -> CallFacts:
        """What the call has established, for the guard."""
        from voice.actions import tool_facts

        legacy = self.policy.vocabulary == "legacy"
        if self.actions is not None:
            facts: CallFacts = self.actions.facts(user_text, legacy=legacy)
            return facts
        return tool_facts(self._tools, user_text, legacy=legacy)

    def _checked(self, sentence: str) -> str:
        if self.ended:
            return ""
        verdict = self.guard.check_words(sentence, self.facts(self.turns[-1].user))
        if verdict.handoff is not None:
            self._finish(handoff=verdict.handoff)
        return sentence if verdict.allowed else str(verdict.say)

    async def _act(self, call: ToolCall) -> ToolResult:
        """One proposed action: the guard decides, then the tools act."""
        turn = self.turns[-1]
        turn.tool_calls.append(call)
        facts = self.facts(turn.user)
        verdict = self.guard.check_action(call.name, call.arguments, facts)
        if not verdict.allowed:
            if verdict.rule == "change.not_confirmed" and self.actions is not None:
                result: ToolResult = self.actions.ask_confirmation(call)
                return result
            return ToolResult(content=f"error: {verdict.reason} (guard: {verdict.rule})",
                              ok=False, say=verdict.say,
                              data={"error": f"refused: {verdict.rule}"})
        if facts.legacy:
            return await self._execute(call, self._tools.execute(call))
        if self.actions is None:
            return ToolResult(content=f"unknown tool {call.name}", ok=False,
                              data={"error": "no action executor"})
        accepted = call.name == "book" and self.guard.accepted(call.arguments.get("start"), facts)
        return await self._execute(call, self.actions.execute(call, accepted=accepted))

    async def _execute(self, call: ToolCall, running: Any) -> ToolResult:
        try:
            result: ToolResult = await running
            return result
        except Exception as exc:  # a tool bug must not leave the caller in silence
            logger.exception("tool %s failed", call.name)
            return ToolResult(content=f"error: {exc}", ok=False,
                              say="Je n'arrive pas à faire cela pour le moment. "
                                  "Je vous passe une secrétaire.",
                              handoff=Handoff(reason="bot_failure", summary=f"tool {call.name} failed"),
                              data={"error": "tool failed"})


def transcript_lines(agent: CallAgent) -> Sequence[str]:
    out = []
    for t in agent.turns:
        out.append(f"patient: {t.user}")
        out.append(f"assistant: {t.reply.strip()}")
    return out
