"""Redaction operations of the transcripts store (mixed into ``TranscriptStore``).

A span's ``start``/``end`` are offsets in the stored turn text: of its placeholder while
the span is proposed or accepted, of the original once rejected (the original is put back
into the text). Every operation rewrites the text, moves the spans after the edit, writes
``tr_audit`` and bumps the call's version. Originals never go into the audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from transcripts.models import (
    PII_TYPES,
    SPAN_SOURCES,
    SPAN_STATUSES,
    SPEAKERS,
    TrCall,
    TrPiiMapping,
    TrPiiSpan,
    TrTurn,
)
from transcripts.textspans import Placeholders, pick_non_overlapping, rewrite, shift_for
from transcripts.types import CallNotFound, PiiSpanProposal

__all__ = ["UNSET", "SpanOpsMixin"]

_ACTIVE = ("proposed", "accepted")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class SpanOpsMixin:
    if TYPE_CHECKING:
        def write(self) -> AbstractAsyncContextManager[AsyncSession]: ...

        async def _lock_call(self, session: AsyncSession, call_id: int,
                             expected_version: int | None, *, bump: bool = True) -> TrCall: ...

        @staticmethod
        def _bump(call: TrCall) -> None: ...

        @staticmethod
        def _audit_row(session: AsyncSession, *, actor: str, action: str, call_id: int | None,
                       entity: str, entity_id: Any = None, before: Any = None,
                       after: Any = None) -> None: ...

    async def _lock_turn(self, session: AsyncSession, turn_id: int,
                         expected_version: int | None) -> tuple[TrCall, TrTurn]:
        """Lock the turn's call (version checked, not bumped), then read the turn with its
        spans and originals: what is read cannot change before the commit."""
        call_id = await session.scalar(select(TrTurn.call_id).where(TrTurn.id == turn_id))
        if call_id is None:
            raise CallNotFound(f"no turn {turn_id}")
        call = await self._lock_call(session, int(call_id), expected_version, bump=False)
        turn = await session.scalar(
            select(TrTurn).where(TrTurn.id == turn_id)
            .options(selectinload(TrTurn.spans).selectinload(TrPiiSpan.mapping))
            .execution_options(populate_existing=True))
        if turn is None:
            raise CallNotFound(f"no turn {turn_id}")
        return call, turn

    async def _placeholders(self, session: AsyncSession, call_id: int) -> Placeholders:
        rows = await session.execute(
            select(TrPiiSpan.placeholder, TrPiiMapping.original)
            .join(TrTurn, TrTurn.id == TrPiiSpan.turn_id)
            .outerjoin(TrPiiMapping, TrPiiMapping.span_id == TrPiiSpan.id)
            .where(TrTurn.call_id == call_id))
        return Placeholders(existing=[(p, o) for p, o in rows.all()])

    async def apply_redaction(self, turn_id: int, spans: Sequence[PiiSpanProposal], *,
                              actor: str, status: str = "proposed",
                              expected_version: int | None = None) -> list[int]:
        """Replace each proposed span of the turn's current text by its typed placeholder,
        and store the span and its original. Proposals that overlap each other (the longest
        wins), an existing span (or a rejected one: the reviewer decided) or are empty are
        skipped. Returns the ids of the new spans, in text order."""
        async with self.write() as session:
            call, turn = await self._lock_turn(session, turn_id, expected_version)
            ids = await self._redact(session, turn, spans, actor=actor, status=status)
            if ids:
                self._bump(call)
            return ids

    async def _redact(self, session: AsyncSession, turn: TrTurn,
                      spans: Sequence[PiiSpanProposal], *, actor: str,
                      status: str) -> list[int]:
        """Redact in an open transaction; the caller holds the call (and bumps it)."""
        if status not in SPAN_STATUSES:
            raise ValueError(f"status must be one of {SPAN_STATUSES}")
        for p in spans:
            if p.type not in PII_TYPES:
                raise ValueError(f"unknown PII type {p.type!r}")
            if p.source not in SPAN_SOURCES:
                raise ValueError(f"unknown span source {p.source!r}")
        text = turn.text
        cleaned: list[PiiSpanProposal] = []
        for p in spans:
            start, end = max(0, p.start), min(len(text), p.end)
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start < end:
                cleaned.append(PiiSpanProposal(start=start, end=end, type=p.type, source=p.source))
        kept = [cleaned[i] for i in pick_non_overlapping(
            [(p.start, p.end) for p in cleaned], taken=[(s.start, s.end) for s in turn.spans])]
        if not kept:
            return []
        numbering = await self._placeholders(session, turn.call_id)
        originals = [text[p.start:p.end] for p in kept]
        replacements = [(p.start, p.end, numbering.for_value(p.type, o))
                        for p, o in zip(kept, originals, strict=True)]
        new_text, positions = rewrite(text, replacements)
        for existing in turn.spans:
            existing.start = shift_for(existing.start, replacements)
            existing.end = shift_for(existing.end, replacements)
        turn.text = new_text
        rows = []
        for p, (s, e), (_a, _b, placeholder), original in zip(kept, positions, replacements,
                                                              originals, strict=True):
            row = TrPiiSpan(turn_id=turn.id, type=p.type, placeholder=placeholder, start=s,
                            end=e, source=p.source, status=status)
            row.mapping = TrPiiMapping(original=original)
            session.add(row)
            rows.append(row)
        await session.flush()
        self._audit_row(session, actor=actor, action="turn.redact", call_id=turn.call_id,
                        entity="turn", entity_id=turn.id,
                        after={"spans": [{"id": r.id, "type": r.type, "placeholder": r.placeholder,
                                          "source": r.source, "status": r.status} for r in rows]})
        return [r.id for r in rows]

    async def add_missed_span(self, turn_id: int, start: int, end: int, type: str, *,
                              actor: str, expected_version: int | None = None) -> int:
        """A reviewer marks personal data the detectors missed (offsets into the stored
        text); the span is accepted at once. Raises ``ValueError`` on an overlap."""
        if type not in PII_TYPES:
            raise ValueError(f"unknown PII type {type!r}")
        async with self.write() as session:
            call, turn = await self._lock_turn(session, turn_id, expected_version)
            if not 0 <= start < end <= len(turn.text):
                raise ValueError(f"span {start}:{end} is outside the turn ({len(turn.text)} chars)")
            ids = await self._redact(session, turn,
                                     [PiiSpanProposal(start=start, end=end, type=type,
                                                      source="reviewer")],
                                     actor=actor, status="accepted")
            if not ids:
                raise ValueError(f"span {start}:{end} overlaps a span already marked")
            self._bump(call)
            return ids[0]

    async def set_span_status(self, span_id: int, status: str, *, actor: str,
                              expected_version: int | None = None) -> int:
        """Accept, reject or re-propose a span; rejecting puts the original back into the
        text, accepting a rejected span puts the placeholder back. Returns the call's new
        version."""
        if status not in SPAN_STATUSES:
            raise ValueError(f"status must be one of {SPAN_STATUSES}")
        async with self.write() as session:
            turn_id = await session.scalar(select(TrPiiSpan.turn_id)
                                           .where(TrPiiSpan.id == span_id))
            if turn_id is None:
                raise CallNotFound(f"no span {span_id}")
            call, turn = await self._lock_turn(session, int(turn_id), expected_version)
            span = next((s for s in turn.spans if s.id == span_id), None)
            if span is None:  # deleted meanwhile
                raise CallNotFound(f"no span {span_id}")
            old = span.status
            if old == status:
                return call.version
            self._bump(call)
            was_active, now_active = old in _ACTIVE, status in _ACTIVE
            if was_active != now_active:
                original = span.mapping.original if span.mapping else None
                if original is None:
                    raise ValueError(f"span {span_id} has no original to put back")
                new = original if not now_active else span.placeholder
                replacement = [(span.start, span.end, new)]
                turn.text, ((s, e),) = rewrite(turn.text, replacement)
                for other in turn.spans:
                    if other.id != span.id:
                        other.start = shift_for(other.start, replacement)
                        other.end = shift_for(other.end, replacement)
                span.start, span.end = s, e
            span.status = status
            self._audit_row(session, actor=actor, action="span.status", call_id=turn.call_id,
                            entity="span", entity_id=span_id,
                            before={"status": old, "type": span.type,
                                    "placeholder": span.placeholder},
                            after={"status": status})
            return call.version

    async def update_turn(self, turn_id: int, *, actor: str, expected_version: int | None = None,
                          text: Any = UNSET, speaker: Any = UNSET, actions: Any = UNSET,
                          start_s: Any = UNSET, end_s: Any = UNSET) -> int:
        """Correct a turn (its text as stored, i.e. with placeholders; the speaker; the
        actions). Spans are found again in the new text in order (by placeholder, or by
        original for a rejected span); a span whose text was edited away is dropped.
        Returns the call's new version."""
        if speaker is not UNSET and speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}")
        async with self.write() as session:
            call, turn = await self._lock_turn(session, turn_id, expected_version)
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            for name, value in (("speaker", speaker), ("actions", actions), ("start_s", start_s),
                                ("end_s", end_s), ("text", text)):
                if value is UNSET or getattr(turn, name) == value:
                    continue
                before[name], after[name] = getattr(turn, name), value
                if name == "text":
                    dropped = await self._relocate_spans(session, turn, str(value))
                    if dropped:
                        after["dropped_spans"] = dropped
                setattr(turn, name, value)
            if not after:  # nothing changed
                return call.version
            self._bump(call)
            self._audit_row(session, actor=actor, action="turn.update", call_id=turn.call_id,
                            entity="turn", entity_id=turn_id, before=before, after=after)
            return call.version

    async def _relocate_spans(self, session: AsyncSession, turn: TrTurn, text: str) -> list[int]:
        cursor = 0
        dropped: list[int] = []
        for span in sorted(turn.spans, key=lambda s: s.start):
            needle = span.placeholder if span.status in _ACTIVE else (
                span.mapping.original if span.mapping else None)
            at = text.find(needle, cursor) if needle else -1
            if at == -1:
                dropped.append(span.id)
                await session.delete(span)
                continue
            span.start, span.end = at, at + len(needle or "")
            cursor = span.end
        return dropped
