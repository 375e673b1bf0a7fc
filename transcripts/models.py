"""SQLAlchemy data model of the transcripts store (tables prefixed ``tr_``).

The store lives in the same database as the agenda but has its own ``DeclarativeBase``
(own ``MetaData``) and its own Alembic tree (``transcripts/migrations``, version table
``transcripts_alembic_version``). The schema is created and changed only by those
migrations (``TranscriptStore.migrate()``); a test checks that they agree with this module.

Once a turn is redacted, ``TrTurn.text`` holds typed placeholders ("[NOM_1]"); the
originals live only in ``tr_pii_mapping``, which only roles allowed to see personal data
read (the store's ``can_see_pii`` flag).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from records.models import UTCDateTime

__all__ = [
    "CALL_SOURCES",
    "CALL_STATUSES",
    "HANDLED_BY",
    "PII_TYPES",
    "ROLES",
    "SPAN_SOURCES",
    "SPAN_STATUSES",
    "SPEAKERS",
    "Base",
    "TrAudit",
    "TrCall",
    "TrPiiMapping",
    "TrPiiSpan",
    "TrSession",
    "TrTurn",
    "TrUser",
    "utcnow",
]

CALL_SOURCES = ("import", "recording", "assistant")
CALL_STATUSES = ("new", "transcribed", "redacted", "reviewed", "approved")
HANDLED_BY = ("human", "assistant")
SPEAKERS = ("secretary", "patient", "assistant", "unknown")
PII_TYPES = ("person", "spelled_name", "birth_date", "phone", "nir", "address", "email",
             "health", "other_id")
SPAN_SOURCES = ("label", "rule", "ner", "patient_list", "reviewer")
SPAN_STATUSES = ("proposed", "accepted", "rejected")
ROLES = ("reviewer", "trainer", "admin")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class TrCall(Base):
    """One phone call: imported, ingested from a recording, or handled by the assistant."""

    __tablename__ = "tr_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # corpus call_id, "rec-<sha12>" for a recording, or the assistant's call id
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    practice_id: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    secretary_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    handled_by: Mapped[str] = mapped_column(String(16), default="human")
    caller_number: Mapped[str | None] = mapped_column(String(40), nullable=True)  # PII
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    review_rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    review_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    second_reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    audio_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    audio_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    channels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sample_rate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # "metadata" is reserved on declarative classes: the attribute is ``meta``.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # sha256 of the imported record (idempotent re-import)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    objection: Mapped[bool] = mapped_column(Boolean, default=False)
    audio_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    turns: Mapped[list[TrTurn]] = relationship(
        back_populates="call", cascade="all, delete-orphan", passive_deletes=True,
        order_by="TrTurn.idx")


class TrTurn(Base):
    __tablename__ = "tr_turns"
    __table_args__ = (UniqueConstraint("call_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("tr_calls.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    # once redacted: typed placeholders ("[NOM_1]"); the originals are in tr_pii_mapping
    text: Mapped[str] = mapped_column(Text, default="")
    start_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    call: Mapped[TrCall] = relationship(back_populates="turns")
    spans: Mapped[list[TrPiiSpan]] = relationship(
        back_populates="turn", cascade="all, delete-orphan", passive_deletes=True,
        order_by="TrPiiSpan.start")


class TrPiiSpan(Base):
    """A personal-data span of a turn. ``start``/``end`` are char offsets in the stored
    text: of the placeholder while the span is proposed or accepted, of the original
    (put back into the text) once rejected."""

    __tablename__ = "tr_pii_spans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("tr_turns.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    placeholder: Mapped[str] = mapped_column(String(64))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="proposed")

    turn: Mapped[TrTurn] = relationship(back_populates="spans")
    mapping: Mapped[TrPiiMapping | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, uselist=False)


class TrPiiMapping(Base):
    """The reversible mapping placeholder → original (read only with ``can_see_pii``)."""

    __tablename__ = "tr_pii_mapping"

    span_id: Mapped[int] = mapped_column(
        ForeignKey("tr_pii_spans.id", ondelete="CASCADE"), primary_key=True)
    original: Mapped[str] = mapped_column(Text)


class TrAudit(Base):
    """Every change to the store: who, when, what before, what after. Survives purges
    (no foreign key to the call)."""

    __tablename__ = "tr_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)


class TrUser(Base):
    __tablename__ = "tr_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrSession(Base):
    __tablename__ = "tr_sessions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # hash of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("tr_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
