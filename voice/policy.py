"""Dialogue policies: what to do and say next, from the conversation so far.

A policy *proposes*; the call agent (``voice.agent``) has every proposed action checked by
the guard (``voice.guard``) before the tools act, and every sentence of the policy's own
words checked before it is spoken. Three policies, chosen in the settings (``policy:``):

- :class:`RulesPolicy` (``rules``, the default): today's behaviour exactly. The booking
  core by rules (``voice.tools.PracticeTools.on_user_turn``: confirmations, yes/no to an
  offer, name and date of birth, cancel/reschedule flows, messages, practice questions,
  goodbyes), then the LLM with the assistant's own tools (``find_slots``, ``book``, ...).
- :class:`ModelPolicy` (``model``, ``voice.model_policy``): the twin. An OpenAI-compatible
  model prompted exactly as in training (``knowledge.twin_format``), calling the
  secretaries' actions (``find_patient``, ``search_slots``, ``book``, ...).
- :class:`HybridPolicy` (``hybrid``): the rules where they are sure (a rule matched: the
  transactional core), the twin everywhere else.

A policy yields :class:`Speech` pieces as soon as it knows them (the model's words
stream) and asks for actions through ``PolicyContext.act``, which goes through the guard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from voice.llm import ActionStarted, ChatLLM, TextDelta, ToolCall
from voice.results import MEDICAL_HANDOFF_FR, Handoff, ToolResult

__all__ = [
    "POLICIES",
    "DialoguePolicy",
    "HybridPolicy",
    "PolicyContext",
    "RulesPolicy",
    "Speech",
]

logger = logging.getLogger(__name__)

POLICIES: tuple[str, ...] = ("rules", "model", "hybrid")
REPEAT_FR = "Pouvez-vous répéter, s'il vous plaît ?"
#: actions that look things up or change the agenda, in the assistant's tool names and the
#: secretaries' (the twin's): worth an "Un instant" while the model writes their arguments
SLOW_ACTIONS = frozenset({"find_slots", "book", "cancel_appointment", "reschedule_appointment",
                          "search_slots", "list_appointments", "cancel", "move"})


@dataclass(frozen=True)
class Speech:
    """A piece of the reply. ``source``: ``model`` (the policy's own words: the guard checks
    each sentence), ``tool`` (a tool's words, phrased from the agenda or the profile) or
    ``rules`` (fixed words)."""

    text: str
    source: str = "model"
    end_call: bool = False
    handoff: Handoff | None = None


@dataclass
class PolicyContext:
    """The conversation so far, and the way to act (through the guard)."""

    call_id: str
    user_text: str
    turn: Any  # voice.agent.AgentTurn: the current turn's record
    turns: Sequence[Any]  # every AgentTurn so far, the current one last
    greeting: str
    messages: list[dict[str, Any]]  # the rules policy's LLM transcript (system prompt first)
    previous_safety: str = "none"
    act: Callable[[ToolCall], Awaitable[ToolResult]] = field(default=None)  # type: ignore[assignment]


class DialoguePolicy(Protocol):
    """Proposes the next actions and words."""

    name: str
    #: the action names it proposes: ``legacy`` (``voice.tools``) or ``corpus``
    #: (``knowledge.twin_format.ACTIONS``)
    vocabulary: str

    def propose(self, ctx: PolicyContext) -> AsyncIterator[Speech]:
        ...  # pragma: no cover

    async def warm(self, ctx: PolicyContext) -> None:
        ...  # pragma: no cover


def speak_result(result: ToolResult, messages: list[dict[str, Any]] | None = None
                 ) -> list[Speech]:
    """A tool's result as speech (its words, and the end of the call or a handoff)."""
    if result.say and messages is not None:
        messages.append({"role": "assistant", "content": result.say})
    if not (result.say or result.end_call or result.handoff):
        return []
    return [Speech(result.say or "", "tool", end_call=result.end_call, handoff=result.handoff)]


async def rules_step(tools: Any, ctx: PolicyContext) -> list[Speech] | None:
    """The booking core by rules; None when no rule is sure (the model's turn)."""
    direct = await tools.on_user_turn(ctx.user_text)
    if direct is None and ctx.previous_safety == "medical_advice":
        # Medical advice was just declined and the caller goes on without anything the
        # rules can act on: they need a person, not a model improvising around a refusal.
        ctx.messages.append({"role": "assistant", "content": MEDICAL_HANDOFF_FR})
        return [Speech(MEDICAL_HANDOFF_FR, "rules", handoff=Handoff(
            reason="medical_insistence", summary=f"« {ctx.user_text[:160]} »"))]
    if direct is None:
        return None
    return speak_result(direct, ctx.messages)


class RulesPolicy:
    """Today's agent: the rules, then the LLM with the assistant's own tools."""

    name = "rules"
    vocabulary = "legacy"

    def __init__(self, *, tools: Any, llm: ChatLLM, filler: str = "Un instant, je regarde.",
                 max_tool_rounds: int = 3, early_ack: bool = True) -> None:
        self._tools = tools
        self._early_ack = early_ack
        self._llm = llm
        self._filler = filler
        self._max_tool_rounds = max_tool_rounds

    async def warm(self, ctx: PolicyContext) -> None:
        warm = getattr(self._llm, "warm", None)
        if warm is not None:
            await warm(ctx.messages, self._tools.schemas())

    async def propose(self, ctx: PolicyContext) -> AsyncIterator[Speech]:
        ctx.turn.policy = "rules"
        ruled = await rules_step(self._tools, ctx)
        if ruled is not None:
            for piece in ruled:
                yield piece
            return
        async for piece in self._run_llm(ctx):
            yield piece

    async def _run_llm(self, ctx: PolicyContext) -> AsyncIterator[Speech]:
        turn = ctx.turn
        said_filler = False
        for _round in range(self._max_tool_rounds + 1):
            started = time.monotonic()
            text = ""
            calls: list[ToolCall] = []
            async for item in self._llm.stream(ctx.messages, self._tools.schemas()):
                if turn.llm_first_token_s is None:
                    turn.llm_first_token_s = time.monotonic() - started
                if isinstance(item, ActionStarted):
                    # the model is writing a slow action's arguments (seconds on a CPU):
                    # the caller hears an acknowledgement now rather than silence
                    if (self._early_ack and not said_filler and not text.strip()
                            and item.name in SLOW_ACTIONS):
                        said_filler = True
                        yield Speech(self._filler + " ", "rules")
                    continue
                if isinstance(item, TextDelta):
                    if calls:
                        continue  # ignore chatter after a tool call
                    text += item.text
                    yield Speech(item.text, "model")
                else:
                    calls.append(item)
            if not calls:
                ctx.messages.append({"role": "assistant", "content": text.strip()})
                return
            calls = calls[:1]  # one action at a time: small models over-call
            ctx.messages.append({"role": "assistant", "content": text.strip(),
                                 "tool_calls": [c.as_message() for c in calls]})
            if not said_filler and not text.strip() and calls[0].name in SLOW_ACTIONS:
                said_filler = True
                yield Speech(self._filler + " ", "rules")
            result = await ctx.act(calls[0])
            ctx.messages.append({"role": "tool", "tool_call_id": calls[0].id,
                                 "name": calls[0].name, "content": result.content})
            spoken = speak_result(result, ctx.messages)
            if spoken:
                for piece in spoken:
                    yield piece
                return
        yield Speech(REPEAT_FR, "rules")


class HybridPolicy:
    """The rules where they are sure, the twin elsewhere. The twin is told what the rules
    did (``ModelPolicy.record_rules_turn``), so its context is the whole call."""

    name = "hybrid"
    vocabulary = "corpus"

    def __init__(self, *, tools: Any, model: Any) -> None:
        self._tools = tools
        self._model = model

    async def warm(self, ctx: PolicyContext) -> None:
        await self._model.warm(ctx)

    async def propose(self, ctx: PolicyContext) -> AsyncIterator[Speech]:
        before = len(getattr(self._tools, "actions", []))
        ruled = await rules_step(self._tools, ctx)
        if ruled is not None:
            ctx.turn.policy = "rules"
            self._model.record_rules_turn(ctx.turn, getattr(self._tools, "actions", [])[before:],
                                          " ".join(p.text for p in ruled).strip())
            for piece in ruled:
                yield piece
            return
        ctx.turn.policy = "model"
        async for piece in self._model.propose(ctx):
            yield piece
