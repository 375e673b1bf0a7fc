"""Queries and edits the review app needs beyond ``TranscriptStore``'s API: the call list
with every filter and a text search, splitting and merging turns, the dashboard figures
and the paged audit log. They use the store's models and its ``session()``/``write()``;
every edit bumps the call's version and writes ``tr_audit`` like the store does.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from transcripts.models import TrAudit, TrCall, TrTurn, utcnow
from transcripts.review.vocab import STATE_STATUSES, STATES, state_of
from transcripts.types import CallNotFound, StaleEditError

__all__ = ["CallRow", "Dashboard", "ListFilters", "SecretaryStats", "audit_page", "dashboard",
           "filter_options", "handoff_reason", "latencies_s", "list_calls", "merge_with_next",
           "split_turn"]

LOCAL_TZ = ZoneInfo("Europe/Paris")


@dataclass
class ListFilters:
    q: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    state: str | None = None
    category: str | None = None
    outcome: str | None = None
    secretary: str | None = None
    handled_by: str | None = None
    rating: str | None = None  # "1".."5" or "none"
    flag: str | None = None  # a flag, or "any"


@dataclass
class CallRow:
    id: int
    external_id: str
    started_at: datetime
    secretary_id: str | None
    handled_by: str
    category: str | None
    outcome: str | None
    rating: int | None
    flags: list[str]
    status: str
    state: str
    snippet: str | None = None


def _local_bound(day: date, *, end: bool) -> datetime:
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(0), LOCAL_TZ)
    return moment


def _conditions(f: ListFilters) -> list[Any]:
    c: list[Any] = []
    if f.date_from:
        c.append(TrCall.started_at >= _local_bound(f.date_from, end=False))
    if f.date_to:
        c.append(TrCall.started_at < _local_bound(f.date_to, end=True))
    if f.state in STATES:
        c.append(TrCall.status.in_(STATE_STATUSES[f.state]))
    if f.category:
        c.append(TrCall.category == f.category)
    if f.outcome:
        c.append(TrCall.outcome == f.outcome)
    if f.secretary:
        c.append(TrCall.secretary_id == f.secretary)
    if f.handled_by:
        c.append(TrCall.handled_by == f.handled_by)
    if f.rating == "none":
        c.append(TrCall.review_rating.is_(None))
    elif f.rating and f.rating.isdigit():
        c.append(TrCall.review_rating == int(f.rating))
    flags_text = cast(TrCall.review_flags, String)
    if f.flag == "any":
        c.append(flags_text.like('%"%'))
    elif f.flag:
        c.append(flags_text.like(f'%"{_like_escape(f.flag)}"%', escape="\\"))
    if f.q:
        pattern = f"%{_like_escape(f.q.strip().lower())}%"
        c.append(TrCall.id.in_(select(TrTurn.call_id).where(
            func.lower(TrTurn.text).like(pattern, escape="\\"))))
    return c


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_calls(store: Any, filters: ListFilters, *, offset: int,
                     limit: int) -> tuple[list[CallRow], int]:
    """One page of calls (newest first) and the number of calls matching ``filters``."""
    conditions = _conditions(filters)
    async with store.session() as session:
        total = await session.scalar(select(func.count(TrCall.id)).where(*conditions))
        calls = list(await session.scalars(
            select(TrCall).where(*conditions)
            .order_by(TrCall.started_at.desc(), TrCall.id.desc()).offset(offset).limit(limit)))
        snippets: dict[int, str] = {}
        if filters.q and calls:
            needle = filters.q.strip().lower()
            rows = await session.execute(
                select(TrTurn.call_id, TrTurn.text)
                .where(TrTurn.call_id.in_([c.id for c in calls]))
                .order_by(TrTurn.call_id, TrTurn.idx))
            for call_id, text in rows.all():
                if call_id not in snippets and needle in text.lower():
                    snippets[call_id] = _snippet(text, needle)
    return [CallRow(id=c.id, external_id=c.external_id, started_at=c.started_at,
                    secretary_id=c.secretary_id, handled_by=c.handled_by, category=c.category,
                    outcome=c.outcome, rating=c.review_rating,
                    flags=list(c.review_flags or []), status=c.status, state=state_of(c.status),
                    snippet=snippets.get(c.id)) for c in calls], int(total or 0)


def _snippet(text: str, needle: str, width: int = 60) -> str:
    at = text.lower().find(needle)
    start = max(0, at - width // 2)
    end = min(len(text), at + len(needle) + width // 2)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


async def filter_options(store: Any) -> dict[str, list[str]]:
    """The secretaries, categories and outcomes present in the store (for the filter menus)."""
    async with store.session() as session:
        out: dict[str, list[str]] = {}
        for key, column in (("secretaries", TrCall.secretary_id), ("categories", TrCall.category),
                            ("outcomes", TrCall.outcome)):
            values = await session.scalars(select(column).where(column.is_not(None)).distinct())
            out[key] = sorted(str(v) for v in values if v)
        return out


# -- turn structure edits -----------------------------------------------------------------

async def _lock(session: AsyncSession, call_id: int, expected_version: int | None) -> TrCall:
    call = await session.get(TrCall, call_id, with_for_update=True)
    if call is None:
        raise CallNotFound(f"no call {call_id}")
    if expected_version is not None and call.version != expected_version:
        raise StaleEditError(call_id=call_id, expected=expected_version, actual=call.version)
    call.version += 1
    call.updated_at = utcnow()
    return call


async def _turns(session: AsyncSession, call_id: int) -> list[TrTurn]:
    return list(await session.scalars(
        select(TrTurn).where(TrTurn.call_id == call_id).order_by(TrTurn.idx)
        .options(selectinload(TrTurn.spans))))


async def _shift_indexes(session: AsyncSession, call_id: int, after_idx: int, delta: int) -> None:
    """Move the turns after ``after_idx`` by ``delta`` without ever colliding on the unique
    (call_id, idx): through negative numbers first."""
    await session.execute(update(TrTurn).where(TrTurn.call_id == call_id, TrTurn.idx > after_idx)
                          .values(idx=-TrTurn.idx - 1).execution_options(synchronize_session=False))
    await session.execute(update(TrTurn).where(TrTurn.call_id == call_id, TrTurn.idx < 0)
                          .values(idx=-TrTurn.idx - 1 + delta)
                          .execution_options(synchronize_session=False))


def _audit(session: AsyncSession, *, actor: str, action: str, call_id: int, entity_id: int,
           before: Any, after: Any) -> None:
    session.add(TrAudit(at=utcnow(), actor=actor, action=action, call_id=call_id, entity="turn",
                        entity_id=str(entity_id), before=before, after=after))


async def split_turn(store: Any, call_id: int, turn_id: int, at: int, *, actor: str,
                     expected_version: int | None) -> int:
    """Cut a turn in two at char offset ``at`` of its stored text; the second part becomes a
    new turn right after it (same speaker; its start time estimated from the text length).
    Spans after the cut move with their text. Returns the call's new version."""
    async with store.write() as session:
        call = await _lock(session, call_id, expected_version)
        turns = await _turns(session, call_id)
        turn = next((t for t in turns if t.id == turn_id), None)
        if turn is None:
            raise CallNotFound(f"no turn {turn_id} in call {call_id}")
        text = turn.text
        left, right = text[:at].rstrip(), text[at:].lstrip()
        if not 0 < at < len(text) or not left or not right:
            raise ValueError("place the cursor inside the text, between two words")
        if any(s.start < at < s.end for s in turn.spans):
            raise ValueError("cannot cut inside a masked piece of personal data")
        right_start = len(text) - len(right)
        cut_s = None
        if turn.start_s is not None and turn.end_s is not None and turn.end_s > turn.start_s:
            cut_s = round(turn.start_s + (turn.end_s - turn.start_s) * right_start / len(text), 2)
        await _shift_indexes(session, call_id, turn.idx, +1)
        new = TrTurn(call_id=call_id, idx=turn.idx + 1, speaker=turn.speaker, text=right,
                     start_s=cut_s if cut_s is not None else turn.start_s, end_s=turn.end_s,
                     confidence=turn.confidence, words=None, actions=[], spans=[])
        session.add(new)
        await session.flush()
        for span in [s for s in turn.spans if s.start >= right_start]:
            turn.spans.remove(span)
            span.start -= right_start
            span.end -= right_start
            new.spans.append(span)
        before = {"text_chars": len(text), "end_s": turn.end_s}
        turn.text = left
        turn.words = None
        if cut_s is not None:
            turn.end_s = cut_s
        _audit(session, actor=actor, action="turn.split", call_id=call_id, entity_id=turn.id,
               before=before, after={"at": at, "new_turn": new.id, "new_idx": new.idx})
        return call.version


