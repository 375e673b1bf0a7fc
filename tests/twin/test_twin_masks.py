"""The real Qwen tokenizer (from the embedded GGUF): the Python template equals the base's
own chat template, and the loss masks cover exactly the secretary's targets."""

from __future__ import annotations

from typing import Any

import pytest

from knowledge.profile import PracticeProfile
from knowledge.twin_format import IM_END, render_prompt, tool_schemas
from twin_training.config import DataConfig
from twin_training.dataset import assign_splits, build_examples, call_examples
from twin_training.sequences import IGNORE, build_sequences, render_with_spans, tokenize_spans

pytestmark = [pytest.mark.models]


def test_render_equals_the_tokenizer_chat_template(tokenizer: Any, corpus: list[dict[str, Any]],
                                                   profile: PracticeProfile) -> None:
    tools = tool_schemas()
    for call in corpus:
        last = call_examples(call, profile, split="train")[-1]
        messages = [*last.context, *last.target]
        assert render_prompt(messages, tools=tools) == tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False), call["call_id"]
        assert render_prompt(list(last.context), tools=tools, add_generation_prompt=True) == \
            tokenizer.apply_chat_template(list(last.context), tools=tools, tokenize=False,
                                          add_generation_prompt=True)


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, x in enumerate([*labels, IGNORE]):
        if x != IGNORE and start is None:
            start = i
        elif x == IGNORE and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_masks_cover_only_the_targets_token_by_token(tokenizer: Any,
                                                     corpus: list[dict[str, Any]],
                                                     profile: PracticeProfile) -> None:
    call = next(c for c in corpus if c["call_id"] == "P1-001")
    examples = call_examples(call, profile, split="train")
    sequences, dropped = build_sequences(examples, tokenizer, pack="call")
    assert not dropped and len(sequences) == 1
    seq = sequences[0]
    ids, labels = list(seq.input_ids), list(seq.labels)
    assert ids == tokenizer(seq.text, add_special_tokens=False)["input_ids"]
    # the expected targets, written out: each trained turn's assistant messages, content
    # then <|im_end|>
    expected = []
    for e in examples[1:]:  # not the greeting
        for m in e.target:
            if m["role"] != "assistant":
                continue
            body = render_prompt([{"role": "system", "content": ""}, m])
            body = body.split("<|im_start|>assistant", 1)[1]
            expected.append(body[1:].rstrip("\n"))  # after "\n", through <|im_end|>
    runs = _runs(labels)
    assert [tokenizer.decode(ids[a:b]) for a, b in runs] == expected
    for a, b in runs:
        assert labels[a:b] == ids[a:b]
        assert tokenizer.decode(ids[a - 3:a]).endswith("<|im_start|>assistant\n")
        assert ids[b - 1] == tokenizer.convert_tokens_to_ids(IM_END)
    # nothing else is learned: the system prompt, the patient, the tool results, the greeting
    unlabelled = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True)
                                   if lab == IGNORE])
    for e in examples:
        for m in e.target:
            if m["role"] == "tool":
                assert m["content"] in unlabelled
    assert call["turns"][0]["text"] in unlabelled
    for turn in call["turns"]:
        if turn["speaker"] == "patient":
            assert turn["text"] in unlabelled
    assert seq.target_tokens == sum(b - a for a, b in runs)


def test_one_sequence_per_turn_gives_the_same_targets(tokenizer: Any,
                                                      corpus: list[dict[str, Any]],
                                                      profile: PracticeProfile) -> None:
    call = next(c for c in corpus if c["call_id"] == "P3-007")
    examples = call_examples(call, profile, split="train")
    packed, _ = build_sequences(examples, tokenizer, pack="call")
    per_turn, _ = build_sequences(examples, tokenizer, pack="turn")
    assert len(per_turn) == sum(1 for e in examples if e.trained)

    def targets(seq: Any) -> list[str]:
        return [tokenizer.decode(seq.input_ids[a:b]) for a, b in _runs(list(seq.labels))]

    assert [t for s in per_turn for t in targets(s)] == targets(packed[0])
    # each per-turn sequence ends with its own target (then the template's newline)
    for s in per_turn:
        assert s.labels[-2] != IGNORE and s.labels[-1] == IGNORE
        assert tokenizer.decode(s.input_ids[-1:]) == "\n"


def test_spans_and_length_limit(tokenizer: Any, corpus: list[dict[str, Any]],
                                profile: PracticeProfile) -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Allô ?"},
                {"role": "assistant", "content": "Bonjour."}]
    text, spans = render_with_spans(messages, [2])
    assert text[spans[0][0]:spans[0][1]] == "Bonjour.<|im_end|>"
    ids, labels = tokenize_spans(tokenizer, text, spans)
    assert tokenizer.decode([t for t, lab in zip(ids, labels, strict=True)
                             if lab != IGNORE]) == "Bonjour.<|im_end|>"
    with pytest.raises(ValueError):
        render_with_spans(messages, [1])
    config = DataConfig()
    examples = build_examples(corpus[:3], profile, config, assign_splits(corpus[:3]))
    kept, dropped = build_sequences(examples, tokenizer, max_length=1000)
    assert not kept and len(dropped) == 3


def test_decision_tokens_are_the_first_of_each_target_run(tokenizer: Any,
                                                          corpus: list[dict[str, Any]],
                                                          profile: PracticeProfile) -> None:
    torch = pytest.importorskip("torch")
    from twin_training.train import decision_mask

    call = next(c for c in corpus if c["call_id"] == "P1-001")
    sequences, _ = build_sequences(call_examples(call, profile, split="train"), tokenizer,
                                   pack="call")
    labels = torch.tensor([sequences[0].labels])
    starts = decision_mask(labels[:, 1:])[0].nonzero().flatten().tolist()
    runs = _runs(list(sequences[0].labels))
    assert starts == [a - 1 for a, _b in runs]  # shifted: predicted from the token before
    # each is where the secretary chooses: an action (<tool_call>) or the first word
    first = {tokenizer.decode([sequences[0].input_ids[a]]) for a, _b in runs}
    assert "<tool_call>" in first and len(first) > 1


def test_the_decision_weight_counts_those_tokens_that_many_times() -> None:
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from twin_training.train import sequence_loss

    torch.manual_seed(0)
    emb, head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10)
    lm = SimpleNamespace(model=lambda input_ids: SimpleNamespace(last_hidden_state=emb(input_ids)),
                         lm_head=head)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4, IGNORE, 6, 7]])
    per = torch.nn.functional.cross_entropy(head(emb(ids))[0, :-1], ids[0, 1:], reduction="none")
    targets = per[[1, 2, 4, 5]]  # positions predicting 3, 4, 6, 7; decisions: 3 and 6
    with torch.no_grad():
        assert float(sequence_loss(lm, ids, labels)) == pytest.approx(float(targets.mean()))
        weighted = (targets * torch.tensor([4.0, 1.0, 4.0, 1.0])).sum() / 10.0
        assert float(sequence_loss(lm, ids, labels, decision_weight=4.0)) == \
            pytest.approx(float(weighted))
