"""Transcription throughput: audio hours per wall-clock hour, locally and on a local Ray cluster.

Ingests the first ``--files`` stereo recordings of ../shared/corpus/audio/ into a throw-away
SQLite store and transcribes them as ``twin transcripts transcribe`` does, once per mode:

- ``inline``: one worker in the driver process, all cores as CTranslate2 threads;
- ``pool2``: two worker processes, cores / 2 threads each;
- ``ray``: a local Ray cluster (``ray.init(num_cpus=cores)``), two actors, cores / 2 threads.

The wall time includes loading the model(s) (and starting Ray), as an operator would see it. Audio time counts each call once (a stereo call of 100 s is
100 s of audio, though both channels are transcribed).

Usage: .venv/bin/python bench/transcripts_throughput.py [--files 4] [--beam 5]
       [--modes inline,pool2,ray]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


async def run_mode(mode: str, files: list[Path], beam: int, cores: int) -> dict[str, Any]:
    from transcripts.distributed import InlineBackend, ProcessPoolBackend, RayBackend
    from transcripts.ingest import ingest, transcribe_pending
    from transcripts.store import TranscriptStore
    from transcripts.transcribe import TranscribeConfig
    from twin.models import require

    model_dir = require("whisper-base")
    config = TranscribeConfig(beam_size=beam)
    backend: Any
    if mode == "inline":
        backend = InlineBackend(model_dir=model_dir, config=config, cpu_threads=cores)
    elif mode == "pool2":
        backend = ProcessPoolBackend(model_dir=model_dir, config=config, workers=2,
                                     cpu_threads=max(1, cores // 2))
    elif mode == "ray":
        backend = RayBackend(address="local", model_dir=model_dir, config=config, workers=2,
                             cpu_threads=max(1, cores // 2), num_cpus=cores)
    else:
        raise SystemExit(f"unknown mode {mode}")
    with tempfile.TemporaryDirectory() as tmp:
        store = TranscriptStore(url=f"sqlite+aiosqlite:///{tmp}/bench.db")
        await store.migrate()
        await ingest(store, files)
        first: list[float] = []
        started = time.monotonic()
        report = await transcribe_pending(store, backend, progress=False,
                                          on_result=lambda r: first.append(time.monotonic()))
        await store.dispose()
    wall = report.wall_s
    result = {"mode": mode, "calls": len(report.done), "failed": len(report.failed),
              "audio_s": round(report.audio_s, 1), "wall_s": round(wall, 1),
              "first_result_s": round((first[0] - started) if first else 0.0, 1),
              "audio_h_per_h": round(report.audio_s / wall, 2),
              "per_core_x": round(report.audio_s / wall / cores, 2),
              "load_avg_1m": round(os.getloadavg()[0], 2)}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--modes", default="inline,pool2,ray")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    manifest = json.loads((CORPUS / "audio" / "manifest.json").read_text())
    chosen = [e for e in manifest if e["channels"] == 2 and e["file"] != "P2-006.flac"][: a.files]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for e in chosen:
            dest = Path(tmp) / e["file"]
            shutil.copy(CORPUS / "audio" / e["file"], dest)
            files.append(dest)
        print(f"{len(files)} stereo calls, {sum(e['duration_s'] for e in chosen) / 60:.1f} min of "
              f"audio, {cores} cores, beam {a.beam}", flush=True)
        for mode in a.modes.split(","):
            row = asyncio.run(run_mode(mode, files, a.beam, cores))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\nmode    audio h / wall h   per core   wall    first call saved after")
    for r in rows:
        print(f"{r['mode']:<7} {r['audio_h_per_h']:>10.2f}     {r['per_core_x']:>8.2f}   "
              f"{r['wall_s']:>5.0f} s  {r['first_result_s']:>6.1f} s")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
