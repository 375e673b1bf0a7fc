"""Transcription of recorded calls: WER per channel, speaker attribution on mono recordings.

Reads ../shared/corpus/audio/ (synthetic phone recordings; manifest.json has the turn timings)
and ../shared/corpus/calls.jsonl (the turn texts, the reference). For each stereo file the
call is transcribed like ``twin transcripts transcribe`` does (one channel per party), and
the words of each party are compared with that party's reference text (jiwer; lower-cased,
punctuation stripped, apostrophes and hyphens as word separators, Whisper's digits and a few
abbreviations written as French words). For the mono files (the corpus's two mono mixes,
plus ``--mix-stereo``: the two channels of each stereo file summed), every word Whisper
returns is attributed to a speaker by the diarization and compared with the speaker of the
reference turn it falls in (words in overlaps or outside every turn are not counted).

``--diarize-only`` skips Whisper: the diarizer's speech regions (cluster 0 = the first
region = the secretary) are scored per 10 ms of reference speech, on the two mono files and
the mono mixes of all the stereo files (about a second per call).

Usage: .venv/bin/python bench/transcripts_wer.py [--beam 5] [--limit N] [--mix-stereo]
       [--diarize-only] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

_UNITS = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
          "onze", "douze", "treize", "quatorze", "quinze", "seize"]
_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def french_number(n: int) -> str:
    """0 ≤ n < 1 000 000 in French words (hyphenated, 1990 spelling aside)."""
    if n <= 16:
        return _UNITS[n]
    if n < 20:
        return "dix-" + _UNITS[n - 10]
    if n < 70:
        tens, unit = divmod(n, 10)
        if unit == 0:
            return _TENS[tens]
        return f"{_TENS[tens]}{' et un' if unit == 1 else '-' + _UNITS[unit]}"
    if n < 80:
        return "soixante-" + ("et-onze" if n == 71 else french_number(n - 60))
    if n < 100:
        rest = n - 80
        return "quatre-vingts" if rest == 0 else "quatre-vingt-" + french_number(rest)
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = "cent" if hundreds == 1 else _UNITS[hundreds] + " cent" + ("s" if rest == 0 else "")
        return head if rest == 0 else f"{head} {french_number(rest)}"
    thousands, rest = divmod(n, 1000)
    head = "mille" if thousands == 1 else french_number(thousands) + " mille"
    return head if rest == 0 else f"{head} {french_number(rest)}"


def _digits(group: str) -> str:
    if len(group) >= 7:  # a phone number written in one block: digit by digit
        return " ".join(_UNITS[int(c)] for c in group)
    zero = "zéro " if len(group) > 1 and group.startswith("0") else ""
    return zero + french_number(int(group))


_ABBREV = [(re.compile(r"\bDr\.?\b"), "docteur"), (re.compile(r"\bMme\b\.?"), "madame"),
           (re.compile(r"\bMlle\b\.?"), "mademoiselle"), (re.compile(r"\bM\.(?=\s)"), "monsieur")]


def normalise(text: str) -> str:
    """Lower-case words only, numbers spelled out, for WER."""
    for pattern, word in _ABBREV:
        text = pattern.sub(word, text)
    text = re.sub(r"(\d{1,2})\s*h\s*(\d{2})",
                  lambda m: f"{french_number(int(m[1]))} heures {french_number(int(m[2]))}", text)
    text = re.sub(r"(\d{1,2})\s*h\b", lambda m: f"{french_number(int(m[1]))} heures", text)
    text = re.sub(r"\b1(er|re)\b", "premier", text)
    text = re.sub(r"(\d+)(e|ème)\b", lambda m: french_number(int(m[1])) + "ième", text)
    text = re.sub(r"\d[\d\s]*\d|\d",
                  lambda m: " " + " ".join(_digits(g) for g in m[0].split()) + " ", text)
    text = unicodedata.normalize("NFC", text.lower())
    text = re.sub(r"[’'\-]", " ", text)
    return " ".join(re.findall(r"[a-zàâäçéèêëîïôöûùüÿœæ]+", text))


def _wer(ref: str, hyp: str) -> tuple[float, int]:
    import jiwer

    r, h = normalise(ref), normalise(hyp)
    if not r:
        return (0.0 if not h else 1.0), 0
    return float(jiwer.wer(r, h or "∅")), len(r.split())


def _speaker_of(t: float, turns: list[dict[str, Any]]) -> str | None:
    inside = [x for x in turns if x["start_s"] <= t <= x["end_s"]]
    if len(inside) == 1:
        return str(inside[0]["speaker"])
    if inside:  # an overlap: not counted
        return None
    near = min(turns, key=lambda x: min(abs(x["start_s"] - t), abs(x["end_s"] - t)))
    gap = min(abs(near["start_s"] - t), abs(near["end_s"] - t))
    return str(near["speaker"]) if gap <= 0.5 else None


def diarize_only(manifest: list[dict[str, Any]]) -> None:
    from transcripts.audio import load_channels
    from transcripts.diarize import diarize

    scores: list[tuple[str, float]] = []
    for e in [m for m in manifest if m["channels"] == 1] + [m for m in manifest
                                                             if m["channels"] == 2]:
        chans = load_channels(CORPUS / "audio" / e["file"])
        audio = np.mean(np.vstack(chans), axis=0) if len(chans) > 1 else chans[0]
        frames = np.arange(0.0, len(audio) / 16000, 0.01)
        ref = np.full(len(frames), -1)
        for t in e["turns"]:
            inside = (frames >= t["start_s"]) & (frames < t["end_s"])
            ref[inside] = np.where(ref[inside] == -1, 0 if t["speaker"] == "secretary" else 1, 2)
        hyp = np.full(len(frames), -1)
        for seg in diarize(audio):
            hyp[(frames >= seg.start_s) & (frames < seg.end_s)] = seg.label
        scored = (ref >= 0) & (ref < 2) & (hyp >= 0)
        acc = float((ref[scored] == hyp[scored]).mean()) if scored.any() else 0.0
        coverage = scored.sum() / max(1, ((ref >= 0) & (ref < 2)).sum())
        scores.append((e["file"] + ("" if e["channels"] == 1 else " (mix)"), acc))
        print(f"{scores[-1][0]:<22} attribution {acc:.3f}  (speech covered by the VAD "
              f"{coverage:.2f})", flush=True)
    accs = [a for _, a in scores]
    print(f"\n{len(accs)} mono calls: mean {statistics.fmean(accs):.3f}, median "
          f"{statistics.median(accs):.3f}, >= 0.9 on {sum(a >= 0.9 for a in accs)}, "
          f"< 0.5 (roles swapped) on {sum(a < 0.5 for a in accs)}")


def main() -> None:
    from transcripts.audio import load_channels
    from transcripts.transcribe import CallTranscriber, TranscribeConfig
    from twin.models import require

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--limit", type=int, default=None,
                   help="first N stereo files only (0: the mono files only)")
    p.add_argument("--mix-stereo", action="store_true",
                   help="also diarize the mono mix of every stereo file")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--diarize-only", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()

    manifest = json.loads((CORPUS / "audio" / "manifest.json").read_text())
    if a.diarize_only:
        diarize_only(manifest)
        return
    calls = {c["call_id"]: c for c in map(json.loads, (CORPUS / "calls.jsonl").open())}
    config = TranscribeConfig(beam_size=a.beam, greeting_words=TranscribeConfig().greeting_words)
    tr = CallTranscriber(model_dir=require("whisper-base"), config=config, cpu_threads=a.threads)
    tr.load()

    stereo = [e for e in manifest if e["channels"] == 2][: a.limit]
    mono = [e for e in manifest if e["channels"] == 1]
    rows: list[dict[str, Any]] = []
    audio_s = wall_s = 0.0
    for e in stereo:
        call = calls[e["call_id"]]
        lang = call.get("language", "fr")
        tr.config = replace(config, language=lang, detect_language=False)
        chans = load_channels(CORPUS / "audio" / e["file"])
        started = time.monotonic()
        result = tr.transcribe_channels(chans)
        wall_s += time.monotonic() - started
        audio_s += result.duration_s
        row: dict[str, Any] = {"file": e["file"], "language": lang}
        for speaker in ("patient", "secretary"):
            ref = " ".join(call["turns"][t["index"]]["text"] for t in e["turns"]
                           if t["speaker"] == speaker)
            hyp = " ".join(t.text for t in result.turns if t.speaker == speaker)
            row[speaker], row[f"{speaker}_words"] = _wer(ref, hyp)
        rows.append(row)
        print(f"{e['file']:<16} {lang} WER patient {row['patient']:.3f} "
              f"secretary {row['secretary']:.3f}  ({result.elapsed_s:.1f} s)", flush=True)
        if a.mix_stereo:
            mono.append({**e, "file": e["file"], "mix": True})

    attribution: list[dict[str, Any]] = []
    for e in mono:
        chans = load_channels(CORPUS / "audio" / e["file"])
        audio = np.mean(np.vstack(chans), axis=0) if len(chans) > 1 else chans[0]
        tr.config = replace(config, language="fr")
        result = tr.transcribe_channels([audio])
        right = counted = 0
        for turn in result.turns:
            for w in turn.words:
                ref = _speaker_of((w["start"] + w["end"]) / 2, e["turns"])
                if ref is None:
                    continue
                counted += 1
                right += ref == turn.speaker
        call = calls[e["call_id"]]
        ref_text = " ".join(call["turns"][t["index"]]["text"] for t in e["turns"])
        mono_wer, _ = _wer(ref_text, " ".join(t.text for t in result.turns))
        acc = right / counted if counted else 0.0
        attribution.append({"file": e["file"], "mix": bool(e.get("mix")), "accuracy": acc,
                            "words": counted, "wer": mono_wer})
        print(f"{e['file']:<16} {'mix ' if e.get('mix') else 'mono'} speaker attribution "
              f"{acc:.3f} over {counted} words, WER {mono_wer:.3f}", flush=True)

    def mean(key: str, subset: list[dict[str, Any]]) -> float:
        return statistics.fmean(r[key] for r in subset) if subset else float("nan")

    fr = [r for r in rows if r["language"] == "fr"]
    print(f"\nstereo files: {len(rows)} ({len(fr)} French), beam {a.beam}")
    print(f"WER patient channel:   mean {mean('patient', rows):.3f} (French only {mean('patient', fr):.3f})")
    print(f"WER secretary channel: mean {mean('secretary', rows):.3f} (French only {mean('secretary', fr):.3f})")
    corpus_mono = [r for r in attribution if not r["mix"]]
    mixes = [r for r in attribution if r["mix"]]
    print(f"speaker attribution, corpus mono files: mean {mean('accuracy', corpus_mono):.3f} "
          f"(min {min((r['accuracy'] for r in corpus_mono), default=float('nan')):.3f}); "
          f"WER {mean('wer', corpus_mono):.3f}")
    if mixes:
        accs = [r["accuracy"] for r in mixes] or [0.0]
        print(f"speaker attribution, mono mixes of the stereo files: mean {statistics.fmean(accs):.3f}, "
              f"median {statistics.median(accs):.3f}, >= 0.9 on {sum(x >= 0.9 for x in accs)}/{len(accs)}")
    if wall_s:
        print(f"stereo transcription speed: {audio_s / wall_s:.1f}x real time "
              f"({audio_s / 60:.1f} min of calls in {wall_s:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps({"stereo": rows, "attribution": attribution}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
