"""The OpenAI-compatible LLM client against a real HTTP server replaying recorded streams."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from voice.llm import (
    ActionStarted,
    LLMUnavailableError,
    OpenAICompatibleLLM,
    TextDelta,
    ToolCall,
    parse_text_tool_calls,
)

FIXTURES = Path(__file__).parent / "fixtures" / "llm"


@pytest.fixture()
async def replay_server() -> AsyncIterator[tuple[str, dict[str, object]]]:
    state: dict[str, object] = {"fixture": "llamacpp_text", "status": 200, "requests": []}

    async def completions(request: web.Request) -> web.StreamResponse:
        state["requests"].append(await request.json())  # type: ignore[union-attr]
        if state["status"] != 200:
            return web.json_response({"error": {"message": "model crashed"}}, status=int(state["status"]))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        body = (FIXTURES / f"{state['fixture']}.sse").read_bytes()
        for piece in body.split(b"\n\n"):  # event by event, as the server sent them
            if piece.strip():
                await resp.write(piece + b"\n\n")
        await resp.write_eof()
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


async def _collect(llm: OpenAICompatibleLLM) -> list[TextDelta | ToolCall]:
    out = [item async for item in llm.stream([{"role": "user", "content": "x"}], [])]
    await llm.aclose()
    return out


async def test_llamacpp_text_tool_call_is_parsed(replay_server) -> None:
    url, state = replay_server
    state["fixture"] = "llamacpp_tool_call"
    items = await _collect(OpenAICompatibleLLM(base_url=url, model="m"))
    calls = [i for i in items if isinstance(i, ToolCall)]
    assert [c.name for c in calls] == ["find_slots"]
    assert calls[0].arguments == {"practitioner": "Morel", "day": "jeudi", "day_part": "après-midi"}
    assert not [i for i in items if isinstance(i, TextDelta)], "a tool call must not be spoken"
    # the call's name is announced once written, before the call (its arguments) is complete
    assert items.index(ActionStarted("find_slots")) < items.index(calls[0])


async def test_llamacpp_plain_text_streams(replay_server) -> None:
    url, _state = replay_server
    items = await _collect(OpenAICompatibleLLM(base_url=url, model="m"))
    assert all(isinstance(i, TextDelta) for i in items) and len(items) > 3  # streamed, not at once
    assert "".join(i.text for i in items) == "Bonjour, je suis bien au cabinet médical."  # type: ignore[union-attr]


async def test_ollama_tool_call_deltas(replay_server) -> None:
    url, state = replay_server
    state["fixture"] = "ollama_tool_call"
    items = await _collect(OpenAICompatibleLLM(base_url=url, model="qwen2.5:7b-instruct"))
    assert items == [ActionStarted("find_slots"), ToolCall(name="find_slots", id="call_k3v9x2",
                     arguments={"day": "jeudi", "day_part": "après-midi", "practitioner": "Morel"})]
    assert state["requests"][0]["model"] == "qwen2.5:7b-instruct"  # type: ignore[index]


async def test_server_error_is_llm_unavailable(replay_server) -> None:
    url, state = replay_server
    state["status"] = 500
    with pytest.raises(LLMUnavailableError, match="answered 500"):
        await _collect(OpenAICompatibleLLM(base_url=url, model="m"))


async def test_dead_server_is_llm_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    with pytest.raises(LLMUnavailableError, match="unreachable"):
        await _collect(OpenAICompatibleLLM(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=2))


@pytest.mark.parametrize("text,name,args", [
    ('<tool_call>\n{"name": "book", "arguments": {"name": "Paul Girard"}}\n</tool_call>', "book",
     {"name": "Paul Girard"}),
    ('<tools>\n{"name": "find_slots", "arguments": {"practitioner": "morel"}}\n</tools>', "find_slots",
     {"practitioner": "morel"}),
    ('{{"name": "end_call", "arguments": {}}}}', "end_call", {}),
    ('{"name": "practice_info", "arguments": "{\\"topic\\": \\"hours\\"}"}', "practice_info",
     {"topic": "hours"}),
])
def test_text_tool_call_shapes(text: str, name: str, args: dict[str, str]) -> None:
    speech, calls = parse_text_tool_calls(text)
    assert speech == "" and len(calls) == 1
    assert (calls[0].name, calls[0].arguments) == (name, args)


def test_speech_with_braces_is_not_a_tool_call() -> None:
    assert parse_text_tool_calls("Le tarif est de 30 euros.") == ("Le tarif est de 30 euros.", [])
