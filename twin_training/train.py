"""LoRA fine-tuning of the twin: a small hand-written loop on transformers + peft.

``run_training(config)`` builds the dataset (selection, split, sequences, dataset card),
wraps the base with a LoRA adapter and trains it with AdamW, validating every
``eval_every`` steps (early stopping on the validation loss), checkpointing every
``save_every`` steps and at the end; ``resume=True`` continues from the last checkpoint
exactly where it stopped (same data order, optimizer and scheduler state). The loss is
computed on target tokens only, and the language-model head only runs at those positions
(most of a sequence is context). Runs on CPU; on a GPU the same code runs under
``accelerate`` (device placement and mixed precision come from ``accelerate config``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_training.config import RunConfig
from twin_training.data import PreparedData, prepare_data
from twin_training.sequences import IGNORE, TrainSequence

__all__ = ["TrainResult", "decision_mask", "run_training", "sequence_loss"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
ADAPTER = "adapter"


@dataclass(frozen=True)
class TrainResult:
    """What a run produced (paths under ``output_dir``) and its figures."""

    output_dir: Path
    adapter_dir: Path
    steps: int
    best_validation_loss: float | None
    first_loss: float | None
    last_loss: float | None
    stopped: str  # "done", "early_stopping", "max_steps", "max_minutes"
    train_seconds: float
    examples_seen: int


def decision_mask(shift_labels: Any) -> Any:
    """Where each target span starts (a label set after one that is not): the token where the
    secretary decides between an action and words, at the start of a turn and after each
    recorded tool result."""
    mask = shift_labels != IGNORE
    starts = mask.clone()
    starts[:, 1:] &= ~mask[:, :-1]
    return starts


def sequence_loss(causal_lm: Any, input_ids: Any, labels: Any, *,
                  decision_weight: float = 1.0) -> Any:
    """Mean cross-entropy over target tokens; the LM head runs only where a label is set.
    ``decision_weight``: the first token of each target span (:func:`decision_mask`) counts
    that many times in the mean (1: every target token alike)."""
    import torch

    hidden = causal_lm.model(input_ids=input_ids).last_hidden_state
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE
    logits = causal_lm.lm_head(hidden[:, :-1][mask])
    if decision_weight == 1.0:
        return torch.nn.functional.cross_entropy(logits.float(), shift_labels[mask])
    per_token = torch.nn.functional.cross_entropy(logits.float(), shift_labels[mask],
                                                  reduction="none")
    ones = torch.ones_like(per_token)
    weights = torch.where(decision_mask(shift_labels)[mask], ones * decision_weight, ones)
    return (per_token * weights).sum() / weights.sum()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "datasets", "gguf",
                 "llama-cpp-python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def _batches(seqs: Sequence[TrainSequence], order: Sequence[int], size: int
             ) -> list[list[TrainSequence]]:
    return [[seqs[i] for i in order[k:k + size]] for k in range(0, len(order), size)]


def _tensors(batch: Sequence[TrainSequence], pad_id: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(s.input_ids) for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, s in enumerate(batch):
        ids[row, : len(s.input_ids)] = torch.tensor(s.input_ids)
        labels[row, : len(s.labels)] = torch.tensor(s.labels)
    return ids.to(device), labels.to(device)


def _validate(model: Any, seqs: Sequence[TrainSequence], pad_id: int, device: Any) -> float | None:
    import torch

    if not seqs:
        return None
    causal = model.base_model.model
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            ids, labels = _tensors([s], pad_id, device)
            n = s.target_tokens
            total += float(sequence_loss(causal, ids, labels)) * n
            tokens += n
    model.train()
    return total / max(tokens, 1)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def run_training(config: RunConfig, *, resume: bool = False,
                 prepared: PreparedData | None = None,
                 on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or resume) the adapter described by ``config``."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    out = Path(config.train.output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    data = prepared or prepare_data(config, out)
    train_seqs = [s for s in data.sequences if s.split == "train"]
    val_seqs = [s for s in data.sequences if s.split == "validation"]
    if not train_seqs:
        raise RuntimeError("no training sequence: check data.selection and the calls")
    tc = config.train
    accelerator = None
    try:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())
        device = accelerator.device
    except ImportError:  # pragma: no cover - accelerate is in the training extra
        device = torch.device("cpu")

    torch.manual_seed(tc.seed)
    model = data.load_model()
    layers = None
    if config.lora.top_layers:
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - config.lora.top_layers), n_layers))
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha,
                      lora_dropout=config.lora.dropout, layers_to_transform=layers,
                      target_modules=list(config.lora.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    micro_per_epoch = math.ceil(len(train_seqs) / tc.batch_size)
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / tc.grad_accum))
    total_steps = tc.max_steps or max(1, math.ceil(steps_per_epoch * tc.epochs))

    def lr_lambda(step: int) -> float:
        if step < tc.warmup_steps:
            return (step + 1) / (tc.warmup_steps + 1)
        span = max(1, total_steps - tc.warmup_steps)
        return max(0.0, 1.0 - (step - tc.warmup_steps) / span) * 0.9 + 0.1

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    state: dict[str, Any] = {"step": 0, "micro": 0, "best": None, "bad_evals": 0,
                             "first_loss": None, "seconds": 0.0, "examples_seen": 0}
    ckpt = out / CHECKPOINT
    if resume:
        if not (ckpt / "state.json").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint in {ckpt}")
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        blob = torch.load(ckpt / "optimizer.pt", weights_only=False)
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["rng"])
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        logger.info("resuming at step %d", state["step"])
    if accelerator is not None:
        model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    causal = unwrapped.base_model.model
    pad_id = data.pad_id

    def save_checkpoint() -> None:
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        tmp = out / (CHECKPOINT + ".tmp")
        tmp.mkdir(exist_ok=True)
        weights = {k: v.detach().cpu().contiguous()
                   for k, v in get_peft_model_state_dict(unwrapped).items()}
        save_file(weights, str(tmp / "adapter_model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
        _write_json(tmp / "state.json", state)
        if ckpt.exists():
            import shutil

            shutil.rmtree(ckpt)
        tmp.rename(ckpt)

    def save_adapter() -> None:
        unwrapped.save_pretrained(str(out / ADAPTER))

    metrics = (out / "metrics.jsonl").open("a", encoding="utf-8")
    bar = None
    if tc.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], unit="step", dynamic_ncols=True)
    started = time.monotonic() - state["seconds"]
    stopped = "done"
    last_loss: float | None = None
    window: list[float] = []
    try:
        while state["step"] < total_steps:
            epoch, index = divmod(state["micro"], micro_per_epoch)
            if tc.max_steps == 0 and epoch >= math.ceil(tc.epochs):
                break
            batches = _batches(train_seqs, _order(len(train_seqs), tc.seed, epoch),
                               tc.batch_size)
            batch = batches[index]
            ids, labels = _tensors(batch, pad_id, device)
            loss = sequence_loss(causal, ids, labels,
                                 decision_weight=tc.decision_weight) / tc.grad_accum
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            window.append(float(loss) * tc.grad_accum)
            state["micro"] += 1
            state["examples_seen"] += sum(len(s.example_ids) for s in batch)
            end_of_epoch = state["micro"] % micro_per_epoch == 0
            if len(window) < tc.grad_accum and not end_of_epoch:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            step_loss = sum(window) / len(window)
            window = []
            last_loss = step_loss
            if state["first_loss"] is None:
                state["first_loss"] = step_loss
            state["seconds"] = time.monotonic() - started
            record: dict[str, Any] = {"step": state["step"], "loss": round(step_loss, 5),
                                      "lr": scheduler.get_last_lr()[0],
                                      "seconds": round(state["seconds"], 1),
                                      "examples_seen": state["examples_seen"]}
            if on_step is not None:
                on_step(state["step"], step_loss)
            validate = tc.eval_every and state["step"] % tc.eval_every == 0
            if validate or state["step"] == total_steps:
                val = _validate(unwrapped, val_seqs, pad_id, device)
                record["validation_loss"] = val
                if val is not None and (state["best"] is None or val < state["best"] - 1e-4):
                    state["best"], state["bad_evals"] = val, 0
                    save_adapter()
                elif val is not None:
                    state["bad_evals"] += 1
                elif val is None:
                    save_adapter()
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            if bar is not None:
                bar.set_postfix(loss=f"{step_loss:.3f}",
                                val=f"{state['best']:.3f}" if state["best"] else "-")
                bar.update(1)
            if tc.save_every and state["step"] % tc.save_every == 0:
                save_checkpoint()
            if tc.patience and state["bad_evals"] >= tc.patience:
                stopped = "early_stopping"
                break
            if tc.max_minutes and state["seconds"] > tc.max_minutes * 60:
                stopped = "max_minutes"
                break
        else:
            stopped = "max_steps" if tc.max_steps else "done"
    finally:
        metrics.close()
        if bar is not None:
            bar.close()
    state["seconds"] = time.monotonic() - started
    save_checkpoint()
    if not (out / ADAPTER / "adapter_config.json").is_file():
        save_adapter()
    seen: dict[str, int] = {}
    for m in range(state["micro"]):  # replay the deterministic order: what was learned
        epoch, index = divmod(m, micro_per_epoch)
        for s in _batches(train_seqs, _order(len(train_seqs), tc.seed, epoch),
                          tc.batch_size)[index]:
            sid = data.secretary_of(s.call_id)
            seen[sid] = seen.get(sid, 0) + len(s.example_ids)
    _finish(config, data, out, state, stopped, seen)
    return TrainResult(output_dir=out, adapter_dir=out / ADAPTER, steps=state["step"],
                       best_validation_loss=state["best"], first_loss=state["first_loss"],
                       last_loss=last_loss, stopped=stopped, train_seconds=state["seconds"],
                       examples_seen=state["examples_seen"])


def _finish(config: RunConfig, data: PreparedData, out: Path, state: dict[str, Any],
            stopped: str, seen_by_secretary: dict[str, int]) -> None:
    """Beside the adapter: the resolved config, versions, hashes, figures and the ledger."""
    from twin_training.dataset import contribution_ledger

    adapter = out / ADAPTER
    seen = state["examples_seen"]
    info = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "versions": _versions(),
        "base": data.base_name,
        "data": {"examples_sha256": data.card["examples_sha256"],
                 "calls_sha256": data.card["input"]["calls_sha256"],
                 "sequences_sha256": data.card["output_sha256"].get("sequences")},
        "steps": state["step"],
        "stopped": stopped,
        "best_validation_loss": state["best"],
        "first_loss": state["first_loss"],
        "train_seconds": round(state["seconds"], 1),
        "examples_seen": seen,
        "seconds_per_100_examples": round(100 * state["seconds"] / seen, 1) if seen else None,
    }
    _write_json(out / "run.json", info)
    _write_json(adapter / "run.json", info)
    model_id = f"{data.base_name}+{out.name}-{data.card['examples_sha256'][:8]}"
    ledger = contribution_ledger(data.examples, model_id=model_id, base=data.base_name,
                                 dataset_sha256=data.card["examples_sha256"],
                                 created_at=info["created_at"])
    ledger["stopped"] = stopped
    for sid, entry in ledger["contributions"].items():
        entry["examples_seen"] = seen_by_secretary.get(sid, 0)  # with repeats over epochs
    _write_json(adapter / "ledger.json", ledger)
    _write_json(out / "ledger.json", ledger)
