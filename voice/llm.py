"""Chat LLM behind a small Protocol: any OpenAI-compatible server (Ollama, llama.cpp).

Tool calls arrive in one of two shapes, and both are accepted:

* the API's ``tool_calls`` deltas (Ollama parses Qwen's tool format itself);
* text in the content stream, as Qwen models write it when the server passes the
  output through untouched (llama-cpp-python with the GGUF's own chat template):
  ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` (small models also
  write ``<tools>`` or a bare JSON object).

:class:`OpenAICompatibleLLM.stream` yields :class:`TextDelta` pieces as soon as it
knows they are plain speech, :class:`ActionStarted` as soon as the name of a call being
written is known (the policy may say "Un instant" while the model writes its arguments,
seconds on a CPU), and :class:`ToolCall` objects once a call is complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ActionStarted",
    "ChatLLM",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "OpenAICompatibleLLM",
    "TextDelta",
    "ToolCall",
    "parse_text_tool_calls",
]

logger = logging.getLogger(__name__)


class LLMUnavailableError(RuntimeError):
    """The LLM server cannot be reached or failed; the call must go to a human."""


class LLMTimeoutError(LLMUnavailableError):
    """The whole reply did not arrive within ``timeout_s`` (a slow or stuck stream)."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ActionStarted:
    """The model has begun writing a call to ``name``; the :class:`ToolCall` follows once
    its arguments are complete (or nothing, if they never are)."""

    name: str


#: the name of a call being written as text: ``<tool_call>{"name": "find_slots"``
CALL_NAME_RE = re.compile(r'"name"\s*:\s*"([A-Za-z_][\w]*)"')


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])

    def as_message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}


class ChatLLM(Protocol):
    """What the call agent needs from a language model."""

    def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
               ) -> AsyncIterator[TextDelta | ActionStarted | ToolCall]:
        """An async generator of speech pieces and tool calls (and, optionally, an
        :class:`ActionStarted` before a call; consumers may ignore it)."""
        ...  # pragma: no cover


_OPENERS = ("<tool_call>", "<tools>", "<function", "{")
_BLOCK_RE = re.compile(r"<(tool_call|tools|function[^>]*)>\s*(.*?)\s*(?:</\1>|</tool_call>|</tools>|$)",
                       re.S)


def _balanced_object(text: str, start: int) -> str | None:
    """The JSON object starting at ``text[start] == '{'``, braces balanced outside strings."""
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def _decode_call(blob: str) -> ToolCall | None:
    """Decode ``{"name": …, "arguments": {…}}``, tolerating the stray or missing braces
    and code fences small models add around it."""
    key = blob.find('"name"')
    if key < 0:
        return None
    start = blob.rfind("{", 0, key)
    if start < 0:
        return None
    candidate = _balanced_object(blob, start)
    if candidate is None:  # unclosed: close it
        candidate = blob[start:].rstrip().rstrip("`")
        candidate += "}" * max(0, candidate.count("{") - candidate.count("}"))
    try:
        obj = json.loads(candidate)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            args = {}
    return ToolCall(name=obj["name"], arguments=args if isinstance(args, dict) else {})


