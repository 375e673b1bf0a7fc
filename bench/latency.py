"""Voice-to-voice latency of real calls on this machine.

Places N calls through the real stack (AudioSocket over loopback TCP, Silero VAD,
smart-turn, Whisper, the call agent with the embedded LLM, eSpeak NG) with the
caller simulator playing fixture audio, and prints p50/p95 per stage:

  end of patient speech → transcript → first LLM text → first TTS audio, and the
  total voice-to-voice (end of speech → first bot audio out), measured inside the
  pipeline; plus voice-to-voice as the caller hears it (simulator side).

Levers are compared in the same run, on the same loaded models (``--variant``), and load is
measured with several simultaneous calls (``--concurrency 1,2,4,8``) and with other
processes keeping cores busy (``--hog N``).

Usage: .venv/bin/python bench/latency.py [--calls N] [--concurrency 1,2,4,8] [--hog N]
           [--variant NAME:stt.window=full,stt.vad_stop_s=0.5 ...] [--interleave] [--fixtures DIR]
           [--config FILE]
           [--policy hybrid --variant rules:policy=rules --variant hybrid:policy=hybrid]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SCRIPTS = [
    ["03_book_morel_thursday_pm", "11_confirm_slot", "07_identity_paul_girard", "24_goodbye"],
    ["04_book_haddad_14th_9am", "11_confirm_slot", "08_identity_sophie_laurent", "24_goodbye"],
    ["05_book_morel_next_week", "12_confirm_slot_time", "09_identity_nadia_benali", "24_goodbye"],
    ["01_greeting_cabinet", "15_ask_opening_hours", "16_ask_address", "24_goodbye"],
    ["06_book_haddad_dermatology", "13_refuse_slot_evening", "11_confirm_slot", "24_goodbye"],
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


STAGES = ("turn_end_s", "stt_s", "llm_first_token_s", "tts_first_audio_s", "voice_to_voice_s")
LABELS = {"turn_end_s": "speech end → turn end", "stt_s": "speech end → transcript",
          "llm_first_token_s": "transcript → 1st text", "tts_first_audio_s": "1st text → 1st audio",
          "voice_to_voice_s": "voice-to-voice (bot)", "caller_heard_v2v_s": "voice-to-voice (caller)",
          "v2v_rule_turns_s": "  … turns answered by rules", "v2v_llm_turns_s": "  … turns answered by LLM"}


def _hog(stop: Any) -> None:  # pragma: no cover - a busy core for the load test
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    pairs = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    unknown = set(pairs) - {"stt.window", "stt.vad_stop_s", "stt.beam_size", "policy",
                          "llm.early_ack", "llm.warm_turns", "stt.late_wait_s",
                          "stt.speculate_after_s", "stt.speculate_max_calls"}
    if unknown:
        raise SystemExit(f"--variant {text}: unknown key(s) {', '.join(sorted(unknown))}")
    return name, pairs


def apply_variant(services: Any, pairs: dict[str, str], *, policy: str = "rules") -> None:
    """Switch levers on the loaded services (no reload: the same models for every variant).
    ``policy=rules|model|hybrid`` switches the dialogue policy per call (the twin is started
    once, by ``--policy``)."""
    want = pairs.get("policy", policy)
    if want != "rules" and policy == "rules":
        raise SystemExit("a policy=model/hybrid variant needs --policy model or hybrid (starts the twin)")
    services.policy = want
    services.whisper.window = pairs.get("stt.window", "fit")
    services.vad_stop_s = float(pairs.get("stt.vad_stop_s", 0.2))
    services.early_ack = pairs.get("llm.early_ack", "1").lower() not in {"0", "false", "no"}
    services.warm_turns = pairs.get("llm.warm_turns", "1").lower() not in {"0", "false", "no"}
    spec = float(pairs.get("stt.speculate_after_s", 0.0))
    services.speculate_after_s = spec if spec >= 0 else None
    services.speculate_max_calls = int(pairs.get("stt.speculate_max_calls", 1))
    late = pairs.get("stt.late_wait_s")
    services.late_transcript_wait_s = None if late is None else float(late)
    if "stt.beam_size" in pairs:
        services.whisper.beam_size = int(pairs["stt.beam_size"])


def summarise(reports: list[Any], caller_v2v: list[float]) -> dict[str, Any]:
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    stages["v2v_rule_turns_s"], stages["v2v_llm_turns_s"] = [], []
    for r in reports:
        for t in r.turns:
            for key in STAGES:
                if t.get(key) is not None:
                    stages[key].append(float(t[key]))
            if t.get("voice_to_voice_s") is not None and t.get("llm") is not None:
                # whether the model was asked for the turn (the agent's record), not a guess
                # from its time (a rules turn that searched the agenda can take 0.1 s too)
                key = "v2v_llm_turns_s" if t["llm"] else "v2v_rule_turns_s"
                stages[key].append(float(t["voice_to_voice_s"]))
    stages["caller_heard_v2v_s"] = caller_v2v
    return {k: {"n": len(v), "p50": pct(v, 0.5), "p95": pct(v, 0.95),
                "mean": statistics.fmean(v) if v else float("nan")} for k, v in stages.items()}


async def run_calls(services: Any, args: argparse.Namespace, *, calls: int, concurrency: int,
                    data_dir: Path, first: int = 0) -> tuple[list[Any], list[float]]:
    from telephony.server import AudioSocketServer
    from telephony.simulator import CallerSimulator, PatientTurn
    from twin.demo import fmt_seconds
    from voice.call import CallReport, build_call_handler

    reports: list[CallReport] = []
    caller_v2v: list[float] = []
    server = AudioSocketServer(host="127.0.0.1", port=0,
                               handler=build_call_handler(services, on_report=reports.append))
    await server.start()

    async def one(i: int) -> None:
        script = SCRIPTS[i % len(SCRIPTS)]
        turns = [PatientTurn(wav=args.fixtures / f"{name}.wav") for name in script]
        sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000)
        rec = await sim.run(turns, record_to=data_dir / f"bench-{concurrency}-{i}.wav")
        caller_v2v.extend(t.latency_s for t in rec.turns if t.latency_s is not None)

    try:
        done = 0
        while done < calls:
            wave = concurrency
            t = time.monotonic()
            await asyncio.gather(*(one(first + done + k) for k in range(wave)))
            done += wave
            for _ in range(100):  # the reports land when each call's handler returns
                if len(reports) >= done:
                    break
                await asyncio.sleep(0.1)
            print(f"  {done}/{calls} calls ({wave} at once) in {time.monotonic() - t:.1f} s",
                  file=sys.stderr)
    finally:
        await server.stop()
    if args.verbose:
        for r in reports:
            for who, text in r.transcript:
                print(f"    {who:>9} › {text}", file=sys.stderr)
            print(f"    booked={r.booked} handoff={r.handoff}", file=sys.stderr)
            for t in r.turns:  # each timed turn's stages, from the end of speech
                f = fmt_seconds
                print(f"      turn end {f(t.get('turn_end_s'))} transcript {f(t.get('stt_s'))} "
                      f"→ 1st text {f(t.get('llm_first_token_s'))} v2v {f(t.get('voice_to_voice_s'))}"
                      f" llm={t.get('llm')} spec={t.get('speculative')} ({len(t.get('text') or '')}"
                      " chars)", file=sys.stderr)
    timed = [t for r in reports for t in r.turns]
    print(f"  transcripts decoded at the pause's onset: {sum(bool(t.get('speculative')) for t in timed)}"
          f" of {len(timed)} timed turns", file=sys.stderr)
    return reports, caller_v2v


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from twin.runtime import voice_runtime
    from twin.settings import Settings

    settings = Settings.load(args.config)
    if args.policy:
        settings.policy = args.policy
    settings.data_dir = str(Path(settings.data_dir) / "bench")
    (Path(settings.data_dir) / "agenda.db").unlink(missing_ok=True)
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    levels = [int(x) for x in args.concurrency.split(",")]
    results: dict[str, Any] = {}
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(args.hog)]
    async with voice_runtime(settings, say=lambda m: print(m, file=sys.stderr)) as services:
        for h in hogs:
            h.start()
        try:
            runs: dict[str, tuple[list[Any], list[float]]] = {}
            # --interleave: one wave of each variant in turn (the same script for each), so a
            # machine that slows down or speeds up during the run weighs on every variant alike
            order = ([(level, w, v) for level in levels
                      for w in range(max(1, -(-max(args.calls, level) // level))) for v in variants]
                     if args.interleave else
                     [(level, None, v) for v in variants for level in levels])
            for level, wave, (name, pairs) in order:
                apply_variant(services, pairs, policy=settings.policy)
                print(f"variant {name}, {level} simultaneous call(s), {args.hog} busy core(s)",
                      file=sys.stderr)
                key = f"{name} x{level}" + (f" hog{args.hog}" if args.hog else "")
                reports, heard = await run_calls(
                    services, args, calls=level if wave is not None else max(args.calls, level),
                    concurrency=level, data_dir=Path(settings.data_dir),
                    first=0 if wave is None else wave * level)
                prev = runs.setdefault(key, ([], []))
                prev[0].extend(reports)
                prev[1].extend(heard)
            for key, (reports, heard) in runs.items():
                results[key] = summarise(reports, heard)
        finally:
            stop.set()
            for h in hogs:
                h.join(5)
    return results


def print_table(results: dict[str, Any]) -> None:
    base = next(iter(results.values()))["voice_to_voice_s"]["p50"] if results else float("nan")
    for key, stages in results.items():
        v2v = stages["voice_to_voice_s"]["p50"]
        print(f"\n{key}   (voice-to-voice p50 ratio to the first row: {v2v / base:.2f})")
        print(f"{'stage':<30}{'n':>4}{'p50':>9}{'p95':>9}{'mean':>9}")
        for stage, row in stages.items():
            print(f"{LABELS[stage]:<30}{row['n']:>4}{row['p50']:>8.2f}s{row['p95']:>8.2f}s"
                  f"{row['mean']:>8.2f}s")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5, help="calls per row (at least the concurrency)")
    p.add_argument("--concurrency", default="1", help="simultaneous calls, e.g. 1,2,4,8")
    p.add_argument("--hog", type=int, default=0, help="processes keeping a core busy meanwhile")
    p.add_argument("--policy", choices=["rules", "model", "hybrid"],
                   help="Dialogue policy at start (model/hybrid start the deployed twin, or the "
                        "base model without one); variants may switch it with policy=...")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME:key=value,... levers for one row set (stt.window, stt.vad_stop_s, "
                        "stt.beam_size, stt.late_wait_s, stt.speculate_after_s (<0: off), stt.speculate_max_calls, "
                        "policy, llm.early_ack, "
                        "llm.warm_turns); repeat to compare in one run")
    p.add_argument("--interleave", action="store_true",
                   help="alternate the variants wave by wave (same scripts) instead of one after the other")
    p.add_argument("--fixtures", type=Path,
                   default=Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "calls")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print each call's transcript")
    a = p.parse_args()
    from twin.cli import quiet_pipecat

    quiet_pipecat(30)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = asyncio.run(main(a))
    print_table(result)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
