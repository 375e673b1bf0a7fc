"""Dataset building without a model: selection, split, examples, card, ledger, config."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from knowledge.profile import PracticeProfile
from knowledge.twin_format import render_prompt, tool_schemas
from twin_training.config import ConfigError, DataConfig, SelectionRule, config_help, load_config
from twin_training.dataset import (
    assign_splits,
    build_examples,
    call_examples,
    card_markdown,
    contribution_ledger,
    dataset_card,
    select_calls,
    split_of,
)


def test_selection_rule_keeps_the_best_reviewed_calls(corpus: list[dict[str, Any]]) -> None:
    sel = select_calls(corpus, SelectionRule())
    kept = {c["call_id"] for c in sel.selected}
    for call in corpus:
        review = call["review"]
        good = (review is not None and review["rating"] >= 4 and not set(review["flags"]) & {
            "medical_advice_given", "red_flag_missed", "no_identity_check", "privacy_breach"})
        assert (call["call_id"] in kept) == good, call["call_id"]
    assert sel.rejected["P1-005"] == "not reviewed"
    assert sel.rejected["P1-003"].startswith("flag medical_advice_given")
    # Chloé's rating-4 call passes the default rule; an allow-list removes her.
    assert "P3-009" in kept
    only = select_calls(corpus, SelectionRule(secretaries=["sec-amelie", "sec-bruno"]))
    assert {c["secretary_id"] for c in only.selected} == {"sec-amelie", "sec-bruno"}
    assert "not on the list" in only.rejected["P3-009"]
    strict = select_calls(corpus, SelectionRule(min_rating=5))
    assert all(c["review"]["rating"] == 5 for c in strict.selected)
    loose = select_calls(corpus, SelectionRule(include_unreviewed=True))
    assert "P1-005" in {c["call_id"] for c in loose.selected}


def test_split_is_deterministic_by_call(corpus: list[dict[str, Any]]) -> None:
    splits = assign_splits(corpus)
    shuffled = list(corpus)
    random.Random(7).shuffle(shuffled)
    assert assign_splits(shuffled) == splits
    assert set(splits) == {c["call_id"] for c in corpus}
    # stratified: each category with >= 3 calls reaches the test split
    by_cat: dict[str, list[str]] = {}
    for c in corpus:
        by_cat.setdefault(c["category"], []).append(splits[c["call_id"]])
    for cat, values in by_cat.items():
        if len(values) >= 3:
            assert "test" in values, cat
    # unstratified: a call's split depends on its id alone
    plain = assign_splits(corpus, (0.5, 0.1, 0.4), stratify=False)
    assert plain == {c["call_id"]: split_of(c["call_id"], (0.5, 0.1, 0.4)) for c in corpus}
    assert assign_splits(corpus[:5], (0.5, 0.1, 0.4), stratify=False) == {
        c["call_id"]: plain[c["call_id"]] for c in corpus[:5]}
    other_salt = assign_splits(corpus, (0.5, 0.1, 0.4), salt="other", stratify=False)
    assert other_salt != plain


def test_examples_follow_the_calls(corpus: list[dict[str, Any]], profile: PracticeProfile
                                   ) -> None:
    call = next(c for c in corpus if c["call_id"] == "P1-001")
    examples = call_examples(call, profile, split="train")
    secretary_turns = [i for i, t in enumerate(call["turns"]) if t["speaker"] == "secretary"]
    assert [e.turn_index for e in examples] == secretary_turns
    assert not examples[0].trained and all(e.trained for e in examples[1:])  # the greeting
    assert examples[0].context[0]["role"] == "system"
    assert "2026-10-05T08:34" in examples[0].context[0]["content"]
    booking = next(e for e in examples if e.actions and e.actions[0]["action"] == "find_patient")
    assert [m["role"] for m in booking.target] == ["assistant", "tool", "tool", "assistant"]
    assert booking.target[-1]["content"] == booking.words
    # context = every earlier turn, in order; the next example's context extends this one's
    nxt = examples[examples.index(booking) + 1]
    assert list(nxt.context[: len(booking.context) + len(booking.target)]) == [
        *booking.context, *booking.target]
    assert nxt.context[len(booking.context) + len(booking.target)]["role"] == "user"
    # give_info results come from the profile
    info = next(e for e in examples if any(a["action"] == "give_info" for a in e.actions))
    tool = next(m for m in info.target if m["role"] == "tool")
    assert "carte Vitale" in json.loads(tool["content"])["answer"]
    raw = call_examples(call, profile, split="train", fill_info=False)
    raw_info = next(e for e in raw if e.turn_index == info.turn_index)
    assert next(m for m in raw_info.target if m["role"] == "tool")["content"] == "{}"
    # each example renders
    text = render_prompt([*booking.context, *booking.target], tools=tool_schemas())
    assert text.count("<tool_call>") >= 2


def test_card_and_ledger(corpus: list[dict[str, Any]], profile: PracticeProfile) -> None:
    config = DataConfig()
    selection = select_calls(corpus, config.selection)
    splits = assign_splits(corpus, config.split)
    examples = build_examples(selection.selected, profile, config, splits)
    card = dataset_card(calls=corpus, selection=selection, examples=examples)
    trained = [e for e in examples if e.trained]
    assert sum(s["examples"] for s in card["splits"].values()) == len(trained)
    train = [e for e in trained if e.split == "train"]
    assert card["splits"]["train"]["actions"]["book"] == sum(
        1 for e in train for a in e.actions if a["action"] == "book")
    assert sum(card["splits"]["train"]["secretaries"].values()) == len(train)
    assert card["input"]["selected_calls"] == len(selection.selected)
    again = dataset_card(calls=list(reversed(corpus)), selection=selection, examples=examples)
    assert again["input"]["calls_sha256"] == card["input"]["calls_sha256"]
    assert again["examples_sha256"] == card["examples_sha256"]
    assert "| train |" in card_markdown(card)
    ledger = contribution_ledger(examples, model_id="m", base="b", dataset_sha256="x",
                                 created_at="t")
    assert ledger["total_examples"] == len(train)
    assert sum(v["examples"] for v in ledger["contributions"].values()) == len(train)
    assert "sec-chloe" in ledger["contributions"]  # her rating-4 call in train, if any
    assert abs(sum(v["share"] for v in ledger["contributions"].values()) - 1) < 1e-3


def test_config_file_and_overrides(tmp_path: Any) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  selection:\n    min_rating: 5\ntrain:\n  max_steps: 3\n",
                    encoding="utf-8")
    config = load_config(path, ["train.learning_rate=0.001", "data.selection.secretaries=a,b",
                                "data.split=[0.6, 0.2, 0.2]", "model.tiny_random=yes"])
    assert config.data.selection.min_rating == 5
    assert config.train.max_steps == 3
    assert config.train.learning_rate == 0.001
    assert config.data.selection.secretaries == ["a", "b"]
    assert config.data.split == [0.6, 0.2, 0.2]
    assert config.model.tiny_random is True
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(None, ["train.max_steps=many"])
    with pytest.raises(ConfigError, match="summing to 1"):
        load_config(None, ["data.split=[0.5, 0.1, 0.1]"])
    assert "min_rating" in config_help() and "Keep calls whose" in config_help()
    assert json.loads(config.to_json())["train"]["max_steps"] == 3


def test_calls_from_the_transcripts_store(tmp_path: Any, corpus: list[dict[str, Any]]) -> None:
    """The corpus imported (approved) into a transcripts store comes back in its shape
    (a call without a review is imported as redacted, not approved: it does not come back)."""
    from transcripts.cli import run_with_store
    from transcripts.importer import import_jsonl
    from twin_training.config import load_config
    from twin_training.data import load_calls

    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    calls_file = Path(__file__).resolve().parent.parent / "fixtures" / "twin" / "calls.jsonl"
    run_with_store(url, lambda store: import_jsonl(store, calls_file, approve=True))
    config = load_config(None, ["data.from_store=true", f"data.store_url={url}"])
    calls = load_calls(config)
    assert sorted(c["call_id"] for c in calls) == sorted(
        c["call_id"] for c in corpus if c["review"] is not None)
    by_id = {c["call_id"]: c for c in corpus}
    for call in calls:
        original = by_id[call["call_id"]]
        assert call["secretary_id"] == original["secretary_id"]
        assert [t["speaker"] for t in call["turns"]] == [t["speaker"] for t in original["turns"]]
        assert [[a["action"] for a in t["actions"]] for t in call["turns"]] == [
            [a["action"] for a in t["actions"]] for t in original["turns"]]
        assert (call["review"] or {}).get("rating") == (original["review"] or {}).get("rating")
    assert select_calls(calls, SelectionRule()).selected
