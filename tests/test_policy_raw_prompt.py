"""``RawPromptLLM``: the twin's prompt over ``/v1/completions``, against a real HTTP server.

A local aiohttp server speaks the OpenAI completions stream (server-sent events) and
records what it was sent: the prompt must be the training template character for
character; words stream as they come; actions written as ``<tool_call>`` blocks come back
as ``ToolCall``s; a server that breaks the stream is ``LLMUnavailableError`` (the agent
then hands the call to a human).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from knowledge import twin_format
from knowledge.profile import default_profile_path, load_profile
from voice.llm import ActionStarted, LLMUnavailableError, TextDelta, ToolCall
from voice.model_policy import RawPromptLLM


def _event(text: str) -> bytes:
    data = {"id": "c1", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "text": text, "finish_reason": None, "logprobs": None}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


@pytest.fixture()
async def server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"reply": "", "requests": [], "break": False}

    async def completions(request: web.Request) -> web.StreamResponse:
        state["requests"].append(await request.json())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        reply = state["reply"]
        for i in range(0, len(reply), 7):
            await resp.write(_event(reply[i:i + 7]))
            if state["break"] and i > 10:
                request.transport.close()  # type: ignore[union-attr]
                return resp
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", state
    await runner.cleanup()


def _messages() -> list[dict[str, Any]]:
    profile = load_profile(default_profile_path())
    return twin_format.to_openai_messages([
        {"role": "system", "content": twin_format.system_prompt(profile,
                                                                now=datetime(2026, 11, 28, 10))},
        twin_format.assistant_message((), "Cabinet médical, bonjour."),
        twin_format.patient_message("Je voudrais voir le docteur Morel jeudi.")])


async def _collect(llm: RawPromptLLM) -> list[TextDelta | ToolCall]:
    return [item async for item in llm.stream(_messages(), twin_format.tool_schemas())]


async def test_words_stream_and_the_prompt_is_the_training_template(
        server: tuple[str, dict[str, Any]]) -> None:
    url, state = server
    state["reply"] = "Bien sûr. Pour quel motif ? Et à quel nom ?"
    llm = RawPromptLLM(base_url=url, model="m", timeout_s=60)
    items = await _collect(llm)
    await llm.aclose()
    assert len(items) > 1 and all(isinstance(i, TextDelta) for i in items)
    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == state["reply"]
    sent = state["requests"][0]
    assert sent["prompt"] == twin_format.render_prompt(
        [{**m} for m in _plain(_messages())], tools=twin_format.tool_schemas(),
        add_generation_prompt=True)
    assert sent["prompt"].endswith("<|im_start|>assistant\n") and sent["stop"] == ["<|im_end|>"]


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "tool_call_id"} for m in messages]


async def test_actions_come_back_as_tool_calls(server: tuple[str, dict[str, Any]]) -> None:
    url, state = server
    state["reply"] = ('<tool_call>\n{"name": "search_slots", "arguments": {"practitioner": '
                      '"morel", "appointment_type": "consultation", "day": "2026-12-03"}}\n'
                      '</tool_call>\n<tool_call>\n{"name": "nonsense", "arguments": {}}\n'
                      '</tool_call>')
    llm = RawPromptLLM(base_url=url, model="m", timeout_s=60)
    items = await _collect(llm)
    await llm.aclose()
    assert items == [ActionStarted("search_slots"), ToolCall(name="search_slots", arguments={
        "practitioner": "morel", "appointment_type": "consultation", "day": "2026-12-03"},
        id=items[1].id)]  # type: ignore[union-attr]  # the name announced, then the call


async def test_a_broken_stream_is_llm_unavailable(server: tuple[str, dict[str, Any]]) -> None:
    url, state = server
    state["reply"], state["break"] = "Alors, voyons voir, je regarde l'agenda. " * 5, True
    llm = RawPromptLLM(base_url=url, model="m", timeout_s=60)
    with pytest.raises(LLMUnavailableError):
        await _collect(llm)
    await llm.aclose()


async def test_nobody_listening_is_llm_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = RawPromptLLM(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=30)
    with pytest.raises(LLMUnavailableError):
        await _collect(llm)
    await llm.aclose()


async def test_bare_json_actions_are_held_not_spoken(server: tuple[str, dict[str, Any]]) -> None:
    """A call written as bare JSON (no ``<tool_call>`` tag) after some words: the words
    stream, the JSON never reaches the caller, and the action comes back as a ToolCall."""
    url, state = server
    state["reply"] = ('Je vous passe le quinze.\n{"name": "emergency", "arguments": '
                      '{"number": "15", "reason": "douleur thoracique"}}')
    llm = RawPromptLLM(base_url=url, model="m", timeout_s=60)
    items = await _collect(llm)
    await llm.aclose()
    said = "".join(i.text for i in items if isinstance(i, TextDelta))
    assert "{" not in said and "Je vous passe le quinze." in said
    calls = [i for i in items if isinstance(i, ToolCall)]
    assert [(c.name, c.arguments["number"]) for c in calls] == [("emergency", "15")]
