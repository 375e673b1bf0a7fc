"""The demo store of ``twin review --demo`` (and the browser tests): four calls of the
fictional corpus with their audio (``demo/``: mono 8 kHz FLAC mixes of the synthetic
stereo recordings, per-turn timings from the corpus's audio manifest).

Loading goes through the real importer (``transcripts.importer.import_jsonl``: label
spans become accepted redactions); then each call gets its audio file and turn timings,
and the calls no one has reviewed yet get their spans back as *proposed* (as a detector
would leave them), so a newcomer can try accepting and rejecting them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from transcripts.models import TrAudit, TrCall, TrTurn, utcnow

__all__ = ["DEMO_DIR", "DEMO_JSONL", "copy_demo_audio", "load_demo"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_JSONL = DEMO_DIR / "calls.jsonl"


def copy_demo_audio(target: Path, *, demo_dir: Path = DEMO_DIR) -> Path:
    """Copy the demo recordings to ``target`` (purges and objections delete audio files:
    they must never point at the shipped copies)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(demo_dir.glob("*.flac")):
        shutil.copy2(path, target / path.name)
    return target


async def load_demo(store: Any, *, audio_dir: Path, jsonl: Path = DEMO_JSONL,
                    actor: str = "demo") -> list[int]:
    """Import the demo calls into ``store`` (migrated) with their audio from ``audio_dir``;
    returns the call ids. Idempotent: calls already there are left as they are."""
    from transcripts.importer import import_jsonl

    report = await import_jsonl(store, jsonl, actor=actor)
    if report.errors:
        raise ValueError(f"demo import failed: {'; '.join(map(str, report.errors))}")
    raw = await asyncio.to_thread(jsonl.read_text, encoding="utf-8")
    records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    ids = []
    async with store.write() as session:
        for record in records:
            call = await session.scalar(
                select(TrCall).where(TrCall.external_id == record["call_id"])
                .options(selectinload(TrCall.turns).selectinload(TrTurn.spans)))
            if call is None:
                continue
            ids.append(call.id)
            if call.audio_path:
                continue  # loaded before
            audio = record.get("audio") or {}
            if audio.get("file"):
                call.audio_path = str(audio_dir / audio["file"])
                call.duration_s = audio.get("duration_s")
                call.sample_rate = audio.get("sample_rate")
                call.channels = audio.get("channels")
            for turn, raw in zip(call.turns, record["turns"], strict=False):
                turn.start_s, turn.end_s = raw.get("start_s"), raw.get("end_s")
            proposed = 0
            if record.get("review") is None:
                for turn in call.turns:
                    for span in turn.spans:
                        span.status = "proposed"
                        proposed += 1
            call.version += 1
            call.updated_at = utcnow()
            session.add(TrAudit(at=utcnow(), actor=actor, action="demo.load", call_id=call.id,
                                entity="call", entity_id=str(call.id), before=None,
                                after={"audio": audio.get("file"), "spans_proposed": proposed}))
    return ids
