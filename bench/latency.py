"""Voice-to-voice latency of real calls on this machine.

Places N calls through the real stack (AudioSocket over loopback TCP, Silero VAD,
smart-turn, Whisper, the call agent with the embedded LLM, eSpeak NG) with the
caller simulator playing fixture audio, and prints p50/p95 per stage:

  end of patient speech → transcript → first LLM text → first TTS audio, and the
  total voice-to-voice (end of speech → first bot audio out), measured inside the
  pipeline; plus voice-to-voice as the caller hears it (simulator side).

Usage: .venv/bin/python bench/latency.py [--calls N] [--fixtures DIR] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from telephony.server import AudioSocketServer
    from telephony.simulator import CallerSimulator, PatientTurn
    from twin.runtime import voice_runtime
    from twin.settings import Settings
    from voice.call import CallReport, build_call_handler

    settings = Settings.load(args.config)
    settings.data_dir = str(Path(settings.data_dir) / "bench")
    (Path(settings.data_dir) / "agenda.db").unlink(missing_ok=True)
    reports: list[CallReport] = []
    caller_v2v: list[float] = []
    async with voice_runtime(settings, say=lambda m: print(m, file=sys.stderr)) as services:
        server = AudioSocketServer(host="127.0.0.1", port=0,
                                   handler=build_call_handler(services, on_report=reports.append))
        await server.start()
        try:
            for i in range(args.calls):
                script = SCRIPTS[i % len(SCRIPTS)]
                turns = [PatientTurn(wav=args.fixtures / f"{name}.wav") for name in script]
                sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000)
                t = time.monotonic()
                rec = await sim.run(turns, record_to=Path(settings.data_dir) / f"bench-{i}.wav")
                n = len(reports)
                for _ in range(100):
                    if len(reports) > i:
                        break
                    await asyncio.sleep(0.1)
                for turn in rec.turns:
                    if turn.latency_s is not None:
                        caller_v2v.append(turn.latency_s)
                print(f"call {i + 1}/{args.calls}: {time.monotonic() - t:.1f} s, "
                      f"{len(reports) - n} report(s)", file=sys.stderr)
                if args.verbose and len(reports) > i:
                    r = reports[i]
                    for who, text in r.transcript:
                        print(f"    {who:>9} › {text}", file=sys.stderr)
                    print(f"    booked={r.booked} handoff={r.handoff}", file=sys.stderr)
        finally:
            await server.stop()
    stages: dict[str, list[float]] = {"stt_s": [], "llm_first_token_s": [], "tts_first_audio_s": [],
                                      "voice_to_voice_s": []}
    for r in reports:
        for t in r.turns:
            for key, values in stages.items():
                if t.get(key) is not None:
                    values.append(float(t[key]))
    for r in reports:
        for t in r.turns:
            if t.get("voice_to_voice_s") is None or t.get("llm_first_token_s") is None:
                continue
            key = "v2v_llm_turns_s" if t["llm_first_token_s"] > 0.1 else "v2v_rule_turns_s"
            stages.setdefault(key, []).append(float(t["voice_to_voice_s"]))
    stages.setdefault("v2v_rule_turns_s", [])
    stages.setdefault("v2v_llm_turns_s", [])
    stages["caller_heard_v2v_s"] = caller_v2v
    out = {k: {"n": len(v), "p50": pct(v, 0.5), "p95": pct(v, 0.95),
               "mean": statistics.fmean(v) if v else float("nan")} for k, v in stages.items()}
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--fixtures", type=Path,
                   default=Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "calls")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print each call's transcript")
    a = p.parse_args()
    from twin.cli import quiet_pipecat

    quiet_pipecat(30)
    result = asyncio.run(main(a))
    print(f"{'stage':<28}{'n':>4}{'p50':>9}{'p95':>9}{'mean':>9}")
    labels = {"stt_s": "speech end → transcript", "llm_first_token_s": "transcript → 1st LLM text",
              "tts_first_audio_s": "1st text → 1st TTS audio", "voice_to_voice_s": "voice-to-voice (bot)",
              "caller_heard_v2v_s": "voice-to-voice (caller)",
              "v2v_rule_turns_s": "  … turns answered by rules", "v2v_llm_turns_s": "  … turns answered by LLM"}
    for key, row in result.items():
        print(f"{labels[key]:<28}{row['n']:>4}{row['p50']:>8.2f}s{row['p95']:>8.2f}s{row['mean']:>8.2f}s")
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
