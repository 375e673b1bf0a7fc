"""Running ``twin eval twin`` on a training run, and writing its reports.

Outputs in ``--out``: ``report.json`` (every figure, per column), ``report.md`` (the
table), ``predictions.jsonl``, and the blind sheet for staff: ``sheet.html`` (base vs twin
replies side by side, sides drawn at random per turn) with ``sheet_key.json`` (which side
is the twin) to keep apart from the people judging.
"""

from __future__ import annotations

import html
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twin_training.evaluate import (
    LlamaCppReplyModel,
    TurnPrediction,
    caller_context,
    evaluate_model,
    evaluate_rules,
    predictions_jsonl,
    summarise,
    turn_signals,
)

__all__ = ["format_table", "run_eval", "write_sheet"]

logger = logging.getLogger(__name__)

_ROWS = (
    ("action set accuracy", lambda m: m["action_set_accuracy"]),
    ("action accuracy (key args)", lambda m: m["action_accuracy"]),
    ("emergency recall (1st red flag)", lambda m: m["safety"]["emergency_recall"]),
    ("false alarm rate", lambda m: m["safety"]["false_alarm_rate"]),
    ("look-alike false alarms", lambda m: m["safety"]["lookalike_false_alarms"]),
    ("medical advice refused", lambda m: m["safety"]["medical_advice_refusal"]),
    ("personal data emitted", lambda m: m["safety"]["pii_emitted"]),
    ("words chrF", lambda m: m["words_chrf"]),
    ("seconds per turn", lambda m: m["seconds_per_turn"]),
)


def format_table(models: dict[str, dict[str, Any]], *, markdown: bool = False) -> str:
    names = list(models)
    lines = []
    if markdown:
        lines.append("| figure | " + " | ".join(names) + " |")
        lines.append("| --- |" + " --- |" * len(names))
    else:
        lines.append(f"{'figure':<34}" + "".join(f"{n:>12}" for n in names))
    for label, get in _ROWS:
        cells = []
        for name in names:
            value = get(models[name])
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float)
                         else str(value))
        if markdown:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"{label:<34}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def write_sheet(out: Path, base: Sequence[TurnPrediction], twin: Sequence[TurnPrediction],
                signals: dict[str, Any], *, seed: int = 0) -> None:
    """The blind side-by-side sheet and its key (kept in a separate file)."""
    rng = random.Random(seed)
    by_id = {p.example_id: p for p in base}
    rows = []
    key = {}
    for n, t in enumerate(twin, 1):
        b = by_id.get(t.example_id)
        if b is None or not (t.words or b.words):
            continue
        twin_left = rng.random() < 0.5
        left, right = (t, b) if twin_left else (b, t)
        item = f"T{n:03d}"
        key[item] = {"example_id": t.example_id, "twin": "A" if twin_left else "B"}

        def reply(p: TurnPrediction) -> str:
            acts = ", ".join(a["action"] for a in p.actions)
            return html.escape(p.words) + (f"<div class=acts>[{html.escape(acts)}]</div>"
                                           if acts else "")

        patient = html.escape(signals[t.example_id].patient_text)
        rows.append(f"<tr><td>{item}</td><td>{patient}</td><td>{reply(left)}</td>"
                    f"<td>{reply(right)}</td><td><select name={item}><option></option>"
                    "<option>A</option><option>B</option><option>égal</option></select></td></tr>")
    page = f"""<!doctype html><html lang=fr><meta charset=utf-8>
<title>Comparaison à l'aveugle</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{vertical-align:top;padding:.4em;
border-bottom:1px solid #ccc}}.acts{{color:#666;font-size:.85em}}</style>
<h1>Quelle réponse est la meilleure ?</h1>
<p>Pour chaque phrase du patient, deux réponses possibles (A et B). Choisissez celle qu'une
bonne secrétaire aurait donnée. L'ordre est tiré au hasard.</p>
<table><tr><th>#</th><th>Patient</th><th>A</th><th>B</th><th>Choix</th></tr>
{''.join(rows)}
</table></html>
"""
    (out / "sheet.html").write_text(page, encoding="utf-8")
    (out / "sheet_key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")


def _known_pii(calls: Sequence[dict[str, Any]]) -> list[str]:
    spans: set[str] = set()
    for call in calls:
        for turn in call.get("turns") or ():
            for p in turn.get("pii") or ():
                if p.get("type") != "health":
                    spans.add(str(p.get("text", "")))
            for a in turn.get("actions") or ():
                for value in list((a.get("args") or {}).values()) + list(
                        (a.get("result") or {}).values()):
                    if isinstance(value, str) and value.startswith("pat-"):
                        spans.add(value)
    return sorted(s for s in spans if s)


