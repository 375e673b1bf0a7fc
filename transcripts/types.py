"""Plain dataclasses exchanged with the transcripts store (no SQLAlchemy objects leak out).

Inputs: :class:`NewCall` / :class:`NewTurn` (``TranscriptStore.add_call``),
:class:`PiiSpanProposal` (``apply_redaction``), :class:`CallFilter` / :class:`Page`
(``list_calls``). Outputs: :class:`CallView`, :class:`TurnView`, :class:`SpanView`,
:class:`CallSummary`, :class:`CallPage`, :class:`AuditEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "PLACEHOLDER_LABELS",
    "AuditEntry",
    "CallFilter",
    "CallNotFound",
    "CallPage",
    "CallSummary",
    "CallView",
    "DuplicateCallError",
    "NewCall",
    "NewTurn",
    "Page",
    "PiiSpanProposal",
    "Review",
    "SpanView",
    "StaleEditError",
    "StoreError",
    "TurnView",
]

# PII type (corpus vocabulary) -> placeholder label ("[NOM_1]")
PLACEHOLDER_LABELS: dict[str, str] = {
    "person": "NOM",
    "spelled_name": "NOM_EPELE",
    "birth_date": "DATE_NAISSANCE",
    "phone": "TELEPHONE",
    "nir": "NIR",
    "address": "ADRESSE",
    "email": "EMAIL",
    "health": "SANTE",
    "other_id": "IDENTIFIANT",
}


class StoreError(Exception):
    """Base class of the store's errors."""


class StaleEditError(StoreError):
    """The call changed since the version the edit was based on (optimistic concurrency)."""

    def __init__(self, *, call_id: int, expected: int, actual: int) -> None:
        super().__init__(f"call {call_id} is at version {actual}, the edit was based on {expected}")
        self.call_id = call_id
        self.expected = expected
        self.actual = actual


class CallNotFound(StoreError, LookupError):
    """No such call (or turn, or span)."""


class DuplicateCallError(StoreError):
    """A call with the same external id or the same audio already exists."""

    def __init__(self, message: str, *, existing_id: int) -> None:
        super().__init__(message)
        self.existing_id = existing_id


@dataclass(frozen=True)
class PiiSpanProposal:
    """A span of personal data, with char offsets into the turn's CURRENT text
    (as stored, i.e. not yet containing a placeholder at that place)."""

    start: int
    end: int
    type: str
    source: str = "rule"


@dataclass
class Review:
    rating: int | None = None
    reviewer: str | None = None
    flags: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class NewTurn:
    speaker: str
    text: str
    start_s: float | None = None
    end_s: float | None = None
    confidence: float | None = None
    words: list[dict[str, Any]] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class NewCall:
    external_id: str
    source: str
    started_at: datetime
    practice_id: str = ""
    duration_s: float | None = None
    language: str = "fr"
    secretary_id: str | None = None
    handled_by: str = "human"
    caller_number: str | None = None
    category: str | None = None
    outcome: str | None = None
    status: str = "new"
    review: Review | None = None
    comment: str | None = None
    audio_path: str | None = None
    audio_sha256: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str | None = None
    turns: list[NewTurn] = field(default_factory=list)


@dataclass
class SpanView:
    id: int
    type: str
    placeholder: str
    start: int
    end: int
    source: str
    status: str
    original: str | None = None  # only with can_see_pii


@dataclass
class TurnView:
    id: int
    idx: int
    speaker: str
    text: str  # as stored: redacted (placeholders) where spans are proposed/accepted
    start_s: float | None
    end_s: float | None
    confidence: float | None
    words: list[dict[str, Any]] | None
    actions: list[dict[str, Any]]
    spans: list[SpanView] = field(default_factory=list)
    original_text: str | None = None  # placeholders put back; only with can_see_pii


@dataclass
class CallSummary:
    id: int
    external_id: str
    source: str
    practice_id: str
    started_at: datetime
    duration_s: float | None
    language: str
    secretary_id: str | None
    handled_by: str
    category: str | None
    outcome: str | None
    status: str
    review_rating: int | None
    review_flags: list[str]
    reviewer: str | None
    objection: bool
    version: int
    updated_at: datetime
    turn_count: int = 0


@dataclass
class CallView:
    id: int
    external_id: str
    source: str
    practice_id: str
    started_at: datetime
    duration_s: float | None
    language: str
    secretary_id: str | None
    handled_by: str
    caller_number: str | None  # only with can_see_pii
    category: str | None
    outcome: str | None
    status: str
    review: Review | None
    second_reviewer: str | None
    comment: str | None
    audio_path: str | None
    audio_sha256: str | None
    channels: int | None
    sample_rate: int | None
    metadata: dict[str, Any]
    content_hash: str | None
    objection: bool
    audio_deleted_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    turns: list[TurnView] = field(default_factory=list)


@dataclass
class CallFilter:
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    secretary_id: str | None = None
    category: str | None = None
    outcome: str | None = None
    min_rating: int | None = None
    reviewed: bool | None = None  # True: has a rating; False: no rating yet
    flag: str | None = None  # calls whose review flags contain this flag
    started_from: datetime | None = None
    started_before: datetime | None = None
    objection: bool | None = None
    has_audio: bool | None = None  # True: an audio file is kept for the call


@dataclass
class Page:
    offset: int = 0
    limit: int = 50


@dataclass
class CallPage:
    items: list[CallSummary]
    total: int


@dataclass
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    call_id: int | None
    entity: str
    entity_id: str | None
    before: Any
    after: Any
