"""From reviewed calls to training examples (no torch, no tokenizer here).

- :func:`select_calls`: "the best secretaries", by the staff reviews and the config's rule.
- :func:`split_of`: a deterministic train/validation/test split by call (hash of call_id).
- :func:`call_examples`: one :class:`TurnExample` per secretary turn, in the shared format
  (``knowledge.twin_format``): context = system prompt + the turns so far with their
  recorded tool results; target = the secretary's tool calls, their results (context, not
  learned) and words.
- :func:`dataset_card` and :func:`contribution_ledger`: what went in, and who taught it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from knowledge.profile import PracticeProfile
from knowledge.twin_format import (
    info_result,
    patient_message,
    secretary_turn_messages,
    system_prompt,
)
from twin_training.config import DataConfig, SelectionRule

__all__ = [
    "SPLITS",
    "CallSelection",
    "TurnExample",
    "assign_splits",
    "build_examples",
    "call_examples",
    "card_markdown",
    "contribution_ledger",
    "dataset_card",
    "iter_store_calls",
    "read_calls",
    "select_calls",
    "sha256_json",
    "split_of",
]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def sha256_json(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    data = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def read_calls(path: str | Path) -> list[dict[str, Any]]:
    """Calls from a JSONL file (the corpus / ``twin transcripts export`` shape)."""
    calls = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    calls.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON: {exc}") from exc
    return calls


def split_of(call_id: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), *,
             salt: str = "twin-split-v1") -> str:
    """train, validation or test for a call: the same for the same id, salt and fractions,
    whatever else is in the corpus."""
    u = _unit(call_id, salt)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def assign_splits(calls: Iterable[Mapping[str, Any]], fractions: Sequence[float] = (0.7, 0.1, 0.2),
                  *, salt: str = "twin-split-v1", stratify: bool = True) -> dict[str, str]:
    """call_id -> split for every call. ``stratify``: within each call category, the calls
    ordered by the hash of their id fill test first, then validation, then train, in
    proportion (rounded), so that rare categories such as emergencies reach the test split.
    Deterministic: the same calls give the same splits, in any order. Without
    ``stratify``, each call's split depends on its id alone (:func:`split_of`)."""
    items = [(str(c["call_id"]), str(c.get("category", ""))) for c in calls]
    if not stratify:
        return {cid: split_of(cid, fractions, salt=salt) for cid, _ in items}
    by_category: dict[str, list[str]] = {}
    for cid, category in items:
        by_category.setdefault(category, []).append(cid)
    out: dict[str, str] = {}
    for ids in by_category.values():
        ordered = sorted(set(ids), key=lambda cid: (_unit(cid, salt), cid))
        n_test = round(len(ordered) * fractions[2])
        n_val = round(len(ordered) * fractions[1])
        for i, cid in enumerate(ordered):
            out[cid] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return out


