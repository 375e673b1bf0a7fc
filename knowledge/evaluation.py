"""Evaluate the safety rules on a labelled set: per-category recall and precision.

The labelled set is YAML ``label -> family -> [utterances]`` (see
``knowledge/labelled/safety_fr.yaml``). Red-flag recall counts an ``emergency``
or ``suicide`` utterance as caught when the verdict is either of them (both
send the caller to emergency numbers and a human); the per-category figures are
exact.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.safety import CATEGORIES, RED_FLAG_CATEGORIES, SafetyRules, SafetyVerdict

__all__ = [
    "CategoryScore",
    "EvalReport",
    "LabelledItem",
    "default_labelled_path",
    "evaluate",
    "load_labelled",
]


def default_labelled_path() -> Path:
    return Path(__file__).resolve().parent / "labelled" / "safety_fr.yaml"


@dataclass(frozen=True)
class LabelledItem:
    text: str
    label: str
    family: str


@dataclass(frozen=True)
class CategoryScore:
    category: str
    support: int  # labelled items of this category
    predicted: int  # items predicted as this category
    correct: int

    @property
    def recall(self) -> float:
        return self.correct / self.support if self.support else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0


@dataclass
class EvalReport:
    items: list[tuple[LabelledItem, SafetyVerdict]]
    scores: dict[str, CategoryScore]
    red_flag_total: int
    red_flag_caught: int
    negatives_total: int
    negatives_flagged: int
    timings_s: list[float] = field(default_factory=list)

    @property
    def red_flag_recall(self) -> float:
        return self.red_flag_caught / self.red_flag_total if self.red_flag_total else 1.0

    @property
    def false_positive_rate(self) -> float:
        """Share of ``none`` items given any other category."""
        return self.negatives_flagged / self.negatives_total if self.negatives_total else 0.0

    @property
    def negatives_red_flagged(self) -> int:
        return sum(1 for it, v in self.items if it.label == "none" and v.is_red_flag)

    @property
    def confusions(self) -> list[tuple[LabelledItem, SafetyVerdict]]:
        return [(it, v) for it, v in self.items if it.label != v.category]

    @property
    def missed_red_flags(self) -> list[tuple[LabelledItem, SafetyVerdict]]:
        return [(it, v) for it, v in self.items
                if it.label in RED_FLAG_CATEGORIES and not v.is_red_flag]

    def percentile_ms(self, q: float) -> float:
        if not self.timings_s:
            return 0.0
        ordered = sorted(self.timings_s)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000


def load_labelled(path: str | Path | None = None) -> list[LabelledItem]:
    """Read a labelled set; raises ValueError with the file and key on bad structure."""
    import yaml

    file = Path(path) if path is not None else default_labelled_path()
    data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a mapping label -> family -> utterances")
    items: list[LabelledItem] = []
    for label, families in data.items():
        if label not in CATEGORIES:
            raise ValueError(f"{file}: {label}: unknown label (use: {', '.join(CATEGORIES)})")
        if not isinstance(families, dict):
            raise ValueError(f"{file}: {label}: expected a mapping family -> utterances")
        for family, texts in families.items():
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{file}: {label}.{family}: expected a list of strings")
            items.extend(LabelledItem(text=t, label=label, family=str(family)) for t in texts)
    return items


def evaluate(rules: SafetyRules, items: list[LabelledItem]) -> EvalReport:
    results: list[tuple[LabelledItem, SafetyVerdict]] = []
    timings: list[float] = []
    for item in items:
        started = time.perf_counter()
        verdict = rules.assess(item.text)
        timings.append(time.perf_counter() - started)
        results.append((item, verdict))
    support = Counter(it.label for it, _ in results)
    predicted = Counter(v.category for _, v in results)
    correct = Counter(it.label for it, v in results if it.label == v.category)
    scores = {c: CategoryScore(c, support[c], predicted[c], correct[c]) for c in CATEGORIES}
    red = [(it, v) for it, v in results if it.label in RED_FLAG_CATEGORIES]
    neg = [(it, v) for it, v in results if it.label == "none"]
    return EvalReport(
        items=results, scores=scores, red_flag_total=len(red),
        red_flag_caught=sum(1 for _, v in red if v.is_red_flag),
        negatives_total=len(neg), negatives_flagged=sum(1 for _, v in neg if v.category != "none"),
        timings_s=timings)
