"""Recorded and imported calls become transcripts: store, import, redaction, retention, export.

The store (:class:`TranscriptStore`) keeps calls, turns, PII spans with their reversible
mapping, and an audit of every change, in the agenda's database (own ``tr_`` tables and
Alembic tree). Importing this package loads no model and does no I/O.
"""

from transcripts.store import TranscriptStore
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
    StoreError,
    TurnView,
)

__all__ = [
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
    "TranscriptStore",
    "TurnView",
]
