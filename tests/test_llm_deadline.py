"""``[llm] timeout_s`` caps a whole streamed reply, not each read (issue 8, item 5).

A real HTTP server on a real socket streams a chat completion one token at a time,
forever, or holds back a tool call: each read is quick, so a per-read timeout never
fires; the client's overall deadline must, and the agent then hands the caller to a
human with a spoken sentence instead of leaving them in silence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from knowledge.profile import default_profile_path, load_profile
from knowledge.prompts import build_system_prompt
from records import BookingService, Database
from records.seed import seed_demo
from voice.agent import FALLBACK_HANDOFF_FR, CallAgent
from voice.llm import LLMTimeoutError, LLMUnavailableError, OpenAICompatibleLLM, TextDelta
from voice.tools import PracticeTools

TODAY = date(2026, 11, 28)


def _chunk(content: str) -> bytes:
    data = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


@pytest.fixture()
async def trickle() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``mode``: ``words`` (a word every 0.2 s, never finishing) or ``tool`` (a tool call
    written as text, a character every 0.2 s: nothing speakable ever comes)."""
    state: dict[str, Any] = {"mode": "words", "sent": 0, "disconnected": asyncio.Event()}

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        text = ('<tool_call>{"name": "find_slots", "arguments": {"day": "jeudi"' + " " * 10_000
                if state["mode"] == "tool" else "Alors " * 10_000)
        step = 1 if state["mode"] == "tool" else 6
        try:
            for i in range(0, len(text), step):
                await resp.write(_chunk(text[i:i + step]))
                state["sent"] += 1
                await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.CancelledError):
            state["disconnected"].set()
            raise
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", state
    await runner.cleanup()


async def test_a_trickling_stream_is_cut_at_the_deadline(trickle: tuple[str, dict[str, Any]]
                                                         ) -> None:
    url, state = trickle
    llm = OpenAICompatibleLLM(base_url=url, model="m", timeout_s=1.5)
    got: list[str] = []

    async def consume() -> None:
        async for item in llm.stream([{"role": "user", "content": "x"}], []):
            assert isinstance(item, TextDelta)
            got.append(item.text)

    with pytest.raises(LLMTimeoutError):  # the ceiling only keeps a broken client from hanging
        await asyncio.wait_for(consume(), timeout=120)
    assert state["sent"] >= 1  # the stream was flowing (each read quick), yet it was cut
    assert state["sent"] < 100  # it stopped: 10 000 words were on offer
    # the client hung up the stream: the server stops generating for nobody
    await asyncio.wait_for(state["disconnected"].wait(), timeout=30)
    await llm.aclose()


async def test_a_held_back_tool_call_is_cut_at_the_deadline(trickle: tuple[str, dict[str, Any]]
                                                            ) -> None:
    url, state = trickle
    state["mode"] = "tool"
    llm = OpenAICompatibleLLM(base_url=url, model="m", timeout_s=1.5)

    async def consume() -> None:
        async for _item in llm.stream([{"role": "user", "content": "x"}], []):
            pytest.fail("nothing speakable was streamed")

    with pytest.raises(LLMUnavailableError):
        await asyncio.wait_for(consume(), timeout=120)
    assert state["sent"] >= 1  # chunks kept coming: only an overall deadline stops this
    await llm.aclose()


@pytest.fixture()
async def booking(tmp_path: Path) -> AsyncIterator[BookingService]:
    db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await db.create_schema()
    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
    yield BookingService(db=db, now=lambda: datetime(2026, 11, 28, 10, 0).astimezone())
    await db.dispose()


async def test_the_caller_hears_a_handoff_sentence_when_the_model_is_too_slow(
        trickle: tuple[str, dict[str, Any]], booking: BookingService) -> None:
    url, state = trickle
    state["mode"] = "tool"
    profile = load_profile(default_profile_path())
    tools = PracticeTools(booking=booking, profile=profile, call_id="slow-llm", today=lambda: TODAY)
    llm = OpenAICompatibleLLM(base_url=url, model="m", timeout_s=1.5)
    agent = CallAgent(llm=llm, tools=tools, system_prompt=build_system_prompt(profile, today=TODAY),
                      greeting="Cabinet médical des Tilleuls, bonjour.")
    agent.greeting()

    async def turn() -> str:
        return "".join([p async for p in agent.respond(
            "Dites-moi, quel temps fera-t-il demain à la mer ?")])

    said = await asyncio.wait_for(turn(), timeout=120)
    await llm.aclose()
    assert said.strip().endswith(FALLBACK_HANDOFF_FR)
    assert agent.ended and agent.handoff is not None and agent.handoff.reason == "bot_failure"
    assert "1.5 s" in agent.handoff.summary
