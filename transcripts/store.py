"""The transcripts store: calls, turns, PII spans and their reversible mapping, audit.

``TranscriptStore(url=...)`` does no I/O; ``await store.migrate()`` brings the ``tr_``
tables to the newest revision of ``transcripts/migrations`` (version table
``transcripts_alembic_version``), in the same database as the agenda
(``records.db.default_url()``), SQLite or PostgreSQL.

Every change writes a ``tr_audit`` row (who, when, before, after) in the same transaction
and bumps ``tr_calls.version``; a change that carries ``expected_version`` for a call that
has moved on since raises :class:`StaleEditError` (optimistic concurrency for the review
app). Personal data: ``get_call(..., can_see_pii=False)`` never returns the caller's
number, the originals behind placeholders, or the un-redacted text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from records.db import Database
from transcripts.models import (
    CALL_SOURCES,
    CALL_STATUSES,
    HANDLED_BY,
    SPEAKERS,
    TrAudit,
    TrCall,
    TrPiiSpan,
    TrTurn,
    utcnow,
)
from transcripts.spanops import SpanOpsMixin
from transcripts.textspans import redact_actions, redact_free_text
from transcripts.types import (
    AuditEntry,
    CallFilter,
    CallNotFound,
    CallPage,
    CallSummary,
    CallView,
    DuplicateCallError,
    NewCall,
    NewTurn,
    Page,
    PiiSpanProposal,
    Review,
    SpanView,
    StaleEditError,
    TurnView,
)

__all__ = ["LABEL_FIELDS", "MIGRATIONS_DIR", "VERSION_TABLE", "TranscriptStore"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "transcripts_alembic_version"

# Fields set_labels may change (the review app's labels and the call's description).
LABEL_FIELDS = ("category", "outcome", "secretary_id", "language", "handled_by", "review_rating",
                "review_flags", "review_note", "reviewer", "second_reviewer", "comment")
# Fields update_call_info may change (ingestion and transcription).
INFO_FIELDS = ("duration_s", "channels", "sample_rate", "audio_path", "language", "started_at",
               "secretary_id")


class TranscriptStore(SpanOpsMixin):
    """Async access to the ``tr_`` tables."""

    def __init__(self, *, url: str, echo: bool = False) -> None:
        self.url = url
        self._db = Database(url=url, echo=echo)

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def safe_url(self) -> str:
        return self._db.safe_url

    # -- lifecycle -------------------------------------------------------------------------

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the store's tables to ``revision`` (Alembic, own version table)."""
        await self._alembic("upgrade", revision)

    async def downgrade(self, revision: str = "base") -> None:
        await self._alembic("downgrade", revision)

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self._db.engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(
                c, opts={"version_table": VERSION_TABLE}).get_current_revision())

    async def _alembic(self, direction: str, revision: str) -> None:
        from alembic import command

        cfg = alembic_config()

        def run(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            if direction == "upgrade":
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)

        async with self._db.engine.begin() as conn:
            await conn.run_sync(run)
        logger.info("transcripts store %s: %s to %s", self.safe_url, direction, revision)

    async def dispose(self) -> None:
        await self._db.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read session."""
        async with self._db.session() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits on success, rolls back on any error."""
        async with self._db.write() as session:
            yield session

    # -- helpers shared with the span operations ------------------------------------------

    async def _lock_call(self, session: AsyncSession, call_id: int,
                         expected_version: int | None, *, bump: bool = True) -> TrCall:
        """Load the call for a change (row lock on PostgreSQL, the write transaction on
        SQLite), check its version and, with ``bump``, mark it changed."""
        call = await session.get(TrCall, call_id, with_for_update=True, populate_existing=True)
        if call is None:
            raise CallNotFound(f"no call {call_id}")
        if expected_version is not None and call.version != expected_version:
            raise StaleEditError(call_id=call_id, expected=expected_version, actual=call.version)
        if bump:
            self._bump(call)
        return call

    @staticmethod
    def _bump(call: TrCall) -> None:
        call.version += 1
        call.updated_at = utcnow()

    @staticmethod
    def _audit_row(session: AsyncSession, *, actor: str, action: str, call_id: int | None,
                   entity: str, entity_id: Any = None, before: Any = None,
                   after: Any = None) -> None:
        session.add(TrAudit(at=utcnow(), actor=actor, action=action, call_id=call_id,
                            entity=entity, entity_id=None if entity_id is None else str(entity_id),
                            before=before, after=after))

    # -- calls ----------------------------------------------------------------------------

    async def add_call(self, call: NewCall, *, actor: str,
                       redactions: Mapping[int, Sequence[PiiSpanProposal]] | None = None,
                       span_status: str = "proposed") -> int:
        """Insert a call with its turns; returns its id. ``redactions`` (turn index → spans
        in that turn's text) are applied in the same transaction, as ``apply_redaction``
        would, and the personal data in the turns' actions (a name, a birth date, a phone
        number) and in the review note by the same placeholders (``textspans.redact_actions``).
        Raises :class:`DuplicateCallError` when the external id or the audio hash is
        already stored."""
        _check(call.source, CALL_SOURCES, "source")
        _check(call.status, CALL_STATUSES, "status")
        _check(call.handled_by, HANDLED_BY, "handled_by")
        for turn in call.turns:
            _check(turn.speaker, SPEAKERS, "speaker")
        existing = await self.find_call_id(external_id=call.external_id,
                                           audio_sha256=call.audio_sha256)
        if existing is not None:
            raise DuplicateCallError(f"call {call.external_id} is already stored",
                                     existing_id=existing)
        review = call.review or Review()
        row = TrCall(
            external_id=call.external_id, source=call.source, practice_id=call.practice_id,
            started_at=call.started_at, duration_s=call.duration_s, language=call.language,
            secretary_id=call.secretary_id, handled_by=call.handled_by,
            caller_number=call.caller_number, category=call.category, outcome=call.outcome,
            status=call.status, review_rating=review.rating, review_flags=list(review.flags),
            review_note=review.note, reviewer=review.reviewer, comment=call.comment,
            audio_path=call.audio_path, audio_sha256=call.audio_sha256, channels=call.channels,
            sample_rate=call.sample_rate, meta=dict(call.metadata), content_hash=call.content_hash,
            objection=False, version=1, created_at=utcnow(), updated_at=utcnow())
        row.turns = [_turn_row(i, t) for i, t in enumerate(call.turns)]
        try:
            async with self.write() as session:
                session.add(row)
                await session.flush()
                self._audit_row(session, actor=actor, action="call.add", call_id=row.id,
                                entity="call", entity_id=row.id,
                                after={"external_id": call.external_id, "source": call.source,
                                       "status": call.status, "turns": len(call.turns)})
                for idx, proposals in sorted((redactions or {}).items()):
                    await self._redact(session, row.turns[idx], proposals, actor=actor,
                                       status=span_status)
                if redactions:
                    known = (await self._placeholders(session, row.id)).known()
                    for stored in row.turns:
                        if stored.actions:
                            stored.actions = redact_actions(stored.actions, known)
                    for name in ("review_note", "comment"):
                        if getattr(row, name):
                            setattr(row, name, redact_free_text(getattr(row, name), known))
        except IntegrityError as exc:
            found = await self.find_call_id(external_id=call.external_id,
                                            audio_sha256=call.audio_sha256)
            if found is None:
                raise
            raise DuplicateCallError(f"call {call.external_id} is already stored",
                                     existing_id=found) from exc
        return row.id

    async def find_call_id(self, *, external_id: str | None = None,
                           audio_sha256: str | None = None) -> int | None:
        """The id of the call with this external id, or else with this audio hash."""
        async with self.session() as session:
            for column, value in ((TrCall.external_id, external_id),
                                  (TrCall.audio_sha256, audio_sha256)):
                if value is None:
                    continue
                found = await session.scalar(select(TrCall.id).where(column == value))
                if found is not None:
                    return int(found)
        return None

    async def get_call(self, call_id: int, *, can_see_pii: bool) -> CallView | None:
        """A call with its turns and spans; personal data only with ``can_see_pii``."""
        async with self.session() as session:
            options = selectinload(TrCall.turns).selectinload(TrTurn.spans)
            if can_see_pii:
                options = options.selectinload(TrPiiSpan.mapping)
            call = await session.scalar(select(TrCall).where(TrCall.id == call_id)
                                        .options(options))
            return None if call is None else _call_view(call, can_see_pii=can_see_pii)

    async def list_calls(self, filters: CallFilter | None = None,
                         page: Page | None = None) -> CallPage:
        """Calls matching ``filters``, newest first, one page at a time (no turns)."""
        filters = filters or CallFilter()
        page = page or Page()
        conditions = _conditions(filters)
        turn_count = (select(func.count(TrTurn.id)).where(TrTurn.call_id == TrCall.id)
                      .correlate(TrCall).scalar_subquery())
        async with self.session() as session:
            total = await session.scalar(select(func.count(TrCall.id)).where(*conditions))
            rows = (await session.execute(
                select(TrCall, turn_count).where(*conditions)
                .order_by(TrCall.started_at.desc(), TrCall.id.desc())
                .offset(page.offset).limit(page.limit))).all()
        return CallPage(items=[_summary(c, int(n or 0)) for c, n in rows], total=int(total or 0))

    async def call_ids(self, filters: CallFilter | None = None) -> list[int]:
        """Every id matching ``filters``, oldest first (for batch jobs and export)."""
        async with self.session() as session:
            result = await session.scalars(select(TrCall.id).where(*_conditions(filters or CallFilter()))
                                           .order_by(TrCall.started_at, TrCall.id))
            return [int(i) for i in result]

    async def set_status(self, call_id: int, status: str, *, actor: str,
                         expected_version: int | None = None) -> int:
        """Move a call to ``status``; returns the new version."""
        _check(status, CALL_STATUSES, "status")
        async with self.write() as session:
            call = await self._lock_call(session, call_id, expected_version, bump=False)
            before = call.status
            if before == status:
                return call.version
            self._bump(call)
            call.status = status
            self._audit_row(session, actor=actor, action="call.status", call_id=call_id,
                            entity="call", entity_id=call_id, before={"status": before},
                            after={"status": status})
            return call.version

    async def set_labels(self, call_id: int, *, actor: str, expected_version: int | None = None,
                         **labels: Any) -> int:
        """Change labels (``category``, ``outcome``, ``review_rating``, ``review_flags``, …,
        see :data:`LABEL_FIELDS`); returns the new version."""
        return await self._update_fields(call_id, labels, LABEL_FIELDS, "call.labels", actor,
                                         expected_version)

    async def update_call_info(self, call_id: int, *, actor: str,
                               expected_version: int | None = None,
                               metadata: dict[str, Any] | None = None, **info: Any) -> int:
        """Change recording facts (``duration_s``, ``channels``, ``audio_path``, …, see
        ``INFO_FIELDS``) and merge ``metadata`` into the call's metadata."""
        fields = dict(info)
        if metadata:
            fields["meta"] = metadata
        return await self._update_fields(call_id, fields, (*INFO_FIELDS, "meta"), "call.info",
                                         actor, expected_version)

    async def _update_fields(self, call_id: int, fields: dict[str, Any], allowed: Sequence[str],
                             action: str, actor: str, expected_version: int | None) -> int:
        unknown = sorted(set(fields) - set(allowed))
        if unknown:
            raise ValueError(f"cannot change {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        if "handled_by" in fields:
            _check(fields["handled_by"], HANDLED_BY, "handled_by")
        rating = fields.get("review_rating")
        if rating is not None and not 1 <= int(rating) <= 5:
            raise ValueError("review_rating must be between 1 and 5")
        async with self.write() as session:
            call = await self._lock_call(session, call_id, expected_version, bump=False)
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            for name, value in fields.items():
                if name == "meta":
                    value = {**(call.meta or {}), **value}
                elif name == "review_flags":
                    value = list(value or [])
                old = getattr(call, name)
                if old != value:
                    before[name] = _jsonable(old)
                    after[name] = _jsonable(value)
                    setattr(call, name, value)
            if not after:  # nothing changed
                return call.version
            self._bump(call)
            self._audit_row(session, actor=actor, action=action, call_id=call_id, entity="call",
                            entity_id=call_id, before=before, after=after)
            return call.version

    async def replace_turns(self, call_id: int, turns: Sequence[NewTurn], *, actor: str,
                            status: str | None = None,
                            expected_version: int | None = None) -> int:
        """Replace every turn of a call (a transcription, a re-transcription): spans and
        mappings of the old turns go with them. Returns the new version."""
        for turn in turns:
            _check(turn.speaker, SPEAKERS, "speaker")
        if status is not None:
            _check(status, CALL_STATUSES, "status")
        async with self.write() as session:
            call = await self._lock_call(session, call_id, expected_version)
            old = await session.scalar(select(func.count(TrTurn.id))
                                       .where(TrTurn.call_id == call_id))
            for row in await session.scalars(select(TrTurn).where(TrTurn.call_id == call_id)):
                await session.delete(row)
            await session.flush()
            for i, turn in enumerate(turns):
                row = _turn_row(i, turn)
                row.call_id = call_id
                session.add(row)
            before_status = call.status
            if status is not None:
                call.status = status
            self._audit_row(session, actor=actor, action="call.turns", call_id=call_id,
                            entity="call", entity_id=call_id,
                            before={"turns": int(old or 0), "status": before_status},
                            after={"turns": len(turns), "status": call.status})
            return call.version

    async def apply_objection(self, call_id: int, *, actor: str) -> None:
        """The caller objected to the recording: delete its audio file and its text (turns,
        spans, mapping, notes, caller number). The call row stays, flagged, with no content;
        the audit keeps that an objection happened."""
        async with self.write() as session:
            call = await self._lock_call(session, call_id, None)
            turns = list(await session.scalars(select(TrTurn).where(TrTurn.call_id == call_id)))
            had_audio = bool(call.audio_path)
            if call.audio_path:
                await asyncio.to_thread(_unlink, call.audio_path)
                call.audio_deleted_at = utcnow()
            for row in turns:
                await session.delete(row)
            call.audio_path = None
            call.caller_number = None
            call.review_note = None
            call.comment = None
            call.objection = True
            self._audit_row(session, actor=actor, action="call.objection", call_id=call_id,
                            entity="call", entity_id=call_id,
                            after={"audio_deleted": had_audio, "turns_deleted": len(turns)})

    async def delete_audio(self, call_id: int, *, actor: str, reason: str = "retention") -> bool:
        """Delete a call's audio file and forget its path; True if there was one."""
        async with self.write() as session:
            call = await self._lock_call(session, call_id, None, bump=False)
            if not call.audio_path:
                return False
            self._bump(call)
            await asyncio.to_thread(_unlink, call.audio_path)
            call.audio_path = None
            call.audio_deleted_at = utcnow()
            self._audit_row(session, actor=actor, action="call.audio_delete", call_id=call_id,
                            entity="call", entity_id=call_id, after={"reason": reason})
            return True

    async def delete_call(self, call_id: int, *, actor: str, reason: str = "retention") -> None:
        """Delete a call, its turns, spans, mapping and audio file; the audit stays."""
        async with self.write() as session:
            call = await self._lock_call(session, call_id, None)
            if call.audio_path:
                await asyncio.to_thread(_unlink, call.audio_path)
            for row in await session.scalars(select(TrTurn).where(TrTurn.call_id == call_id)):
                await session.delete(row)
            await session.delete(call)
            self._audit_row(session, actor=actor, action="call.delete", call_id=call_id,
                            entity="call", entity_id=call_id, after={"reason": reason})

    # -- audit ----------------------------------------------------------------------------

    async def audit(self, *, actor: str, action: str, entity: str, entity_id: Any = None,
                    call_id: int | None = None, before: Any = None, after: Any = None) -> None:
        """Record an event that is not a store change (a login, an export, a purge run)."""
        async with self.write() as session:
            self._audit_row(session, actor=actor, action=action, call_id=call_id, entity=entity,
                            entity_id=entity_id, before=before, after=after)

    async def list_audit(self, *, call_id: int | None = None, action: str | None = None,
                         limit: int = 200) -> list[AuditEntry]:
        """Audit rows, newest first."""
        query = select(TrAudit).order_by(TrAudit.id.desc()).limit(limit)
        if call_id is not None:
            query = query.where(TrAudit.call_id == call_id)
        if action is not None:
            query = query.where(TrAudit.action == action)
        async with self.session() as session:
            return [AuditEntry(id=a.id, at=a.at, actor=a.actor, action=a.action,
                               call_id=a.call_id, entity=a.entity, entity_id=a.entity_id,
                               before=a.before, after=a.after)
                    for a in await session.scalars(query)]


def alembic_config() -> Any:
    """An Alembic ``Config`` pointing at ``transcripts/migrations``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _jsonable(value: Any) -> Any:
    from datetime import datetime

    return value.isoformat() if isinstance(value, datetime) else value


def _turn_row(idx: int, turn: NewTurn) -> TrTurn:
    row = TrTurn(idx=idx, speaker=turn.speaker, text=turn.text, start_s=turn.start_s,
                 end_s=turn.end_s, confidence=turn.confidence,
                 words=list(turn.words) if turn.words is not None else None,
                 actions=list(turn.actions))
    row.spans = []
    return row


def _conditions(f: CallFilter) -> list[Any]:
    c: list[Any] = []
    if f.statuses:
        c.append(TrCall.status.in_(f.statuses))
    if f.sources:
        c.append(TrCall.source.in_(f.sources))
    if f.secretary_id is not None:
        c.append(TrCall.secretary_id == f.secretary_id)
    if f.category is not None:
        c.append(TrCall.category == f.category)
    if f.outcome is not None:
        c.append(TrCall.outcome == f.outcome)
    if f.min_rating is not None:
        c.append(TrCall.review_rating >= f.min_rating)
    if f.reviewed is True:
        c.append(TrCall.review_rating.is_not(None))
    elif f.reviewed is False:
        c.append(TrCall.review_rating.is_(None))
    if f.flag is not None:
        c.append(cast(TrCall.review_flags, String).like(f'%"{f.flag}"%'))
    if f.started_from is not None:
        c.append(TrCall.started_at >= f.started_from)
    if f.started_before is not None:
        c.append(TrCall.started_at < f.started_before)
    if f.objection is not None:
        c.append(TrCall.objection.is_(f.objection))
    if f.has_audio is True:
        c.append(TrCall.audio_path.is_not(None))
    elif f.has_audio is False:
        c.append(TrCall.audio_path.is_(None))
    return c


def _summary(c: TrCall, turns: int) -> CallSummary:
    return CallSummary(id=c.id, external_id=c.external_id, source=c.source,
                       practice_id=c.practice_id, started_at=c.started_at, duration_s=c.duration_s,
                       language=c.language, secretary_id=c.secretary_id, handled_by=c.handled_by,
                       category=c.category, outcome=c.outcome, status=c.status,
                       review_rating=c.review_rating, review_flags=list(c.review_flags or []),
                       reviewer=c.reviewer, objection=c.objection, version=c.version,
                       updated_at=c.updated_at, turn_count=turns)


def _call_view(c: TrCall, *, can_see_pii: bool) -> CallView:
    has_review = c.review_rating is not None or bool(c.reviewer) or bool(c.review_flags) \
        or bool(c.review_note)
    return CallView(
        id=c.id, external_id=c.external_id, source=c.source, practice_id=c.practice_id,
        started_at=c.started_at, duration_s=c.duration_s, language=c.language,
        secretary_id=c.secretary_id, handled_by=c.handled_by,
        caller_number=c.caller_number if can_see_pii else None, category=c.category,
        outcome=c.outcome, status=c.status,
        review=Review(rating=c.review_rating, reviewer=c.reviewer,
                      flags=list(c.review_flags or []), note=c.review_note) if has_review else None,
        second_reviewer=c.second_reviewer, comment=c.comment, audio_path=c.audio_path,
        audio_sha256=c.audio_sha256, channels=c.channels, sample_rate=c.sample_rate,
        metadata=dict(c.meta or {}), content_hash=c.content_hash, objection=c.objection,
        audio_deleted_at=c.audio_deleted_at, version=c.version, created_at=c.created_at,
        updated_at=c.updated_at, turns=[_turn_view(t, can_see_pii=can_see_pii) for t in c.turns])


def _turn_view(t: TrTurn, *, can_see_pii: bool) -> TurnView:
    spans = [SpanView(id=s.id, type=s.type, placeholder=s.placeholder, start=s.start, end=s.end,
                      source=s.source, status=s.status,
                      original=(s.mapping.original if can_see_pii and s.mapping else None))
             for s in sorted(t.spans, key=lambda s: s.start)]
    original_text = None
    if can_see_pii:
        original_text = t.text
        for s in sorted(spans, key=lambda s: -s.start):
            if s.status != "rejected" and s.original is not None:
                original_text = original_text[:s.start] + s.original + original_text[s.end:]
    return TurnView(id=t.id, idx=t.idx, speaker=t.speaker, text=t.text, start_s=t.start_s,
                    end_s=t.end_s, confidence=t.confidence, words=t.words,
                    actions=list(t.actions or []), spans=spans, original_text=original_text)