def _unit(call_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class CallSelection:
    """The selected calls, and why each other call was left out (call_id -> reason)."""

    selected: tuple[dict[str, Any], ...]
    rejected: dict[str, str] = field(default_factory=dict)


def select_calls(calls: Iterable[Mapping[str, Any]], rule: SelectionRule) -> CallSelection:
    """Keep the calls the rule accepts: rating >= min_rating, none of the excluded flags,
    the secretary on the allow-list (if any), a kept language."""
    selected: list[dict[str, Any]] = []
    rejected: dict[str, str] = {}
    excluded = set(rule.exclude_flags)
    for call in calls:
        cid = str(call["call_id"])
        review = call.get("review")
        reason = None
        if rule.languages and call.get("language", "fr") not in rule.languages:
            reason = f"language {call.get('language')}"
        elif rule.secretaries and call.get("secretary_id") not in rule.secretaries:
            reason = f"secretary {call.get('secretary_id')} not on the list"
        elif not review:
            if not rule.include_unreviewed:
                reason = "not reviewed"
        else:
            flags = excluded.intersection(review.get("flags") or ())
            rating = review.get("rating")
            if flags:
                reason = "flag " + ",".join(sorted(flags))
            elif rating is None or int(rating) < rule.min_rating:
                reason = f"rating {rating}"
        if reason is None:
            selected.append(dict(call))
        else:
            rejected[cid] = reason
    return CallSelection(selected=tuple(selected), rejected=rejected)


@dataclass(frozen=True)
class TurnExample:
    """One secretary turn: what the model sees (``context``) and must produce (``target``).

    ``target`` holds the turn's messages: the assistant's tool calls, the ``tool`` results
    (given, not learned) and the assistant's words. ``actions`` are the gold actions."""

    call_id: str
    turn_index: int
    secretary_id: str
    category: str
    split: str
    context: tuple[dict[str, Any], ...]
    target: tuple[dict[str, Any], ...]
    actions: tuple[dict[str, Any], ...]
    words: str
    trained: bool = True  # False for the scripted greeting (context only)

    @property
    def example_id(self) -> str:
        return f"{self.call_id}#{self.turn_index}"


def _call_time(call: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(call["started_at"]))


def call_examples(call: Mapping[str, Any], profile: PracticeProfile, *, split: str,
                  fill_info: bool = True, train_on_greeting: bool = False) -> list[TurnExample]:
    """One example per secretary turn of ``call`` (greetings marked ``trained=False``
    unless ``train_on_greeting``)."""
    now = _call_time(call)
    messages: list[dict[str, Any]] = [{"role": "system",
                                       "content": system_prompt(profile, now=now)}]
    examples: list[TurnExample] = []
    patient_spoke = False
    for index, turn in enumerate(call.get("turns") or ()):
        text = str(turn.get("text") or "")
        if turn.get("speaker") != "secretary":
            messages.append(patient_message(text))
            patient_spoke = True
            continue
        actions = []
        for a in turn.get("actions") or ():
            result = a.get("result") or {}
            if fill_info and a.get("action") == "give_info" and not result:
                result = info_result(profile, str((a.get("args") or {}).get("topic", "")),
                                     now=now)
            actions.append({"action": a["action"], "args": dict(a.get("args") or {}),
                            "result": result})
        target = secretary_turn_messages(actions, text)
        examples.append(TurnExample(
            call_id=str(call["call_id"]), turn_index=index,
            secretary_id=str(call.get("secretary_id", "")), category=str(call.get("category", "")),
            split=split, context=tuple(messages), target=tuple(target),
            actions=tuple({"action": a["action"], "args": a["args"]} for a in actions),
            words=text, trained=patient_spoke or train_on_greeting))
        messages.extend(target)
    return examples


def build_examples(calls: Iterable[Mapping[str, Any]], profile: PracticeProfile,
                   config: DataConfig, splits: Mapping[str, str]) -> list[TurnExample]:
    """Every secretary turn of ``calls``, each tagged with its call's split
    (``splits``: from :func:`assign_splits` over the whole corpus)."""
    out: list[TurnExample] = []
    for call in calls:
        split = splits[str(call["call_id"])]
        out.extend(call_examples(call, profile, split=split, fill_info=config.fill_info,
                                 train_on_greeting=config.train_on_greeting))
    return out


def iter_store_calls(url: str | None = None) -> list[dict[str, Any]]:
    """The approved calls of the transcripts store (``transcripts.export.iter_calls``),
    at ``url`` or the default database."""
    from transcripts.cli import run_with_store
    from transcripts.export import iter_calls

    async def work(store: Any) -> list[dict[str, Any]]:
        return [call async for call in iter_calls(store, statuses=("approved",))]

    calls: list[dict[str, Any]] = run_with_store(url, work)
    return calls


def _reason_kind(reason: str) -> str:
    """``rating 2`` -> ``rating``; flags and ``not reviewed`` are kept whole."""
    if reason.startswith(("flag", "not reviewed")):
        return reason
    return reason.split(" ")[0]


def dataset_card(*, calls: Sequence[Mapping[str, Any]], selection: CallSelection,
                 examples: Sequence[TurnExample], output_hashes: Mapping[str, str] | None = None,
                 dropped_too_long: Sequence[str] = ()) -> dict[str, Any]:
    """Counts per split, action, category and secretary; inputs and outputs hashed."""
    trained = [e for e in examples if e.trained]
    by_split: dict[str, Any] = {}
    for split in SPLITS:
        xs = [e for e in trained if e.split == split]
        by_split[split] = {
            "calls": len({e.call_id for e in xs}),
            "examples": len(xs),
            "examples_with_actions": sum(1 for e in xs if e.actions),
            "actions": dict(sorted(Counter(a["action"] for e in xs for a in e.actions).items())),
            "categories": dict(sorted(Counter(e.category for e in xs).items())),
            "secretaries": dict(sorted(Counter(e.secretary_id for e in xs).items())),
        }
    return {
        "input": {
            "calls": len(calls),
            "calls_sha256": sha256_json(sorted((dict(c) for c in calls),
                                               key=lambda c: str(c["call_id"]))),
            "selected_calls": len(selection.selected),
            "selected_sha256": sha256_json(sorted(str(c["call_id"]) for c in selection.selected)),
            "rejected": dict(sorted(Counter(
                _reason_kind(r) for r in selection.rejected.values()).items())),
        },
        "splits": by_split,
        "examples_sha256": sha256_json([[e.example_id, list(e.context[-1:]), list(e.target)]
                                        for e in trained]),
        "output_sha256": dict(output_hashes or {}),
        "dropped_too_long": list(dropped_too_long),
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """The dataset card as Markdown, for people."""
    lines = ["# Dataset card", "",
             f"Input: {card['input']['calls']} calls (sha256 {card['input']['calls_sha256'][:16]}…),"
             f" {card['input']['selected_calls']} selected.", "",
             "Left out: " + (", ".join(f"{k}: {v}" for k, v in card["input"]["rejected"].items())
                             or "none"), "",
             "| split | calls | examples | with actions |", "| --- | --- | --- | --- |"]
    for split, s in card["splits"].items():
        lines.append(f"| {split} | {s['calls']} | {s['examples']} | {s['examples_with_actions']} |")
    for key in ("actions", "categories", "secretaries"):
        lines += ["", f"## {key} (train)", ""]
        lines += [f"- {k}: {v}" for k, v in card["splits"]["train"][key].items()]
    lines += ["", f"Examples sha256: `{card['examples_sha256']}`"]
    for name, digest in card.get("output_sha256", {}).items():
        lines.append(f"Output {name} sha256: `{digest}`")
    if card.get("dropped_too_long"):
        lines.append(f"Dropped (too long): {', '.join(card['dropped_too_long'])}")
    return "\n".join(lines) + "\n"


def contribution_ledger(examples: Sequence[TurnExample], *, model_id: str, base: str,
                        dataset_sha256: str, created_at: str) -> dict[str, Any]:
    """How many training examples (and calls) each secretary contributed to a model."""
    trained = [e for e in examples if e.trained and e.split == "train"]
    per: dict[str, dict[str, int]] = {}
    for e in trained:
        entry = per.setdefault(e.secretary_id, {"examples": 0, "calls": 0})
        entry["examples"] += 1
    for sid in per:
        per[sid]["calls"] = len({e.call_id for e in trained if e.secretary_id == sid})
    total = len(trained)
    return {
        "model_id": model_id,
        "base": base,
        "created_at": created_at,
        "dataset_sha256": dataset_sha256,
        "total_examples": total,
        "contributions": {
            sid: {**v, "share": round(v["examples"] / total, 4) if total else 0.0}
            for sid, v in sorted(per.items())},
    }
