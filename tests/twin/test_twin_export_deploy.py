"""Export (GGUF adapter that llama.cpp loads, and computes with exactly as peft does) and
deploy (safety gate, registry, rollback; Ollama through recorded API exchanges)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

# Generous ceiling: the tiny run takes about a minute on a quiet 2-core box, far more on a
# shared busy one (it is trained once per session and shared by the tests).
pytestmark = [pytest.mark.models, pytest.mark.timeout(1800)]

TOKENS = [151644, 872, 198, 39, 812, 11, 1879, 151645, 198, 151644, 77091, 198]


def test_gguf_adapter_loads_in_llama_cpp_and_matches_peft(tiny_run: Path) -> None:
    import gguf
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import PeftModel

    from twin_training.base import tiny_random_model

    export = json.loads((tiny_run / "export" / "export.json").read_text())
    reader = gguf.GGUFReader(export["adapter_gguf"])
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(16.0)
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.1.ffn_down.weight.lora_b" in names
    assert len(names) == 2 * 7 * 2  # 2 layers x 7 modules x (A, B)

    def llama_logits(lora: str | None) -> Any:
        llm = Llama(model_path=export["base_gguf"], lora_path=lora, n_ctx=64, n_threads=2,
                    logits_all=True, verbose=False)
        llm.eval(TOKENS)
        out = np.array(llm.scores[: len(TOKENS)])
        llm.close()
        return out

    with_adapter = llama_logits(export["adapter_gguf"])
    without = llama_logits(None)
    run = json.loads((tiny_run / "run.json").read_text())
    model = tiny_random_model(vocab_size=151936, seed=run["config"]["train"]["seed"])
    with torch.no_grad():
        base_ref = model(input_ids=torch.tensor([TOKENS])).logits[0].numpy()
        peft_ref = PeftModel.from_pretrained(model, str(tiny_run / "adapter"))(
            input_ids=torch.tensor([TOKENS])).logits[0].numpy()
    assert np.abs(without - base_ref).max() < 1e-3
    assert np.abs(with_adapter - peft_ref).max() < 1e-3
    assert np.abs(peft_ref - base_ref).max() > 1e-2  # the adapter does something
    modelfile = (tiny_run / "export" / "Modelfile").read_text()
    assert f"FROM {export['base_gguf']}" in modelfile
    assert f"ADAPTER {export['adapter_gguf']}" in modelfile
    assert 'TEMPLATE """{{ .Prompt }}"""' in modelfile
    assert json.loads((tiny_run / "export" / "ledger.json").read_text())["total_examples"] > 0


def _report(tmp: Path, name: str, **safety: Any) -> Path:
    base = {"emergency_recall": 1.0, "medical_advice_refusal": 1.0, "false_alarm_rate": 0.0,
            "pii_emitted": 0}
    twin = {**base, **safety}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"models": {"base": {"safety": base},
                                           "twin": {"safety": twin, "action_accuracy": 0.5}}}))
    return path


def test_deploy_refuses_a_less_safe_model_and_rolls_back(tiny_run: Path, tmp_path: Path
                                                         ) -> None:
    from twin_training.deploy import DeployError, deploy_export, rollback_deployment
    from twin_training.registry import current_deployment, read_registry

    registry = tmp_path / "twin" / "registry.json"
    export = tiny_run / "export"
    with pytest.raises(DeployError, match="emergency_recall"):
        deploy_export(export, _report(tmp_path, "worse", emergency_recall=0.5),
                      registry=registry, echo=lambda s: None)
    assert current_deployment(registry) is None
    first = deploy_export(export, _report(tmp_path, "ok"), registry=registry,
                          model_name="twin-a", echo=lambda s: None)
    assert current_deployment(registry)["id"] == "twin-a"
    assert first["adapter_gguf"].endswith("adapter.gguf")
    # the next one is compared with the deployed one: more personal data -> refused
    with pytest.raises(DeployError, match="pii_emitted"):
        deploy_export(export, _report(tmp_path, "leaky", pii_emitted=2), registry=registry,
                      echo=lambda s: None)
    with pytest.raises(DeployError, match="not measured"):
        deploy_export(export, _report(tmp_path, "unmeasured", emergency_recall=None),
                      registry=registry, echo=lambda s: None)
    deploy_export(export, _report(tmp_path, "better", false_alarm_rate=0.0),
                  registry=registry, model_name="twin-b", echo=lambda s: None)
    reg = read_registry(registry)
    assert reg["current"]["id"] == "twin-b" and reg["previous"][-1]["id"] == "twin-a"
    assert rollback_deployment(registry=registry)["id"] == "twin-a"
    assert current_deployment(registry)["id"] == "twin-a"
    assert rollback_deployment(registry=registry) is None
    with pytest.raises(DeployError):
        rollback_deployment(registry=registry)
    actions = [h["action"] for h in read_registry(registry)["history"]]
    assert actions == ["deploy", "deploy", "rollback", "rollback"]


def test_deploy_refuses_an_adapter_llama_cpp_cannot_load(tiny_run: Path, tmp_path: Path
                                                         ) -> None:
    from twin_training.deploy import DeployError, deploy_export

    broken = tmp_path / "export"
    broken.mkdir()
    manifest = json.loads((tiny_run / "export" / "export.json").read_text())
    (broken / "adapter.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    manifest["adapter_gguf"] = str(broken / "adapter.gguf")
    (broken / "export.json").write_text(json.dumps(manifest))
    registry = tmp_path / "registry.json"
    with pytest.raises(DeployError, match=r"llama\.cpp cannot load"):
        deploy_export(broken, _report(tmp_path, "ok"), registry=registry, echo=lambda s: None)
    assert not registry.exists()


def test_deploy_creates_the_model_on_ollama(tiny_run: Path, tmp_path: Path,
                                            ollama_replay: Any) -> None:
    from twin_training.deploy import deploy_export
    from twin_training.registry import current_deployment

    registry = tmp_path / "registry.json"
    export = tiny_run / "export"
    manifest = json.loads((export / "export.json").read_text())
    entry = deploy_export(export, _report(tmp_path, "ok"), registry=registry,
                          ollama_url=ollama_replay.url, model_name="twin-test",
                          echo=lambda s: None)
    assert entry["ollama_model"] == "twin-test"
    assert current_deployment(registry)["ollama_url"] == ollama_replay.url

    def digest(path: str) -> str:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()

    base, adapter = digest(manifest["base_gguf"]), digest(manifest["adapter_gguf"])
    assert set(ollama_replay.blobs) == {base, adapter}
    create = next(body for method, path, body in ollama_replay.requests
                  if path == "/api/create")
    assert create["model"] == "twin-test"
    assert create["files"] == {Path(manifest["base_gguf"]).name: base}
    assert create["adapters"] == {"adapter.gguf": adapter}
    assert create["template"] == "{{ .Prompt }}"
    assert "<|im_end|>" in create["parameters"]["stop"]
    assert any(path == "/api/show" for _, path, _ in ollama_replay.requests)
    # deploying again: the server has the blobs, nothing is uploaded twice
    uploads = sum(1 for m, p, _ in ollama_replay.requests if m == "POST" and "/blobs/" in p)
    deploy_export(export, _report(tmp_path, "ok2"), registry=registry,
                  ollama_url=ollama_replay.url, model_name="twin-test-2", echo=lambda s: None)
    assert uploads == sum(1 for m, p, _ in ollama_replay.requests
                          if m == "POST" and "/blobs/" in p)


def test_ollama_errors_stop_the_deployment(tiny_run: Path, tmp_path: Path,
                                           ollama_replay: Any) -> None:
    from twin_training.deploy import DeployError, create_ollama_model

    manifest = json.loads((tiny_run / "export" / "export.json").read_text())
    original = copy.deepcopy(ollama_replay.exchanges)
    ollama_replay.exchanges["create"] = original["create_missing_blob"]
    with pytest.raises(DeployError, match="Ollama create"):
        create_ollama_model(ollama_replay.url, "twin-x", base_gguf=Path(manifest["base_gguf"]),
                            adapter_gguf=Path(manifest["adapter_gguf"]))


async def test_the_deployed_twin_is_what_the_model_policy_runs(tiny_run: Path, tmp_path: Path
                                                                ) -> None:
    """``twin deploy`` → the runtime starts an embedded server with the twin's base GGUF and
    adapter; its completions are the adapter's (not the base's), through the same raw
    prompt client the model policy uses. No deployment: the main server's base proposes."""
    import httpx

    from twin.runtime import _start_twin
    from twin.settings import Settings
    from twin_training.deploy import deploy_export
    from twin_training.registry import current_deployment
    from voice.embedded_llm import EmbeddedLLMServer

    registry = tmp_path / "twin" / "registry.json"
    deploy_export(tiny_run / "export", _report(tmp_path, "ok"), registry=registry,
                  echo=lambda _m: None)
    entry = current_deployment(registry)
    assert entry is not None
    settings = Settings.load(None, env={})
    settings.llm.threads = 2
    notes: list[str] = []
    twin_server, twin_llm = await _start_twin(settings, entry, main_server=None, data=tmp_path,
                                              note=notes.append)
    base = EmbeddedLLMServer(model_path=Path(entry["base_gguf"]), n_ctx=512, n_threads=2)
    await base.start()
    try:
        assert twin_server is not None and twin_server.lora_path == Path(entry["adapter_gguf"])
        assert twin_llm.model == entry["id"] and any(entry["id"] in n for n in notes)

        async def logprobs(url: str, model: str) -> list[float]:
            async with httpx.AsyncClient(timeout=120) as client:
                r = await client.post(f"{url}/completions", json={
                    "model": model, "prompt": "<|im_start|>user\nBonjour<|im_end|>\n",
                    "max_tokens": 4, "temperature": 0, "logprobs": 1})
                r.raise_for_status()
                return list(r.json()["choices"][0]["logprobs"]["token_logprobs"])

        with_twin = await logprobs(twin_server.base_url, twin_server.model_name)
        without = await logprobs(base.base_url, base.model_name)
        assert with_twin != without  # the adapter is applied on the twin's server
        # nothing deployed: the main server's base model proposes, no server of its own
        server2, llm2 = await _start_twin(settings, None, main_server=base, data=tmp_path,
                                          note=notes.append)
        assert server2 is None and llm2.model == base.model_name
        await llm2.aclose()
    finally:
        await twin_llm.aclose()
        if twin_server is not None:
            await twin_server.stop()
        await base.stop()


async def test_with_ollama_the_deployed_twin_is_asked_by_name(tmp_path: Path) -> None:
    from twin.runtime import _start_twin
    from twin.settings import Settings
    from voice.model_policy import RawPromptLLM

    settings = Settings.load(None, env={"TWIN_LLM_URL": "http://ollama:11434/v1"})
    notes: list[str] = []
    server, llm = await _start_twin(settings, {"id": "twin-2026-11", "ollama_model": "twin-2026-11"},
                                    main_server=None, data=tmp_path, note=notes.append)
    assert server is None and isinstance(llm, RawPromptLLM) and llm.model == "twin-2026-11"
    await llm.aclose()
    # not deployed on the server: the policy asks the configured model (chat API)
    server, llm = await _start_twin(settings, None, main_server=None, data=tmp_path,
                                    note=notes.append)
    assert server is None and llm is None
    assert "twin twin-2026-11" in notes[0] and "no twin deployed" in notes[1]
