"""Preparing a run's data: calls -> selection -> split -> examples -> sequences -> card.

``prepare_data(config, out)`` does it all and writes ``dataset_card.json`` / ``.md`` and
``sequences.jsonl`` (the token ids and labels, with their hash) into the run folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_training.config import RunConfig
from twin_training.dataset import (
    TurnExample,
    assign_splits,
    build_examples,
    card_markdown,
    dataset_card,
    iter_store_calls,
    read_calls,
    select_calls,
    sha256_json,
)
from twin_training.sequences import TrainSequence, build_sequences

__all__ = ["PreparedData", "load_calls", "prepare_data"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Everything a run needs from the data side."""

    calls: list[dict[str, Any]]
    examples: list[TurnExample]
    sequences: list[TrainSequence]
    card: dict[str, Any]
    tokenizer: Any
    base_name: str
    load_model: Callable[[], Any]
    splits: dict[str, str]

    def secretary_of(self, call_id: str) -> str:
        return next((e.secretary_id for e in self.examples if e.call_id == call_id), "")

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


def load_calls(config: RunConfig) -> list[dict[str, Any]]:
    """The calls of ``data.calls`` (JSONL) or of the transcripts store."""
    if config.data.from_store:
        import os

        return iter_store_calls(config.data.store_url or os.environ.get("TWIN_DATABASE_URL"))
    if not config.data.calls:
        raise ValueError("data.calls: give a JSONL file of calls (or data.from_store: true)")
    return read_calls(config.data.calls)


def _profile(config: RunConfig) -> Any:
    from knowledge.profile import default_profile_path, load_profile

    return load_profile(config.data.profile or default_profile_path())


def prepare_data(config: RunConfig, out: Path | None = None, *,
                 tokenizer: Any = None) -> PreparedData:
    """Select, split, render and tokenise; write the card when ``out`` is given."""
    from twin_training.base import (
        load_base_model,
        load_tokenizer,
        resolve_base,
        tiny_random_model,
    )

    calls = load_calls(config)
    profile = _profile(config)
    splits = assign_splits(calls, config.data.split, salt=config.data.split_salt,
                           stratify=config.data.stratify)
    selection = select_calls(calls, config.data.selection)
    examples = build_examples(selection.selected, profile, config.data, splits)
    spec = resolve_base(config.model.base)
    tok = tokenizer if tokenizer is not None else load_tokenizer(spec)
    sequences, dropped = build_sequences(examples, tok, pack=config.data.pack,
                                         max_length=config.data.max_length)
    seq_hash = sha256_json([[s.call_id, list(s.input_ids), list(s.labels)] for s in sequences])
    card = dataset_card(calls=calls, selection=selection, examples=examples,
                        output_hashes={"sequences": seq_hash}, dropped_too_long=dropped)
    card["tokens"] = {
        split: {"sequences": sum(1 for s in sequences if s.split == split),
                "tokens": sum(len(s.input_ids) for s in sequences if s.split == split),
                "target_tokens": sum(s.target_tokens for s in sequences if s.split == split)}
        for split in ("train", "validation", "test")}
    card["base"] = spec.name
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "dataset_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False),
                                               encoding="utf-8")
        (out / "dataset_card.md").write_text(card_markdown(card), encoding="utf-8")
        with (out / "sequences.jsonl").open("w", encoding="utf-8") as f:
            for s in sequences:
                f.write(json.dumps({"call_id": s.call_id, "split": s.split,
                                    "examples": list(s.example_ids),
                                    "input_ids": list(s.input_ids),
                                    "labels": list(s.labels)}) + "\n")
        (out / "splits.json").write_text(json.dumps(splits, indent=1, sort_keys=True),
                                         encoding="utf-8")

    def load_model() -> Any:
        if config.model.tiny_random:
            return tiny_random_model(vocab_size=len(tok), seed=config.train.seed)
        return load_base_model(spec, dtype=config.model.dtype)

    logger.info("data: %d calls, %d selected, %d examples, %d sequences (%d dropped)",
                len(calls), len(selection.selected), len(examples), len(sequences), len(dropped))
    return PreparedData(calls=calls, examples=examples, sequences=sequences, card=card,
                        tokenizer=tok, base_name=spec.name, load_model=load_model,
                        splits=splits)
