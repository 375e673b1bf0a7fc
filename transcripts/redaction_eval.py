"""Precision and recall of the PII detector against labelled spans.

A labelled example is a text with its spans (``{"type", "text"}``, copied verbatim from
the text, as in the corpus format). A gold span is *found* when a detected span overlaps
it (its words are hidden whatever placeholder they get: ``recall``), when one of the same
type overlaps it (``recall_typed``) and when one covers exactly the same characters
(``recall_exact``). A detected span is *right* when it overlaps a gold span of any type.
Used by ``bench/redaction.py`` and the tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from transcripts.textspans import locate_all
from transcripts.types import PiiSpanProposal

__all__ = ["Example", "Score", "TypeScore", "locate_gold", "score"]


@dataclass(frozen=True)
class Example:
    """One text, its gold spans as (type, verbatim text), and what was detected in it."""

    text: str
    gold: tuple[tuple[str, str], ...]
    detected: tuple[PiiSpanProposal, ...] = ()


@dataclass
class TypeScore:
    gold: int = 0
    found: int = 0
    found_typed: int = 0
    found_exact: int = 0
    detected: int = 0
    right: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def recall_typed(self) -> float:
        return self.found_typed / self.gold if self.gold else 1.0

    @property
    def recall_exact(self) -> float:
        return self.found_exact / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.right / self.detected if self.detected else 1.0


@dataclass
class Score:
    by_type: dict[str, TypeScore] = field(default_factory=lambda: defaultdict(TypeScore))
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # (type, span, text)
    wrong: list[tuple[str, str, str]] = field(default_factory=list)  # (type, span, text)

    def total(self) -> TypeScore:
        t = TypeScore()
        for s in self.by_type.values():
            t.gold += s.gold
            t.found += s.found
            t.found_typed += s.found_typed
            t.found_exact += s.found_exact
            t.detected += s.detected
            t.right += s.right
        return t


def locate_gold(text: str, gold: Sequence[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """Offsets of the gold spans in the text (each mention on its own occurrence)."""
    places = locate_all(text, [g[1] for g in gold])
    return [(g[0], p[0], p[1]) for g, p in zip(gold, places, strict=True) if p is not None]


def score(examples: Iterable[Example]) -> Score:
    result = Score()
    for ex in examples:
        gold = locate_gold(ex.text, ex.gold)
        for gtype, gs, ge in gold:
            ts = result.by_type[gtype]
            ts.gold += 1
            over = [d for d in ex.detected if d.start < ge and gs < d.end]
            if over:
                ts.found += 1
            else:
                result.missed.append((gtype, ex.text[gs:ge], ex.text))
            if any(d.type == gtype for d in over):
                ts.found_typed += 1
            if any(d.start == gs and d.end == ge for d in over):
                ts.found_exact += 1
        for d in ex.detected:
            ts = result.by_type[d.type]
            ts.detected += 1
            if any(d.start < ge and gs < d.end for _t, gs, ge in gold):
                ts.right += 1
            else:
                result.wrong.append((d.type, ex.text[d.start:d.end], ex.text))
    return result
