"""Typed configuration of a twin training run (``twin train --config run.yaml``).

Every field has help text (``twin train --help-config`` prints them). A YAML file gives
the sections ``data``, ``model``, ``lora``, ``train``; ``--set section.key=value``
overrides any field after the file is read. The resolved configuration is saved beside
the adapter.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

__all__ = [
    "ConfigError",
    "DataConfig",
    "LoraConfig",
    "ModelConfig",
    "RunConfig",
    "SelectionRule",
    "TrainConfig",
    "config_help",
    "load_config",
]

UNSAFE_FLAGS: tuple[str, ...] = (
    "medical_advice_given", "red_flag_missed", "no_identity_check", "privacy_breach",
)


class ConfigError(ValueError):
    """An invalid configuration file or override."""


@dataclass
class SelectionRule:
    min_rating: int = field(default=4, metadata={
        "help": "Keep calls whose staff review rating is at least this (1-5)."})
    exclude_flags: list[str] = field(default_factory=lambda: list(UNSAFE_FLAGS), metadata={
        "help": "Drop calls whose review carries any of these flags."})
    secretaries: list[str] = field(default_factory=list, metadata={
        "help": "Only these secretary ids (empty: all who pass the rating rule)."})
    include_unreviewed: bool = field(default=False, metadata={
        "help": "Also keep calls without a review (not recommended)."})
    languages: list[str] = field(default_factory=lambda: ["fr"], metadata={
        "help": "Call languages to keep."})


@dataclass
class DataConfig:
    calls: str | None = field(default=None, metadata={
        "help": "Corpus JSONL file (one call per line, the transcripts export shape)."})
    from_store: bool = field(default=False, metadata={
        "help": "Read the approved calls from the transcripts store instead of a file."})
    store_url: str | None = field(default=None, metadata={
        "help": "Database URL of the transcripts store (empty: $TWIN_DATABASE_URL, else the "
                "agenda database in the data folder)."})
    profile: str | None = field(default=None, metadata={
        "help": "Practice profile YAML for the system prompt; empty: the demo practice."})
    selection: SelectionRule = field(default_factory=SelectionRule)
    split: list[float] = field(default_factory=lambda: [0.7, 0.1, 0.2], metadata={
        "help": "Train/validation/test fractions, by call (hash of call_id)."})
    stratify: bool = field(default=True, metadata={
        "help": "Split within each call category (so emergencies reach the test split)."})
    split_salt: str = field(default="twin-split-v1", metadata={
        "help": "Salt of the split hash (change it to draw another split)."})
    fill_info: bool = field(default=True, metadata={
        "help": "Fill give_info results with the profile's answer (the live tool's result)."})
    train_on_greeting: bool = field(default=False, metadata={
        "help": "Also learn the opening greeting (live, it is scripted)."})
    max_length: int = field(default=4096, metadata={
        "help": "Longest sequence in tokens; longer examples are dropped (and counted)."})
    pack: str = field(default="call", metadata={
        "help": "call: one training sequence per call holding every selected turn's target "
                "(same loss as one example per turn, far less compute); turn: one per turn."})


@dataclass
class ModelConfig:
    base: str = field(default="qwen2.5-coder-0.5b-instruct-q4_k_m", metadata={
        "help": "An installed model name (twin models list), a GGUF file, or a Hugging Face "
                "model folder."})
    tiny_random: bool = field(default=False, metadata={
        "help": "Tests: a tiny randomly initialised Qwen2 (2 layers, hidden 64) with the "
                "base's real tokenizer."})
    dtype: str = field(default="float32", metadata={
        "help": "Training dtype: float32 (CPU), bfloat16 (GPU)."})


@dataclass
class LoraConfig:
    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                 "up_proj", "down_proj"],
        metadata={"help": "Linear layers that get an adapter."})
    top_layers: int = field(default=0, metadata={
        "help": "Adapt only the last N transformer layers (0: all). Fewer layers: a cheaper "
                "backward pass (the frozen layers below need no gradient)."})


@dataclass
class TrainConfig:
    output_dir: str = field(default="runs/twin", metadata={
        "help": "Run folder: checkpoints, adapter, dataset card, metrics."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the training set."})
    max_steps: int = field(default=0, metadata={
        "help": "Stop after this many optimizer steps (0: epochs decide)."})
    max_minutes: float = field(default=0.0, metadata={
        "help": "Stop (and save) after this much wall time (0: no limit)."})
    batch_size: int = field(default=1, metadata={"help": "Sequences per micro-batch."})
    grad_accum: int = field(default=4, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (AdamW)."})
    warmup_steps: int = field(default=5, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    decision_weight: float = field(default=1.0, metadata={
        "help": "Weight in the training loss of the first token of each secretary turn and of "
                "what follows a tool result: where the twin decides between an action and "
                "words (1: like any other token; the validation loss stays unweighted)."})
    eval_every: int = field(default=20, metadata={
        "help": "Validate every N optimizer steps (0: only at the end)."})
    patience: int = field(default=3, metadata={
        "help": "Early stopping: validations without improvement before stopping (0: off)."})
    save_every: int = field(default=20, metadata={
        "help": "Checkpoint every N optimizer steps (0: only at validations and the end)."})
    seed: int = field(default=0, metadata={"help": "Random seed (order, dropout, init)."})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0: default)."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
        return _build(hint, value, where)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if type(None) in args:  # optional
        if value is None or (isinstance(value, str) and value.lower() in ("", "null", "none")):
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(value, inner, where)
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    try:
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def _build(cls: Any, data: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _set(config: RunConfig, dotted: str, raw: str) -> None:
    parts = dotted.split(".")
    target: Any = config
    for part in parts[:-1]:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            raise ConfigError(f"--set {dotted}: no section '{part}'")
        target = getattr(target, part)
    name = parts[-1]
    hints = get_type_hints(type(target))
    if name not in hints:
        raise ConfigError(f"--set {dotted}: unknown key '{name}'")
    value: Any = raw
    if get_origin(hints[name]) is list and raw.startswith("["):
        value = json.loads(raw)
    setattr(target, name, _coerce(value, hints[name], dotted))


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML (or JSON) run config, then apply ``key.sub=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        text = Path(path).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
        data = loaded or {}
    config: RunConfig = _build(RunConfig, data, str(path or "config"))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        _set(config, key.strip(), value.strip())
    total = sum(config.data.split)
    if len(config.data.split) != 3 or abs(total - 1.0) > 1e-6:
        raise ConfigError("data.split: three fractions (train, validation, test) summing to 1")
    if config.data.pack not in ("call", "turn"):
        raise ConfigError("data.pack: 'call' or 'turn'")
    return config


def config_help() -> str:
    """Every field of the run config with its default and help text."""
    lines: list[str] = []

    def walk(cls: Any, prefix: str) -> None:
        default = cls()
        for f in fields(cls):
            value = getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                walk(type(value), f"{prefix}{f.name}.")
                continue
            lines.append(f"{prefix}{f.name} = {value!r}\n    {f.metadata.get('help', '')}")

    walk(RunConfig, "")
    return "\n".join(lines)
