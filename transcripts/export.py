"""Export approved, redacted calls: the twin's training input.

:func:`iter_calls` yields calls in the corpus JSONL shape (what ``twin transcripts import``
reads, minus the personal data); :func:`write_jsonl` writes them one per line;
:func:`export_dataset` saves them as a Hugging Face ``datasets`` dataset
(``Dataset.save_to_disk``), one row per call with the secretary and the review on it and
the turns as a list (action ``args``/``result`` as JSON strings, so every row has the same
schema). Text comes out as stored: redacted, with typed placeholders ("[NOM_1]"); the
caller's number and the PII mapping are never exported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from transcripts.store import TranscriptStore
from transcripts.types import CallFilter, CallView

__all__ = ["DEFAULT_TIMEZONE", "dataset_features", "export_dataset", "iter_calls", "to_row",
           "write_jsonl"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Paris"


def _local_iso(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).isoformat()


def to_record(view: CallView, *, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """One stored call in the corpus shape (no caller number, no originals)."""
    review = None
    if view.review is not None:
        review = {"rating": view.review.rating, "reviewer": view.review.reviewer,
                  "flags": list(view.review.flags), "note": view.review.note}
    return {
        "call_id": view.external_id,
        "practice_id": view.practice_id,
        "started_at": _local_iso(view.started_at, tz),
        "secretary_id": view.secretary_id,
        "handled_by": view.handled_by,
        "source": view.source,
        "category": view.category,
        "outcome": view.outcome,
        "language": view.language,
        "turns": [{"speaker": t.speaker, "text": t.text, "actions": list(t.actions)}
                  for t in view.turns],
        "review": review,
    }


async def iter_calls(store: TranscriptStore, *, statuses: Sequence[str] = ("approved",),
                     tz: str = DEFAULT_TIMEZONE,
                     filters: CallFilter | None = None) -> AsyncIterator[dict[str, Any]]:
    """Calls in ``statuses`` (oldest first) in the corpus JSONL shape: ``call_id,
    started_at, secretary_id, category, outcome, language, turns [{speaker, text,
    actions}], review {rating, reviewer, flags, note} | None`` (plus ``practice_id``,
    ``handled_by``, ``source``). Calls whose caller objected, or with no turns, are skipped."""
    base = filters or CallFilter()
    query = CallFilter(**{**base.__dict__, "statuses": tuple(statuses), "objection": False})
    for call_id in await store.call_ids(query):
        view = await store.get_call(call_id, can_see_pii=False)
        if view is None or not view.turns:
            continue
        yield to_record(view, tz=tz)


async def write_jsonl(store: TranscriptStore, out: Path, *,
                      statuses: Sequence[str] = ("approved",), tz: str = DEFAULT_TIMEZONE) -> int:
    """Write :func:`iter_calls` to ``out``, one JSON object per line; returns the count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        async for record in iter_calls(store, statuses=statuses, tz=tz):
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(out)
    return count


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A corpus-shaped call as one dataset row (review flattened, actions as JSON)."""
    review = record.get("review") or {}
    return {
        "call_id": record["call_id"],
        "practice_id": record.get("practice_id") or "",
        "started_at": record["started_at"],
        "secretary_id": record.get("secretary_id"),
        "handled_by": record.get("handled_by") or "human",
        "source": record.get("source") or "",
        "category": record.get("category"),
        "outcome": record.get("outcome"),
        "language": record.get("language") or "fr",
        "review_rating": review.get("rating"),
        "review_reviewer": review.get("reviewer"),
        "review_flags": list(review.get("flags") or []),
        "review_note": review.get("note"),
        "turns": [{"speaker": t["speaker"], "text": t["text"],
                   "actions": [{"action": a.get("action", ""),
                                "args": json.dumps(a.get("args") or {}, ensure_ascii=False,
                                                   sort_keys=True),
                                "result": json.dumps(a.get("result") or {}, ensure_ascii=False,
                                                     sort_keys=True)}
                               for a in t.get("actions") or []]}
                  for t in record["turns"]],
    }


def dataset_features() -> Any:
    """The ``datasets.Features`` of an exported dataset (stable even when empty)."""
    from datasets import Features, Value

    s = Value("string")
    return Features({
        "call_id": s, "practice_id": s, "started_at": s, "secretary_id": s, "handled_by": s,
        "source": s, "category": s, "outcome": s, "language": s,
        "review_rating": Value("int32"), "review_reviewer": s, "review_flags": [s],
        "review_note": s,
        "turns": [{"speaker": s, "text": s, "actions": [{"action": s, "args": s, "result": s}]}],
    })


async def export_dataset(store: TranscriptStore, out: Path, *,
                         statuses: Sequence[str] = ("approved",),
                         tz: str = DEFAULT_TIMEZONE) -> int:
    """Save the calls as a Hugging Face dataset folder (``Dataset.save_to_disk``);
    returns the number of rows."""
    try:
        from datasets import Dataset
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("exporting a dataset needs the 'datasets' package: "
                           "pip install -e '.[transcripts]'") from exc
    import asyncio

    rows = [to_row(r) async for r in iter_calls(store, statuses=statuses, tz=tz)]

    def save() -> None:
        features = dataset_features()
        ds = (Dataset.from_list(rows, features=features) if rows
              else Dataset.from_dict({name: [] for name in features}, features=features))
        ds.save_to_disk(str(out), num_shards=1)  # one shard even when empty (loadable)

    await asyncio.to_thread(save)
    logger.info("exported %d calls to %s", len(rows), out)
    return len(rows)
