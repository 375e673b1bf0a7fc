"""Whisper on the French phone fixtures: word error rate and time per utterance.

Usage: .venv/bin/python bench/stt_wer.py [--beam 5] [--prompt TEXT|--no-prompt] [--fixtures DIR]
                                         [--window fit,full]
Prints per-file WER and the mean, and p50/p95 transcription time, for each encoder window
(``fit``: the utterance plus 1 s, at least 10 s; ``full``: Whisper's 30 s), both on one loaded
model and interleaved file by file, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import unicodedata
import wave
from pathlib import Path


def words(text: str) -> list[str]:
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", t)


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(1, len(r))


def main() -> None:
    from twin.models import require
    from voice.stt import WhisperEngine

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fixtures", type=Path,
                   default=Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "calls")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--prompt", default=None)
    p.add_argument("--window", default="fit", help="comma-separated: fit, full")
    a = p.parse_args()
    manifest = json.loads((a.fixtures / "manifest.json").read_text())
    windows = [w.strip() for w in a.window.split(",") if w.strip()]
    engines = {}
    for name in windows:
        eng = WhisperEngine(model_dir=require("whisper-base"), beam_size=a.beam,
                            initial_prompt=a.prompt, window=name)
        if engines:
            eng._model = next(iter(engines.values()))._model  # one model, several windows
        else:
            eng.load()
        engines[name] = eng
    wers: dict[str, list[float]] = {n: [] for n in windows}
    times: dict[str, list[float]] = {n: [] for n in windows}
    for item in manifest:
        with wave.open(str(a.fixtures / item["file"])) as w:
            pcm, rate = w.readframes(w.getnframes()), w.getframerate()
        for name, eng in engines.items():
            res = eng.transcribe(pcm, rate)
            e = wer(item["text"], res.text)
            wers[name].append(e)
            times[name].append(res.elapsed_s)
            print(f"{name:<4} {e:5.2f} {res.elapsed_s:5.2f}s {item['file']:<32} {res.text}")
    base = statistics.median(times[windows[0]])
    for name in windows:
        t = sorted(times[name])
        print(f"window={name} beam={a.beam} prompt={a.prompt!r}: mean WER "
              f"{statistics.fmean(wers[name]):.3f}, time p50 {statistics.median(t):.2f}s "
              f"p95 {t[int(0.95 * (len(t) - 1))]:.2f}s (p50 ratio to {windows[0]}: "
              f"{statistics.median(t) / base:.2f})")


if __name__ == "__main__":
    main()
