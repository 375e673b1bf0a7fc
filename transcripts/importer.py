"""Import already-transcribed calls from JSONL (the corpus format, see docs/TRANSCRIPTS.md).

One JSON object per line: ``call_id, practice_id, started_at, secretary_id, caller_number,
category, outcome, language, turns: [{speaker, text, pii: [{type, text}], actions}],
review: {rating, reviewer, flags, note} | null``. The PII spans, given verbatim, are found
in their turn's text and applied as redaction (source "label", accepted). A call with a
review comes in as "reviewed" (``approve=True``: "approved"), one without as "redacted".

Idempotent: a call whose ``call_id`` is already stored with the same content hash is left
alone; one stored with different content is reported as a conflict (``update=True``
replaces it). A malformed line is reported with its line number; the rest goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from transcripts.models import PII_TYPES, SPEAKERS
from transcripts.store import TranscriptStore
from transcripts.textspans import locate_all
from transcripts.types import NewCall, NewTurn, PiiSpanProposal, Review, StoreError

__all__ = ["ImportReport", "LineError", "ParsedCall", "content_hash", "import_jsonl", "parse_call"]

logger = logging.getLogger(__name__)


@dataclass
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    lines: int = 0
    added: int = 0
    unchanged: int = 0
    updated: int = 0
    approved: int = 0
    conflicts: list[str] = field(default_factory=list)  # call ids stored with other content
    errors: list[LineError] = field(default_factory=list)
    spans: int = 0
    spans_not_found: list[str] = field(default_factory=list)  # "P1-001 turn 3 (person)"

    def summary(self) -> str:
        parts = [f"{self.lines} lines: {self.added} added, {self.unchanged} unchanged, "
                 f"{self.updated} updated, {self.approved} approved, "
                 f"{len(self.conflicts)} conflicts, {len(self.errors)} errors",
                 f"{self.spans} PII spans redacted, {len(self.spans_not_found)} not found in "
                 "their turn"]
        return "; ".join(parts)


@dataclass
class ParsedCall:
    call: NewCall
    redactions: dict[int, list[PiiSpanProposal]]
    not_found: list[str]
    approved_ok: bool  # has a review (may be approved with approve=True)


def content_hash(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Bad(ValueError):
    pass


def _str(record: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise _Bad(f"'{key}' is missing")
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{key}' must be a string")
    return value


def parse_call(record: Any, *, approve: bool = False, source_name: str = "") -> ParsedCall:
    """Validate one corpus record and turn it into a :class:`NewCall` plus the label
    redactions per turn index. Raises ``ValueError`` with a plain message."""
    if not isinstance(record, dict):
        raise _Bad("not a JSON object")
    call_id = _str(record, "call_id", required=True)
    assert call_id is not None
    started_raw = _str(record, "started_at", required=True)
    assert started_raw is not None
    try:
        started_at = datetime.fromisoformat(started_raw)
    except ValueError:
        raise _Bad(f"'started_at' is not an ISO date-time: {started_raw!r}") from None
    if started_at.tzinfo is None:
        raise _Bad("'started_at' has no UTC offset")
    turns_raw = record.get("turns")
    if not isinstance(turns_raw, list) or not turns_raw:
        raise _Bad("'turns' must be a non-empty list")
    turns: list[NewTurn] = []
    redactions: dict[int, list[PiiSpanProposal]] = {}
    not_found: list[str] = []
    for i, t in enumerate(turns_raw):
        if not isinstance(t, dict):
            raise _Bad(f"turn {i} is not an object")
        speaker, text = t.get("speaker"), t.get("text")
        if speaker not in SPEAKERS:
            raise _Bad(f"turn {i}: speaker must be one of {', '.join(SPEAKERS)}")
        if not isinstance(text, str):
            raise _Bad(f"turn {i}: 'text' must be a string")
        actions = t.get("actions") or []
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise _Bad(f"turn {i}: 'actions' must be a list of objects")
        pii = t.get("pii") or []
        if not isinstance(pii, list):
            raise _Bad(f"turn {i}: 'pii' must be a list")
        for p in pii:
            if not isinstance(p, dict) or p.get("type") not in PII_TYPES \
                    or not isinstance(p.get("text"), str):
                raise _Bad(f"turn {i}: each pii entry needs a known 'type' and a 'text'")
        where = locate_all(text, [p["text"] for p in pii])
        proposals = []
        for p, at in zip(pii, where, strict=True):
            if at is None:
                not_found.append(f"{call_id} turn {i} ({p['type']})")
                continue
            proposals.append(PiiSpanProposal(start=at[0], end=at[1], type=p["type"],
                                             source="label"))
        if proposals:
            redactions[i] = proposals
        turns.append(NewTurn(speaker=speaker, text=text, actions=actions))
    review_raw = record.get("review")
    review = None
    if review_raw is not None:
        if not isinstance(review_raw, dict):
            raise _Bad("'review' must be an object or null")
        rating = review_raw.get("rating")
        if rating is not None and (not isinstance(rating, int) or not 1 <= rating <= 5):
            raise _Bad("'review.rating' must be an integer from 1 to 5")
        flags = review_raw.get("flags") or []
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise _Bad("'review.flags' must be a list of strings")
        review = Review(rating=rating, reviewer=_str(review_raw, "reviewer"), flags=flags,
                        note=_str(review_raw, "note"))
    status = ("approved" if approve else "reviewed") if review else "redacted"
    metadata: dict[str, Any] = {"started_at_local": started_raw}
    if source_name:
        metadata["source_file"] = source_name
    call = NewCall(
        external_id=call_id, source="import", started_at=started_at,
        practice_id=_str(record, "practice_id") or "", language=_str(record, "language") or "fr",
        secretary_id=_str(record, "secretary_id"), handled_by="human",
        caller_number=_str(record, "caller_number"), category=_str(record, "category"),
        outcome=_str(record, "outcome"), status=status, review=review, metadata=metadata,
        content_hash=content_hash(record), turns=turns)
    return ParsedCall(call=call, redactions=redactions, not_found=not_found,
                      approved_ok=review is not None)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line


async def import_jsonl(store: TranscriptStore, path: Path, *, approve: bool = False,
                       update: bool = False, actor: str = "import") -> ImportReport:
    """Import every line of ``path`` into ``store``; see the module docstring."""
    report = ImportReport()
    for n, line in _lines(path):
        report.lines += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(LineError(n, f"not valid JSON ({exc.msg}, column {exc.colno})"))
            continue
        try:
            parsed = parse_call(record, approve=approve, source_name=path.name)
        except ValueError as exc:
            report.errors.append(LineError(n, str(exc)))
            continue
        call = parsed.call
        try:
            await _import_one(store, parsed, report, approve=approve, update=update, actor=actor)
        except (StoreError, ValueError) as exc:
            report.errors.append(LineError(n, f"call {call.external_id}: {exc}"))
    logger.info("import %s: %s", path.name, report.summary())
    return report


async def _import_one(store: TranscriptStore, parsed: ParsedCall, report: ImportReport, *,
                      approve: bool, update: bool, actor: str) -> None:
    call = parsed.call
    existing = await store.find_call_id(external_id=call.external_id)
    if existing is not None:
        stored = await store.get_call(existing, can_see_pii=False)
        if stored is not None and stored.content_hash == call.content_hash:
            report.unchanged += 1
            if approve and parsed.approved_ok and stored.status == "reviewed":
                await store.set_status(existing, "approved", actor=actor)
                report.approved += 1
            return
        if not update:
            report.conflicts.append(call.external_id)
            return
        await store.delete_call(existing, actor=actor, reason="re-import")
    await store.add_call(call, actor=actor, redactions=parsed.redactions, span_status="accepted")
    if existing is not None:
        report.updated += 1
    else:
        report.added += 1
    report.spans += sum(len(v) for v in parsed.redactions.values())
    report.spans_not_found.extend(parsed.not_found)
    if call.status == "approved":
        report.approved += 1
