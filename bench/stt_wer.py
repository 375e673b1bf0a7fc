"""Whisper on the French phone fixtures: word error rate and time per utterance.

Usage: .venv/bin/python bench/stt_wer.py [--beam 5] [--prompt TEXT|--no-prompt] [--fixtures DIR]
Prints per-file WER and the mean, and p50/p95 transcription time.
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
    a = p.parse_args()
    manifest = json.loads((a.fixtures / "manifest.json").read_text())
    eng = WhisperEngine(model_dir=require("whisper-base"), beam_size=a.beam, initial_prompt=a.prompt)
    eng.load()
    wers, times = [], []
    for item in manifest:
        with wave.open(str(a.fixtures / item["file"])) as w:
            pcm, rate = w.readframes(w.getnframes()), w.getframerate()
        res = eng.transcribe(pcm, rate)
        e = wer(item["text"], res.text)
        wers.append(e)
        times.append(res.elapsed_s)
        print(f"{e:5.2f} {res.elapsed_s:5.2f}s {item['file']:<32} {res.text}")
    times.sort()
    print(f"beam={a.beam} prompt={a.prompt!r}: mean WER {statistics.fmean(wers):.3f}, "
          f"time p50 {statistics.median(times):.2f}s p95 {times[int(0.95 * (len(times) - 1))]:.2f}s")


if __name__ == "__main__":
    main()