async def merge_with_next(store: Any, call_id: int, turn_id: int, *, actor: str,
                          expected_version: int | None) -> int:
    """Join a turn and the one after it (text, actions, spans, end time); the speaker of the
    first wins. Returns the call's new version."""
    async with store.write() as session:
        call = await _lock(session, call_id, expected_version)
        turns = await _turns(session, call_id)
        pos = next((i for i, t in enumerate(turns) if t.id == turn_id), None)
        if pos is None:
            raise CallNotFound(f"no turn {turn_id} in call {call_id}")
        if pos + 1 >= len(turns):
            raise ValueError("the last turn has no next turn to merge with")
        first, second = turns[pos], turns[pos + 1]
        shift = len(first.text) + 1
        for span in list(second.spans):
            second.spans.remove(span)
            span.start += shift
            span.end += shift
            first.spans.append(span)
        await session.flush()
        before = {"turns": [first.id, second.id], "speakers": [first.speaker, second.speaker]}
        first.text = f"{first.text} {second.text}"
        first.actions = [*(first.actions or []), *(second.actions or [])]
        first.end_s = second.end_s if second.end_s is not None else first.end_s
        first.words = (first.words or []) + (second.words or []) \
            if first.words is not None and second.words is not None else None
        if second.confidence is not None and first.confidence is not None:
            first.confidence = min(first.confidence, second.confidence)
        second_idx = second.idx
        await session.delete(second)
        await session.flush()
        await _shift_indexes(session, call_id, second_idx, -1)
        _audit(session, actor=actor, action="turn.merge", call_id=call_id, entity_id=first.id,
               before=before, after={"turn": first.id, "text_chars": len(first.text)})
        return call.version


