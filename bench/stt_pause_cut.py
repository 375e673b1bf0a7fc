"""Whisper on the speech up to the pause's onset instead of up to the VAD's stop.

Usage: .venv/bin/python -m bench.stt_pause_cut [--after 0,0.064] [--fixtures DIR]

The live pipeline transcribes a turn when Silero VAD calls the speech over, ``stop_secs``
(0.2 s) after its first quiet frame. Speculating at the pause's onset (``WhisperSTT``'s
``speculate_after_s``) decodes without that hangover tail. This bench runs the same Silero
VAD as the pipeline over each phone fixture (8 kHz, 1 s of silence appended), finds the
onset of the pause that ends the utterance, and transcribes the audio cut there (plus each
``--after`` delay) and cut at the VAD's stop, on one loaded Whisper with the demo practice's
prompt: mean WER of each cut and how many transcripts differ from the stop cut.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import wave
from pathlib import Path

from bench.stt_wer import wer

CHUNK_S = 0.02  # the AudioSocket frame


async def pause_and_stop(pcm: bytes, rate: int, stop_secs: float) -> tuple[int, int] | None:
    """Byte offsets of the final pause's onset and of the VAD's stop, or ``None``."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    vad = SileroVADAnalyzer(params=VADParams(stop_secs=stop_secs))
    vad.set_sample_rate(rate)
    step = int(rate * CHUNK_S) * 2
    onset = stop = None
    prev = VADState.QUIET
    for off in range(0, len(pcm) - step + 1, step):
        state = await vad.analyze_audio(pcm[off:off + step])
        end = off + step
        if prev == VADState.SPEAKING and state == VADState.STOPPING:
            onset = end
        elif prev == VADState.STOPPING and state == VADState.QUIET:
            stop = end
        prev = state
    await vad.cleanup()
    if onset is None or stop is None or onset > stop:
        return None
    return onset, stop


def main() -> None:
    from knowledge.profile import default_profile_path, load_profile
    from twin.models import require
    from twin.runtime import _initial_prompt
    from voice.stt import WhisperEngine

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fixtures", type=Path,
                   default=Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "calls")
    p.add_argument("--after", default="0,0.064",
                   help="comma-separated delays past the pause onset, seconds")
    p.add_argument("--stop-secs", type=float, default=0.2)
    p.add_argument("--beam", type=int, default=5)
    a = p.parse_args()
    afters = [float(x) for x in a.after.split(",") if x.strip()]
    manifest = json.loads((a.fixtures / "manifest.json").read_text())
    eng = WhisperEngine(model_dir=require("whisper-base"), beam_size=a.beam,
                        initial_prompt=_initial_prompt(load_profile(default_profile_path())))
    eng.load()
    pad = 0.5  # pipecat's trailing silence, which WhisperSTT keeps once at the end
    cuts = ["stop"] + [f"pause+{x:.3f}" for x in afters]
    wers: dict[str, list[float]] = {c: [] for c in cuts}
    differ = {c: 0 for c in cuts}
    saved: list[float] = []
    for item in manifest:
        with wave.open(str(a.fixtures / item["file"])) as w:
            pcm, rate = w.readframes(w.getnframes()), w.getframerate()
        pcm += bytes(rate * 2)  # 1 s of silence after the speech: the caller waits
        found = asyncio.run(pause_and_stop(pcm, rate, a.stop_secs))
        if found is None:
            print(f"skip {item['file']}: no pause found")
            continue
        onset, stop = found
        saved.append((stop - onset) / 2 / rate)
        silence = bytes(int(rate * pad) * 2)
        texts = {"stop": eng.transcribe(pcm[:stop] + silence, rate).text}
        for x, c in zip(afters, cuts[1:], strict=True):
            end = min(stop, onset + int(rate * x) * 2)
            texts[c] = eng.transcribe(pcm[:end] + silence, rate).text
        for c in cuts:
            wers[c].append(wer(item["text"], texts[c]))
            differ[c] += texts[c] != texts["stop"]
        print(f"{item['file']:<34} gap {(stop - onset) / 2 / rate:.2f}s  "
              + "  ".join(f"{c} {wers[c][-1]:.2f}" for c in cuts))
        for c in cuts[1:]:
            if texts[c] != texts["stop"]:
                print(f"    stop: {texts['stop']}\n    {c}: {texts[c]}")
    print(f"{len(saved)} fixtures, pause onset → VAD stop p50 {statistics.median(saved):.2f}s")
    for c in cuts:
        print(f"cut at {c:<12} mean WER {statistics.fmean(wers[c]):.3f}  "
              f"transcripts differing from the stop cut: {differ[c]}")


if __name__ == "__main__":
    main()