def parse_text_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Split model output into (speech text, tool calls written as text)."""
    calls: list[ToolCall] = []
    for m in _BLOCK_RE.finditer(text):
        body = m.group(2)
        pos = 0
        while (key := body.find('"name"', pos)) >= 0:
            start = max(0, body.rfind("{", 0, key))
            call = _decode_call(body[start:])
            if call:
                calls.append(call)
                obj = _balanced_object(body, start)
                pos = start + len(obj) if obj else len(body)
            else:
                pos = key + 6
    speech = _BLOCK_RE.sub("", text).strip()
    if not calls and speech.startswith("{"):
        call = _decode_call(speech)
        if call:
            return "", [call]
    return speech, calls


class OpenAICompatibleLLM:
    """Streams chat completions from an OpenAI-compatible ``/v1`` endpoint.

    ``timeout_s`` is an overall deadline on each streamed reply, from the request to
    its last chunk: a server that trickles tokens (or holds back a long tool call)
    cannot keep a caller waiting longer, whatever the HTTP read timeout sees.
    """

    def __init__(self, *, base_url: str, model: str, api_key: str = "local",
                 temperature: float = 0.2, max_tokens: int = 160, timeout_s: float = 30.0) -> None:
        self.base_url = base_url
        self.model = model
        self._api_key = api_key
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                                       timeout=self._timeout_s, max_retries=0)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def warm(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> None:
        """Evaluate a prompt prefix once (one output token) so the server caches it.

        llama.cpp keeps the last prompt's KV cache and Ollama keeps the model
        loaded: the first real turn then only pays for the patient's words.
        """
        client = self._get_client().with_options(timeout=max(self._timeout_s, 180.0))
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages), "max_tokens": 1,
                                  "temperature": 0.0}
        if tools:
            kwargs["tools"] = list(tools)
        try:
            await client.chat.completions.create(**kwargs)
        except Exception as exc:  # warming is best effort; the real turn reports errors
            logger.warning("LLM warm-up failed: %s", exc)

    async def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
                     ) -> AsyncIterator[TextDelta | ActionStarted | ToolCall]:
        import openai

        client = self._get_client()
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "stream": True,
            "temperature": self._temperature, "max_tokens": self._max_tokens,
        }
        if tools:
            kwargs["tools"] = list(tools)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            response = await asyncio.wait_for(client.chat.completions.create(**kwargs),
                                              timeout=self._timeout_s)
        except TimeoutError as exc:
            raise LLMTimeoutError(f"LLM server at {self.base_url} did not answer within "
                                  f"{self._timeout_s:g} s") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise LLMUnavailableError(f"LLM server at {self.base_url} is unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailableError(f"LLM server at {self.base_url} answered {exc.status_code}: "
                                      f"{str(exc.message)[:200]}") from exc

        buffer = ""  # content held back while it may still be a tool call
        holding = False
        announced = False  # ActionStarted said for this reply
        api_calls: dict[int, dict[str, str]] = {}
        chunks = response.__aiter__()
        try:
            while True:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    chunk = await asyncio.wait_for(chunks.__anext__(), timeout=remaining)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise LLMTimeoutError(f"LLM reply from {self.base_url} not complete within "
                                          f"{self._timeout_s:g} s") from exc
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                for tc in delta.tool_calls or []:
                    slot = api_calls.setdefault(tc.index or 0, {"name": "", "arguments": "", "id": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function and tc.function.name:
                        slot["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        slot["arguments"] += tc.function.arguments
                    if not announced and slot["name"]:
                        announced = True
                        yield ActionStarted(slot["name"])
                piece = delta.content or ""
                if not piece:
                    continue
                if holding:
                    buffer += piece
                    if not announced and (m := CALL_NAME_RE.search(buffer)) is not None:
                        announced = True
                        yield ActionStarted(m[1])
                    continue
                buffer += piece
                stripped = buffer.lstrip()
                if not stripped:
                    continue
                if any(stripped.startswith(o) or o.startswith(stripped) for o in _OPENERS):
                    if any(stripped.startswith(o) for o in _OPENERS):
                        holding = True
                    continue  # undecided prefix such as "<to": wait for more
                # plain speech; a tool call may still follow later in the text
                if "<" in buffer:
                    before, _, rest = buffer.partition("<")
                    if before:
                        yield TextDelta(before)
                    buffer = "<" + rest
                    holding = True
                    continue
                yield TextDelta(buffer)
                buffer = ""
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise LLMUnavailableError(f"LLM stream from {self.base_url} broke: {exc}") from exc
        finally:
            # stop the server generating for nobody (a deadline, or the caller barged in)
            close = getattr(response, "close", None)
            if close is not None:
                try:
                    await asyncio.shield(close())
                except Exception:  # closing is best effort
                    logger.debug("closing the LLM stream failed", exc_info=True)

        for slot in api_calls.values():
            try:
                args = json.loads(slot["arguments"]) if slot["arguments"].strip() else {}
            except json.JSONDecodeError:
                args = {}
            yield ToolCall(name=slot["name"], arguments=args if isinstance(args, dict) else {},
                           **({"id": slot["id"]} if slot["id"] else {}))
        if buffer.strip():
            speech, calls = parse_text_tool_calls(buffer)
            if speech:
                yield TextDelta(speech)
            for call in calls:
                yield call
