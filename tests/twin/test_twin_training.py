"""Training a tiny randomly initialised Qwen2 (real tokenizer) on fixture corpus calls:
the loss goes down, a resumed run continues exactly, and the run folder holds what a
trainer needs (adapter, resolved config, versions, hashes, card, ledger)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Generous ceiling: the tiny run takes about a minute on a quiet 2-core box, far more on a
# shared busy one (it is trained once per session and shared by the tests).
pytestmark = [pytest.mark.models, pytest.mark.timeout(1800)]


def _loss_on(model_dir: Path | None, config: Any, data: Any) -> float:
    import torch
    from peft import PeftModel

    from twin_training.train import sequence_loss

    model = data.load_model()
    if model_dir is not None:
        model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
    seqs = [s for s in data.sequences if s.split == "train"]
    total = 0.0
    with torch.no_grad():
        for s in seqs:
            total += float(sequence_loss(model, torch.tensor([s.input_ids]),
                                         torch.tensor([s.labels])))
    return total / len(seqs)


def test_tiny_model_learns_and_the_run_is_complete(tiny_run: Path, tiny_calls: Path,
                                                   tokenizer: Any, overrides: Any) -> None:
    from twin_training.config import load_config
    from twin_training.data import prepare_data

    config = load_config(None, overrides(tiny_run, tiny_calls))
    data = prepare_data(config, None, tokenizer=tokenizer)
    assert {s.split for s in data.sequences} == {"train", "validation", "test"}
    before = _loss_on(None, config, data)
    after = _loss_on(tiny_run / "adapter", config, data)
    assert after < before - 0.05, (before, after)
    metrics = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all("validation_loss" in m for m in metrics if m["step"] % 2 == 0)
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["config"]["train"]["max_steps"] == 4
    assert run["versions"]["torch"].startswith("2.13")
    assert run["data"]["sequences_sha256"] == data.card["output_sha256"]["sequences"]
    assert run["seconds_per_100_examples"] > 0
    ledger = json.loads((tiny_run / "adapter" / "ledger.json").read_text())
    # P3-007 and P2-012 train: both Bruno's
    assert set(ledger["contributions"]) == {"sec-bruno"}
    assert ledger["contributions"]["sec-bruno"]["calls"] == 2
    train_examples = sum(len(s.example_ids) for s in data.sequences if s.split == "train")
    # 4 steps of one call each over 2 calls: each seen twice
    assert ledger["contributions"]["sec-bruno"]["examples_seen"] == 2 * train_examples
    card = json.loads((tiny_run / "dataset_card.json").read_text())
    assert card["input"]["rejected"] == {"not reviewed": 1}  # P1-005
    assert (tiny_run / "dataset_card.md").is_file()
    assert (tiny_run / "adapter" / "adapter_model.safetensors").is_file()


def test_resume_continues_where_it_stopped(tmp_path: Path, tiny_calls: Path,
                                           tokenizer: Any, overrides: Any) -> None:
    from safetensors.torch import load_file

    from twin_training.config import load_config
    from twin_training.data import prepare_data
    from twin_training.train import run_training

    def run(out: Path, *, resume: bool = False, crash_at: int = 0) -> Any:
        config = load_config(None, overrides(out, tiny_calls, **{
            "train.max_steps": 3, "train.eval_every": 0, "train.save_every": 1}))

        def on_step(step: int, loss: float) -> None:
            if step == crash_at:
                raise KeyboardInterrupt  # the run dies during step 3, after step 2's checkpoint

        return run_training(config, resume=resume, on_step=on_step,
                            prepared=prepare_data(config, out, tokenizer=tokenizer))

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "a", crash_at=3)
    state = json.loads((tmp_path / "a" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    resumed = run(tmp_path / "a", resume=True)
    assert resumed.steps == 3 and resumed.stopped == "max_steps"
    steps = [json.loads(x)["step"] for x in (tmp_path / "a" / "metrics.jsonl").read_text()
             .splitlines()]
    assert steps == [1, 2, 3]
    straight = run(tmp_path / "b")
    assert straight.steps == 3
    a = load_file(str(tmp_path / "a" / "checkpoint" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key
    assert resumed.last_loss == pytest.approx(straight.last_loss, rel=1e-4)
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "c", resume=True)
