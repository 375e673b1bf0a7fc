"""The twin as a dialogue policy: a model prompted exactly as it was trained.

:class:`ModelPolicy` sends an OpenAI-compatible server (the embedded llama.cpp server or
Ollama, through ``voice.llm``) the conversation in the twin's format
(``knowledge.twin_format``): the compact system prompt, the secretaries' action schemas,
each earlier turn as the patient's words, then the assistant's actions (native
``tool_calls``), their results (``tool`` messages) and the assistant's words. It proposes
the actions the model calls and streams the words it writes; the call agent has the guard
check both. When an action's result has words of its own (a slot read from the agenda, an
answer from the profile), those are spoken and the turn ends, as with the rules; otherwise
(``find_patient``) the model goes on with the result in view.

:class:`RawPromptLLM` is the same ``ChatLLM`` protocol over ``/v1/completions``: the prompt
rendered by ``twin_format.render_prompt`` character for character as in training, for a
server whose chat template cannot be trusted to match (the embedded llama.cpp server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from knowledge import twin_format
from voice.llm import (
    CALL_NAME_RE,
    ActionStarted,
    ChatLLM,
    LLMTimeoutError,
    LLMUnavailableError,
    OpenAICompatibleLLM,
    TextDelta,
    ToolCall,
)
from voice.policy import REPEAT_FR, SLOW_ACTIONS, PolicyContext, Speech

__all__ = ["ModelPolicy", "RawPromptLLM"]

logger = logging.getLogger(__name__)

#: what the rules did, in the secretaries' vocabulary, for the twin's context (hybrid)
_RULE_ACTIONS = {"find_slots": "search_slots", "book": "book", "practice_info": "give_info",
                 "leave_message": "take_message", "verify_identity": "find_patient",
                 "cancel_appointment": "cancel", "reschedule_appointment": "move",
                 "end_call": "end_call", "transfer_to_human": "transfer"}


class ModelPolicy:
    """The twin: actions and words from a model, in the secretaries' vocabulary."""

    name = "model"
    vocabulary = "corpus"

    def __init__(self, *, llm: ChatLLM, profile: Any, now: Callable[[], datetime],
                 actions: Any = None, max_rounds: int = 3, max_actions: int = 4,
                 filler: str = "Un instant, je regarde.", early_ack: bool = True) -> None:
        self._llm = llm
        self._filler = filler
        self._early_ack = early_ack
        self._profile = profile
        self._now = now
        self._actions = actions  # voice.actions.SecretaryActions, for the rules' offers (hybrid)
        self._max_rounds = max_rounds
        self._max_actions = max_actions
        self._system: str | None = None

    # -- the prompt -----------------------------------------------------------------------------
    def system_prompt(self) -> str:
        if self._system is None:  # fixed for the call: the prefix cache is reused every turn
            self._system = twin_format.system_prompt(self._profile, now=self._now())
        return self._system

    def messages(self, ctx: PolicyContext) -> list[dict[str, Any]]:
        """The twin's view of the call so far (arguments as dicts, as in training)."""
        out: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt()},
                                     twin_format.assistant_message((), ctx.greeting)]
        for turn in ctx.turns:
            out.append(twin_format.patient_message(turn.user))
            if turn is ctx.turn:
                break
            recorded = getattr(turn, "policy_messages", None)
            if recorded:
                out.extend(recorded)
            elif turn.reply.strip():
                out.append(twin_format.assistant_message((), turn.reply.strip()))
        return out

    def record_rules_turn(self, turn: Any, actions: Sequence[tuple[str, dict[str, Any], str]],
                          words: str) -> None:
        """A turn the rules answered (hybrid), as the secretaries' actions and words."""
        done = []
        for name, _args, _by in actions:
            action = _RULE_ACTIONS.get(name)
            if action is None:
                continue
            args, result = self._rule_action(action)
            done.append({"action": action, "args": args, "result": result})
        turn.policy_messages = twin_format.secretary_turn_messages(done, words)

    def _rule_action(self, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
        st = getattr(getattr(self._actions, "_tools", None), "state", None)
        if action == "search_slots" and st is not None and st.proposed is not None:
            slot = st.proposed
            if self._actions is not None:
                others = sorted((s for s in st.offered if s is not slot), key=lambda s: s.start)
                self._actions.offered = [slot, *others[:2]]
                slots = [s.start.strftime("%Y-%m-%dT%H:%M") for s in self._actions.offered]
            else:
                slots = [slot.start.strftime("%Y-%m-%dT%H:%M")]
            return ({"practitioner": slot.practitioner_id,
                     "appointment_type": slot.appointment_type}, {"slots": slots})
        if action == "book" and st is not None and st.booked:
            return {}, {"appointment_id": st.booked[-1]}
        return {}, {}

    async def warm(self, ctx: PolicyContext) -> None:
        warm = getattr(self._llm, "warm", None)
        if warm is not None:
            # the call so far (the system prompt and greeting before the first turn)
            await warm(twin_format.to_openai_messages(self.messages(ctx)),
                       twin_format.tool_schemas())

    # -- a turn ---------------------------------------------------------------------------------
    async def propose(self, ctx: PolicyContext) -> AsyncIterator[Speech]:
        turn = ctx.turn
        turn.policy = "model"
        history = self.messages(ctx)
        produced: list[dict[str, Any]] = []
        turn.policy_messages = produced
        said_filler = False
        for _round in range(self._max_rounds + 1):
            started = time.monotonic()
            words = ""
            calls: list[ToolCall] = []
            stream = self._llm.stream(twin_format.to_openai_messages([*history, *produced]),
                                      twin_format.tool_schemas())
            async for item in stream:
                if turn.llm_first_token_s is None:
                    turn.llm_first_token_s = time.monotonic() - started
                if isinstance(item, ActionStarted):
                    if (self._early_ack and not said_filler and not words.strip()
                            and not produced and item.name in SLOW_ACTIONS):
                        said_filler = True  # the twin writes its actions before any word
                        yield Speech(self._filler + " ", "rules")
                    continue
                if isinstance(item, TextDelta):
                    if calls:
                        continue  # words after a tool call come after its result
                    words += item.text
                    yield Speech(item.text, "model")
                else:
                    calls.append(item)
            if not calls:
                produced.append(twin_format.assistant_message((), words.strip()))
                return
            executed: list[tuple[ToolCall, Any]] = []
            spoken = None
            for call in calls[:self._max_actions]:
                result = await ctx.act(call)
                executed.append((call, result))
                if result.say or result.end_call or result.handoff:
                    spoken = result
                    break  # the caller has been answered: the rest waits for their reply
            produced.append(twin_format.assistant_message(
                [{"action": c.name, "args": c.arguments} for c, _r in executed], words.strip()))
            for call, result in executed:
                data = result.data if result.data or result.ok else {"error": result.content}
                produced.append(twin_format.tool_result_message(call.name, data))
            if spoken is not None:
                if spoken.say:
                    produced.append(twin_format.assistant_message((), spoken.say))
                yield Speech(spoken.say or "", "tool", end_call=spoken.end_call,
                             handoff=spoken.handoff)
                return
        yield Speech(REPEAT_FR, "rules")


class RawPromptLLM(OpenAICompatibleLLM):
    """``ChatLLM`` over ``/v1/completions`` with the twin's own rendering of the prompt
    (``twin_format.render_prompt``, the Qwen2.5 chat template with ``tools=``); the client,
    its options and ``aclose`` are :class:`voice.llm.OpenAICompatibleLLM`'s."""

    def __init__(self, *, base_url: str, model: str, api_key: str = "local",
                 temperature: float = 0.2, max_tokens: int = 200, timeout_s: float = 30.0) -> None:
        super().__init__(base_url=base_url, model=model, api_key=api_key,
                         temperature=temperature, max_tokens=max_tokens, timeout_s=timeout_s)
        #: the last prompt sent (for tests and debugging)
        self.last_prompt = ""

    @staticmethod
    def render(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> str:
        plain = []
        for m in messages:
            m2 = {k: v for k, v in m.items() if k not in {"tool_call_id"}}
            if m2.get("tool_calls"):
                m2["tool_calls"] = [{"type": "function", "function": {
                    "name": c["function"]["name"],
                    "arguments": _as_dict(c["function"].get("arguments"))}}
                    for c in m2["tool_calls"]]
            plain.append(m2)
        return twin_format.render_prompt(plain, tools=list(tools) or None,
                                         add_generation_prompt=True)

    async def warm(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> None:
        prompt = self.render(messages, tools).rsplit(twin_format.IM_START + "assistant\n", 1)[0]
        client = self._get_client().with_options(timeout=max(self._timeout_s, 180.0))
        try:
            await client.completions.create(model=self.model, prompt=prompt, max_tokens=1,
                                            temperature=0.0)
        except Exception as exc:  # warming is best effort; the real turn reports errors
            logger.warning("LLM warm-up failed: %s", exc)

    async def stream(self, messages: Sequence[dict[str, Any]],
                     tools: Sequence[dict[str, Any]]
                     ) -> AsyncIterator[TextDelta | ActionStarted | ToolCall]:
        """Like ``OpenAICompatibleLLM.stream``: ``timeout_s`` is an overall deadline on the
        whole reply; a server that fails or vanishes raises ``LLMUnavailableError``."""
        import httpx
        import openai

        self.last_prompt = prompt = self.render(messages, tools)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            response = await asyncio.wait_for(self._get_client().completions.create(
                model=self.model, prompt=prompt, stream=True, temperature=self._temperature,
                max_tokens=self._max_tokens, stop=[twin_format.IM_END]), timeout=self._timeout_s)
        except TimeoutError as exc:
            raise LLMTimeoutError(f"LLM server at {self.base_url} did not answer within "
                                  f"{self._timeout_s:g} s") from exc
        except (openai.APIConnectionError, openai.APITimeoutError, httpx.HTTPError) as exc:
            raise LLMUnavailableError(f"LLM server at {self.base_url} is unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailableError(f"LLM server at {self.base_url} answered {exc.status_code}: "
                                      f"{str(exc.message)[:200]}") from exc
        text = ""
        mode = None  # "words": streamed as they come; "held": actions, read at the end
        announced = False  # ActionStarted said for this reply
        emitted = 0
        chunks = response.__aiter__()
        try:
            while True:
                try:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError
                    chunk = await asyncio.wait_for(chunks.__anext__(), timeout=remaining)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise LLMTimeoutError(f"LLM reply from {self.base_url} not complete within "
                                          f"{self._timeout_s:g} s") from exc
                piece = chunk.choices[0].text if chunk.choices else ""
                if not piece:
                    continue
                text += piece
                if mode is None:
                    head = text.lstrip()
                    if not head or "<tool_call>".startswith(head):
                        continue  # nothing yet, or an undecided prefix such as "<to"
                    mode = "held" if head[0] in "<{" else "words"
                if mode == "held" and not announced:
                    if (m := CALL_NAME_RE.search(text, emitted)) is not None:
                        announced = True
                        yield ActionStarted(m[1])
                if mode == "words":
                    cut = min((i for i in (text.find("<", emitted), text.find("{", emitted))
                               if i >= 0), default=-1)
                    if cut >= 0:  # an action after words (tagged, or bare JSON): hold the rest
                        mode = "held"
                        if text[emitted:cut].strip():
                            yield TextDelta(text[emitted:cut].rstrip() if emitted
                                            else text[emitted:cut].strip())
                        emitted = cut
                        continue
                    yield TextDelta(text[emitted:].lstrip() if not emitted else text[emitted:])
                    emitted = len(text)
        except (openai.APIConnectionError, openai.APITimeoutError, httpx.HTTPError) as exc:
            raise LLMUnavailableError(f"LLM stream from {self.base_url} broke: {exc}") from exc
        finally:
            close = getattr(response, "close", None)
            if close is not None:  # stop the server generating for nobody
                try:
                    await asyncio.shield(close())
                except Exception:  # closing is best effort
                    logger.debug("closing the LLM stream failed", exc_info=True)
        parsed = twin_format.parse_reply(text[emitted:])
        if parsed.errors:
            logger.info("twin reply with unreadable actions: %s", "; ".join(parsed.errors)[:200])
        if parsed.words:
            yield TextDelta((" " if emitted else "") + parsed.words)
        for action in parsed.actions:
            yield ToolCall(name=action.action, arguments=dict(action.args))


def _as_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