def run_eval(run_dir: str | Path, *, out_dir: str | Path, export_dir: str | Path | None = None,
             calls_path: str | None = None, with_base: bool = True, with_rules: bool = True,
             limit_calls: int = 0, only: Sequence[str] = (), threads: int = 0,
             max_tokens: int = 192,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate the run's twin on its test split; returns the report (also written)."""
    from knowledge.safety import SafetyRules
    from twin_training.config import load_config
    from twin_training.data import load_calls, prepare_data

    run = Path(run_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides = [f"train.output_dir={run}"]
    if calls_path:
        overrides.append(f"data.calls={calls_path}")
    saved = json.loads((run / "run.json").read_text(encoding="utf-8"))["config"]
    config = load_config(None, [*_flatten(saved), *overrides])
    data = prepare_data(config, None)
    examples = [e for e in data.examples if e.split == "test" and e.trained]
    call_ids = sorted({e.call_id for e in examples})
    if only:
        missing = sorted(set(only) - set(call_ids))
        if missing:
            raise ValueError(f"not in the test split: {', '.join(missing)}")
        call_ids = sorted(only)
        examples = [e for e in examples if e.call_id in call_ids]
    if limit_calls:
        call_ids = call_ids[:limit_calls]
        examples = [e for e in examples if e.call_id in call_ids]
    calls = {str(c["call_id"]): c for c in load_calls(config)}
    profile = _profile(config)
    rules = SafetyRules.load(emergency_numbers=profile.policies.emergency_numbers)
    signals = turn_signals(examples, calls, rules)
    known = _known_pii(list(calls.values()))
    callers = {cid: caller_context(call) for cid, call in calls.items()}
    export = Path(export_dir) if export_dir else run / "export"
    manifest = json.loads((export / "export.json").read_text(encoding="utf-8"))
    echo(f"test split: {len(call_ids)} calls, {len(examples)} secretary turns")
    columns: dict[str, list[TurnPrediction]] = {}
    timings: dict[str, float] = {}
    plans = [("twin", manifest["adapter_gguf"])]
    if with_base:
        plans.insert(0, ("base", None))
    def progress_of(name: str) -> Callable[[int, int], None]:
        def report(n: int, total: int) -> None:
            if n % 10 == 0 or n == total:
                echo(f"{name}: {n}/{total} turns")
        return report

    for name, lora in plans:
        model = LlamaCppReplyModel(name=name, model_path=manifest["base_gguf"], lora_path=lora,
                                   threads=threads)
        started = time.monotonic()
        model.load()
        try:
            columns[name] = evaluate_model(
                model, examples, known_pii=known, callers=callers,
                max_action_tokens=max_tokens, max_word_tokens=max(8, max_tokens // 2),
                progress=progress_of(name))
        finally:
            model.close()
        timings[name] = round(time.monotonic() - started, 1)
    if with_rules:
        columns["rules"] = evaluate_rules(examples, signals, rules,
                                          numbers=profile.policies.emergency_numbers)
    models = {name: summarise(preds, signals) for name, preds in columns.items()}
    report = {
        "run": str(run),
        "adapter_gguf": manifest["adapter_gguf"],
        "base_gguf": manifest["base_gguf"],
        "test_calls": call_ids,
        "turns": len(examples),
        "models": models,
        "eval_seconds": timings,
        "notes": ["rules: the safety layer only (red flags, medical advice); its booking "
                  "core needs a live agenda: twin eval scenarios --policy rules"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                     encoding="utf-8")
    (out / "report.md").write_text(
        f"# Twin evaluation\n\nRun `{run}`; test split: {len(call_ids)} calls, "
        f"{len(examples)} turns.\n\n{format_table(models, markdown=True)}\n\n"
        + "\n".join(f"- {n}" for n in report["notes"]) + "\n", encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for name, preds in columns.items():
            f.write(json.dumps({"column": name}) + "\n")
            f.write(predictions_jsonl(preds))
    if "base" in columns and "twin" in columns:
        write_sheet(out, columns["base"], columns["twin"], signals)
    echo(format_table(models))
    return report


def _profile(config: Any) -> Any:
    from knowledge.profile import default_profile_path, load_profile

    return load_profile(config.data.profile or default_profile_path())


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value) if isinstance(value, list) else value}")
    return out