# -- dashboard ----------------------------------------------------------------------------

@dataclass
class SecretaryStats:
    secretary_id: str
    calls: int = 0
    reviewed: int = 0
    ratings: list[int] = field(default_factory=list)
    contributed: int = 0

    @property
    def mean_rating(self) -> float | None:
        return round(statistics.fmean(self.ratings), 2) if self.ratings else None


@dataclass
class Dashboard:
    total_calls: int
    per_day: list[tuple[str, int]]
    assistant_calls: int
    assistant_end_to_end: int
    handoffs: list[tuple[str, int]]
    latency_samples: int
    median_latency_s: float | None
    progress: list[tuple[str, int]]
    secretaries: list[SecretaryStats]
    twin_label: str | None = None

    @property
    def assistant_share(self) -> float | None:
        return self.assistant_end_to_end / self.total_calls if self.total_calls else None


def handoff_reason(meta: dict[str, Any], outcome: str | None) -> str | None:
    """The reason an assistant call went to a human, if it did."""
    handoff = meta.get("handoff")
    if isinstance(handoff, dict) and handoff.get("reason"):
        return str(handoff["reason"])
    if meta.get("handoff_reason"):
        return str(meta["handoff_reason"])
    if handoff or outcome in ("transferred", "handoff"):
        return "sans motif"
    return None


