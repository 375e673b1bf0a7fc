"""Test doubles behind the ``voice.llm.ChatLLM`` protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from voice.llm import ActionStarted, TextDelta, ToolCall

__all__ = ["ScriptedLLM"]


class ScriptedLLM:
    """Answers each request with the next scripted reply; records what it was sent."""

    def __init__(self, replies: Sequence[Sequence[TextDelta | ActionStarted | ToolCall] | Exception] = ()
                 ) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []

    async def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
                     ) -> AsyncIterator[TextDelta | ActionStarted | ToolCall]:
        self.requests.append(list(messages))
        reply = self.replies.pop(0) if self.replies else [TextDelta("Pouvez-vous préciser ?")]
        if isinstance(reply, Exception):
            raise reply
        for item in reply:
            yield item
