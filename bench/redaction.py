"""PII redaction: precision and recall per type on the corpus's labelled spans and on the
French test set (tests/fixtures/pii/sentences.jsonl).

Usage: .venv/bin/python bench/redaction.py [--corpus ../shared/corpus/calls.jsonl]
       [--set FILE.jsonl ...] [--no-health] [--show-missed N]

The sets by default: tests/fixtures/pii/sentences.jsonl (176 sentences, written with the
detector) and tests/fixtures/pii/heldout.jsonl (30 sentences written afterwards and not
tuned on).

Recall: a labelled span is found when a detected span overlaps it (its words are hidden);
"typed" also needs the same type, "exact" the same characters. Precision: a detected span
is right when it overlaps a labelled span. The corpus is read call by call
(``Redactor.detect_call``) with the demo practice's profile; the secretary's first name
comes from the call's ``secretary_id``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

from knowledge.profile import load_profile
from transcripts.redaction import RedactionContext, Redactor
from transcripts.redaction_eval import Example, Score, score

ROOT = Path(__file__).resolve().parents[1]
GOAL_TYPES = ("person", "spelled_name", "birth_date", "phone", "nir", "email")


def _print(title: str, result: Score, show_missed: int) -> None:
    print(f"\n## {title}")
    print(f"{'type':<13}{'gold':>6}{'recall':>8}{'typed':>8}{'exact':>8}{'detected':>10}"
          f"{'precision':>11}")
    for t in sorted(result.by_type):
        s = result.by_type[t]
        print(f"{t:<13}{s.gold:>6}{s.recall:>8.3f}{s.recall_typed:>8.3f}{s.recall_exact:>8.3f}"
              f"{s.detected:>10}{s.precision:>11.3f}")
    tot = result.total()
    print(f"{'all':<13}{tot.gold:>6}{tot.recall:>8.3f}{tot.recall_typed:>8.3f}"
          f"{tot.recall_exact:>8.3f}{tot.detected:>10}{tot.precision:>11.3f}")
    goal = [result.by_type[t] for t in GOAL_TYPES if t in result.by_type]
    g = sum(s.gold for s in goal)
    f = sum(s.found for s in goal)
    print(f"names+spelled+DOB+phone+NIR+email recall: {f}/{g} = {f / max(1, g):.3f}")
    if show_missed:
        for typ, span, text in result.missed[:show_missed]:
            print(f"  MISSED {typ:<12} {span!r}  in  {text[:110]!r}")
        for typ, span, text in result.wrong[:show_missed]:
            print(f"  WRONG  {typ:<12} {span!r}  in  {text[:110]!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "calls.jsonl")
    p.add_argument("--set", type=Path, action="append", dest="sets",
                   help="a labelled sentence set (repeatable)")
    p.add_argument("--profile", type=Path, default=ROOT / "knowledge" / "practices" / "demo.yaml")
    p.add_argument("--no-health", action="store_true", help="do not detect health details")
    p.add_argument("--show-missed", type=int, default=0)
    a = p.parse_args()

    profile = load_profile(a.profile)
    redactor = Redactor()
    t0 = time.perf_counter()
    redactor.load()
    print(f"model loaded in {time.perf_counter() - t0:.1f}s")

    if a.corpus.exists():
        examples: list[Example] = []
        n_turns = 0
        t0 = time.perf_counter()
        for line in a.corpus.read_text(encoding="utf-8").splitlines():
            call = json.loads(line)
            sec = (call.get("secretary_id") or "").split("-")[-1]
            ctx = RedactionContext.from_profile(
                profile, staff_names=[sec] if sec else [], health=not a.no_health,
                language=call.get("language") or "fr",
                ref_year=datetime.fromisoformat(call["started_at"]).year)
            texts = [t["text"] for t in call["turns"]]
            n_turns += len(texts)
            speakers = [t.get("speaker", "unknown") for t in call["turns"]]
            for turn, spans in zip(call["turns"], redactor.detect_call(
                    texts, context=ctx, speakers=speakers), strict=True):
                gold = tuple((s["type"], s["text"]) for s in turn.get("pii", []))
                examples.append(Example(turn["text"], gold, tuple(spans)))
        took = time.perf_counter() - t0
        _print(f"corpus {a.corpus} ({n_turns} turns, {took:.1f}s, "
               f"{1000 * took / max(1, n_turns):.1f} ms/turn)", score(examples), a.show_missed)
    else:
        print(f"no corpus at {a.corpus}")

    pii = ROOT / "tests" / "fixtures" / "pii"
    for path in a.sets or [pii / "sentences.jsonl", pii / "heldout.jsonl"]:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        ctx = RedactionContext.from_profile(profile, health=not a.no_health, ref_year=2026)
        examples = []
        for row in rows:
            lang = row.get("language", "fr")
            spans = redactor.detect(row["text"], context=ctx if lang == "fr" else ctx.replace(
                language=lang), previous=row.get("previous", ""))
            gold = tuple((s["type"], s["text"]) for s in row["spans"])
            examples.append(Example(row["text"], gold, tuple(spans)))
        _print(f"test set {path.name} ({len(rows)} sentences)", score(examples), a.show_missed)

if __name__ == "__main__":
    main()
