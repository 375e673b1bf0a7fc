"""The embedded LLM keeps its warm prompt state on disk (voice/llm_warm_state.py): a restart
loads it instead of evaluating the fixed prompt again, and answers exactly as before."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from voice.llm_warm_state import pop_state_dir, state_key

SYSTEM = ("Tu es la secrétaire d'un cabinet médical. "
          + " ".join(f"Règle {i} : réponds poliment, brièvement, en français." for i in range(40)))


def test_state_dir_is_taken_out_of_the_server_arguments() -> None:
    argv = ["prog", "--model", "m.gguf", "--state_dir", "/tmp/s", "--port", "1"]
    assert pop_state_dir(argv) == Path("/tmp/s")
    assert argv == ["prog", "--model", "m.gguf", "--port", "1"]
    assert pop_state_dir(argv) is None
    with pytest.raises(SystemExit):
        pop_state_dir(["prog", "--state_dir"])


def test_state_key_follows_model_context_and_build(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"x" * 10)
    a = state_key(model, 4096, "0.3.36")
    assert a == state_key(model, 4096, "0.3.36")
    assert a != state_key(model, 2048, "0.3.36")
    assert a != state_key(model, 4096, "0.3.37")
    model.write_bytes(b"y" * 11)
    assert a != state_key(model, 4096, "0.3.36")


async def _ask(server: object, text: str) -> str:
    async with httpx.AsyncClient(timeout=600) as client:
        r = await client.post(server.base_url + "/chat/completions", json={  # type: ignore[attr-defined]
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            "max_tokens": 12, "temperature": 0.0, "seed": 1})
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])


@pytest.mark.models
@pytest.mark.slow
async def test_a_restart_loads_the_saved_prompt_state(tmp_path: Path) -> None:
    from twin.models import ModelError, require
    from voice.embedded_llm import EmbeddedLLMServer

    try:
        model = require("qwen2.5-coder-0.5b-instruct-q4_k_m") / "model.gguf"
    except ModelError as exc:
        pytest.skip(str(exc))
    state_dir, log = tmp_path / "state", tmp_path / "llama.log"
    answers = []
    for run in range(2):
        server = EmbeddedLLMServer(model_path=model, n_ctx=2048, state_dir=state_dir, log_path=log,
                                   startup_timeout_s=600)
        await server.start()
        try:
            if run == 0:  # the cold evaluation, which writes the state
                await _ask(server, "Bonjour, vous êtes ouverts demain ?")
            # the prompt's cells reused (in memory, then from disk): the last prompt token
            # is decoded again alone, so both answers come from the same computation
            answers.append(await _ask(server, "Bonjour, vous êtes ouverts demain ?"))
        finally:
            await server.stop()
    saved = list(state_dir.glob("warm-*.pkl"))
    assert len(saved) == 1
    assert saved[0].stat().st_size < 100_000_000  # the prompt's KV cells, not the whole context
    text = log.read_text()
    assert "warm LLM state saved" in text and "tokens from" in text, text[-2000:]
    assert answers[0] and answers[0] == answers[1]  # the loaded state is the evaluated prompt
