"""Tokenised training sequences with loss masks (labels -100 outside the targets).

A target is an assistant message of a secretary turn: its tool calls, or its words, from
just after ``<|im_start|>assistant\\n`` to ``<|im_end|>`` included. Tool results, the
patient's words, the system prompt and the chat markup around a message are context.
The text is rendered by ``knowledge.twin_format.render_prompt`` (identical to the base's
chat template) and labelled by character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowledge.twin_format import IM_START, render_prompt, tool_schemas
from twin_training.dataset import TurnExample

__all__ = ["IGNORE", "TrainSequence", "build_sequences", "render_with_spans", "tokenize_spans"]

IGNORE = -100
_ASSISTANT_OPEN = IM_START + "assistant\n"


@dataclass(frozen=True)
class TrainSequence:
    """One training sequence: ``labels[i]`` is ``input_ids[i]`` on target tokens, else -100."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    example_ids: tuple[str, ...]
    call_id: str
    split: str
    text: str
    spans: tuple[tuple[int, int], ...]

    @property
    def target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def render_with_spans(messages: Sequence[dict[str, Any]], target_indices: Sequence[int], *,
                      tools: Sequence[dict[str, Any]] | None = None
                      ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each target message."""
    tools = tools if tools is not None else tool_schemas()
    text = render_prompt(messages, tools=tools)
    spans = []
    for i in target_indices:
        if messages[i]["role"] != "assistant":
            raise ValueError(f"message {i} is not an assistant message")
        before = render_prompt(messages[:i], tools=tools)
        through = render_prompt(messages[: i + 1], tools=tools)
        assert text.startswith(through) and through[len(before):].startswith(_ASSISTANT_OPEN)
        spans.append((len(before) + len(_ASSISTANT_OPEN), len(through) - 1))  # keeps <|im_end|>
    return text, spans


def tokenize_spans(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]
                   ) -> tuple[list[int], list[int]]:
    """Token ids and labels: a token is a target when its characters lie inside a span."""
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    ordered = sorted(spans)
    j = 0
    for k, (start, end) in enumerate(enc["offset_mapping"]):
        while j < len(ordered) and ordered[j][1] <= start:
            j += 1
        if j < len(ordered) and ordered[j][0] <= start and end <= ordered[j][1] and end > start:
            labels[k] = ids[k]
    return ids, labels


def _example_messages(example: TurnExample) -> tuple[list[dict[str, Any]], list[int]]:
    messages = list(example.context) + list(example.target)
    base = len(example.context)
    targets = [base + j for j, m in enumerate(example.target) if m["role"] == "assistant"]
    return messages, targets


def build_sequences(examples: Sequence[TurnExample], tokenizer: Any, *, pack: str = "call",
                    max_length: int = 4096) -> tuple[list[TrainSequence], list[str]]:
    """Training sequences for the ``trained`` examples; returns (sequences, dropped ids).

    ``pack="call"``: one sequence per call, every trained turn of it a target (causal
    attention makes this the same loss as one sequence per turn). ``pack="turn"``: one
    sequence per turn."""
    tools = tool_schemas()
    groups: list[list[TurnExample]] = []
    if pack == "turn":
        groups = [[e] for e in examples if e.trained]
    else:
        by_call: dict[str, list[TurnExample]] = {}
        for e in examples:
            by_call.setdefault(e.call_id, []).append(e)
        groups = [sorted(xs, key=lambda e: e.turn_index) for xs in by_call.values()]
    sequences: list[TrainSequence] = []
    dropped: list[str] = []
    for group in groups:
        trained = [e for e in group if e.trained]
        if not trained:
            continue
        last = group[-1]
        messages, _ = _example_messages(last)
        targets: list[int] = []
        for e in trained:
            targets.extend(_example_messages(e)[1])
        text, spans = render_with_spans(messages, targets, tools=tools)
        ids, labels = tokenize_spans(tokenizer, text, spans)
        key = trained[0].call_id if pack != "turn" else trained[0].example_id
        if len(ids) > max_length:
            dropped.append(key)
            continue
        sequences.append(TrainSequence(
            input_ids=tuple(ids), labels=tuple(labels),
            example_ids=tuple(e.example_id for e in trained), call_id=trained[0].call_id,
            split=trained[0].split, text=text, spans=tuple(spans)))
    return sequences, dropped