def latencies_s(meta: dict[str, Any]) -> list[float]:
    """Voice-to-voice latencies (seconds) recorded in a call's metadata, in any of the
    shapes the assistant writes: ``voice_to_voice_s`` / ``_ms`` (a number or a list),
    possibly under ``latency``, or per turn under ``turns``/``latencies``."""
    found: list[float] = []

    def take(container: Any) -> None:
        if not isinstance(container, dict):
            return
        for key, scale in (("voice_to_voice_s", 1.0), ("voice_to_voice_ms", 0.001)):
            value = container.get(key)
            values = value if isinstance(value, list) else [value]
            found.extend(float(v) * scale for v in values
                         if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0)

    take(meta)
    for key in ("latency", "latencies", "turns", "timings"):
        sub = meta.get(key)
        if isinstance(sub, dict):
            take(sub)
        elif isinstance(sub, list):
            for item in sub:
                take(item)
    return found


async def dashboard(store: Any, *, contributions: dict[str, int] | None = None,
                    twin_label: str | None = None, days: int = 60) -> Dashboard:
    """The dashboard figures over every call in the store."""
    async with store.session() as session:
        rows = (await session.execute(select(
            TrCall.started_at, TrCall.status, TrCall.handled_by, TrCall.secretary_id,
            TrCall.review_rating, TrCall.outcome, TrCall.meta))).all()
    per_day: Counter[str] = Counter()
    progress: Counter[str] = Counter()
    handoffs: Counter[str] = Counter()
    latencies: list[float] = []
    assistant = end_to_end = 0
    secretaries: dict[str, SecretaryStats] = defaultdict(lambda: SecretaryStats(""))
    for started_at, status, handled_by, secretary_id, rating, outcome, meta in rows:
        meta = meta if isinstance(meta, dict) else {}
        per_day[started_at.astimezone(LOCAL_TZ).date().isoformat()] += 1
        progress[state_of(status)] += 1
        if handled_by == "assistant":
            assistant += 1
            reason = handoff_reason(meta, outcome)
            if reason is None:
                end_to_end += 1
            else:
                handoffs[reason] += 1
            latencies.extend(latencies_s(meta))
        elif secretary_id:
            stats = secretaries[secretary_id]
            stats.secretary_id = secretary_id
            stats.calls += 1
            if status in ("reviewed", "approved"):
                stats.reviewed += 1
            if rating is not None:
                stats.ratings.append(int(rating))
    for secretary_id, n in (contributions or {}).items():
        stats = secretaries[secretary_id]
        stats.secretary_id = secretary_id
        stats.contributed = n
    recent = sorted(per_day.items())[-days:]
    return Dashboard(
        total_calls=len(rows), per_day=recent, assistant_calls=assistant,
        assistant_end_to_end=end_to_end, handoffs=handoffs.most_common(),
        latency_samples=len(latencies),
        median_latency_s=statistics.median(latencies) if latencies else None,
        progress=[(s, progress.get(s, 0)) for s in STATES],
        secretaries=sorted(secretaries.values(), key=lambda s: s.secretary_id),
        twin_label=twin_label)


# -- audit --------------------------------------------------------------------------------

async def audit_page(store: Any, *, page: int, size: int = 50,
                     call_id: int | None = None) -> tuple[Sequence[TrAudit], bool]:
    """A page of the audit log, newest first, and whether there is an older page."""
    query = select(TrAudit).order_by(TrAudit.id.desc()).offset((page - 1) * size).limit(size + 1)
    if call_id is not None:
        query = query.where(TrAudit.call_id == call_id)
    async with store.session() as session:
        rows = list(await session.scalars(query))
    return rows[:size], len(rows) > size
