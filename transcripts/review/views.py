"""What the pages show: a call and its turns cut into plain text and PII segments, audio
availability, local times, and the twin's contribution ledger for the dashboard."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from transcripts.review.vocab import ACTIONS, state_of
from transcripts.types import CallView, TurnView

__all__ = ["AUDIO_TYPES", "CallPageView", "Segment", "TurnPage", "audio_file", "call_page_view",
           "clock", "local_time", "read_contributions"]

logger = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Europe/Paris")
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg",
               ".ogg": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4"}


def local_time(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")


def clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    return f"{total // 60}:{total % 60:02d}"


@dataclass
class Segment:
    kind: str  # "text" | "pii" | "rejected"
    text: str
    offset: int
    span_id: int | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    original: str | None = None


@dataclass
class SpanItem:
    span_id: int
    placeholder: str
    type: str
    status: str
    source: str
    original: str | None


@dataclass
class ActionChip:
    index: int
    action: str
    args_label: str
    args_text: str


@dataclass
class TurnPage:
    id: int
    idx: int
    speaker: str
    text: str
    start_s: float | None
    end_s: float | None
    start_label: str
    confidence: float | None
    segments: list[Segment]
    spans: list[SpanItem]
    actions: list[ActionChip]


@dataclass
class CallPageView:
    id: int
    external_id: str
    started_local: str
    duration_label: str
    handled_by: str
    secretary_id: str | None
    category: str | None
    outcome: str | None
    language: str
    status: str
    state: str
    version: int
    rating: int | None
    flags: list[str]
    comment: str | None
    reviewer: str | None
    second_reviewer: str | None
    audio_url: str | None
    audio_problem: str | None
    pending_spans: int = 0
    turns: list[TurnPage] = field(default_factory=list)


def segments_of(turn: TurnView) -> list[Segment]:
    text = turn.text
    out: list[Segment] = []
    pos = 0
    for span in sorted(turn.spans, key=lambda s: s.start):
        if span.start < pos or span.end > len(text):
            continue  # inconsistent offsets: show the text plainly rather than fail
        if span.start > pos:
            out.append(Segment("text", text[pos:span.start], pos))
        kind = "rejected" if span.status == "rejected" else "pii"
        out.append(Segment(kind, text[span.start:span.end], span.start, span_id=span.id,
                           type=span.type, status=span.status, source=span.source,
                           original=span.original if kind == "pii" else None))
        pos = span.end
    if pos < len(text) or not out:
        out.append(Segment("text", text[pos:], pos))
    return out


def _args_label(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_plain(v)}" for k, v in args.items() if v not in (None, ""))


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _chips(actions: list[dict[str, Any]]) -> list[ActionChip]:
    chips = []
    for i, item in enumerate(actions):
        name = str(item.get("action", "?"))
        args = item.get("args") if isinstance(item.get("args"), dict) else {}
        assert isinstance(args, dict)
        chips.append(ActionChip(index=i, action=name, args_label=_args_label(args),
                                args_text="\n".join(f"{k} = {_plain(v)}" for k, v in args.items())))
    return chips


def audio_file(call: CallView, audio_root: Path | None) -> tuple[Path | None, str | None]:
    """The call's audio file if it can be played, else ``None`` and why (in French)."""
    if not call.audio_path:
        if call.objection:
            return None, "Enregistrement supprimé à la demande de l'appelant."
        if call.audio_deleted_at is not None:
            return None, (f"Enregistrement supprimé le {local_time(call.audio_deleted_at)} "
                          "(durée de conservation).")
        return None, "Pas d'enregistrement pour cet appel : la transcription seule est disponible."
    path = Path(call.audio_path)
    if not path.is_absolute() and audio_root is not None:
        path = audio_root / path
    if path.suffix.lower() not in AUDIO_TYPES:
        return None, f"Format audio non pris en charge ({path.suffix or 'sans extension'})."
    if not path.is_file():
        return None, ("Fichier audio introuvable : il a été déplacé ou supprimé. "
                      "La transcription reste consultable et modifiable.")
    return path, None


def call_page_view(call: CallView, *, audio_root: Path | None) -> CallPageView:
    path, problem = audio_file(call, audio_root)
    review = call.review
    turns = []
    for t in call.turns:
        spans = [SpanItem(span_id=s.id, placeholder=s.placeholder, type=s.type, status=s.status,
                          source=s.source, original=s.original) for s in t.spans]
        show_actions = t.speaker in ("secretary", "assistant")
        turns.append(TurnPage(
            id=t.id, idx=t.idx, speaker=t.speaker, text=t.text, start_s=t.start_s,
            end_s=t.end_s, start_label=clock(t.start_s), confidence=t.confidence,
            segments=segments_of(t), spans=spans,
            actions=_chips(t.actions) if show_actions else []))
    duration = f"durée {clock(call.duration_s)}" if call.duration_s else "durée inconnue"
    return CallPageView(
        id=call.id, external_id=call.external_id, started_local=local_time(call.started_at),
        duration_label=duration, handled_by=call.handled_by, secretary_id=call.secretary_id,
        category=call.category, outcome=call.outcome, language=call.language,
        status=call.status, state=state_of(call.status), version=call.version,
        rating=review.rating if review else None, flags=list(review.flags) if review else [],
        comment=call.comment, reviewer=review.reviewer if review else None,
        second_reviewer=call.second_reviewer,
        audio_url=f"/calls/{call.id}/audio" if path is not None else None,
        audio_problem=problem, turns=turns,
        pending_spans=sum(1 for t in call.turns for s in t.spans if s.status == "proposed"))


def action_vocab() -> dict[str, tuple[str, ...]]:
    return dict(ACTIONS)


LEDGER_NAMES = ("ledger.json", "contributions.json")


def read_contributions(model_dir: Path | None) -> tuple[str | None, dict[str, int]]:
    """The current twin's contribution ledger: ``(the model's name, examples per
    secretary)``, or ``(None, {})`` when no twin runs yet.

    ``model_dir`` is the twin's folder (``<data folder>/twin``): its ``registry.json``
    (written by ``twin deploy``) names the current model and its ``ledger`` file. Without a
    registry, the newest ledger found under the folder (one per released model) is used."""
    if model_dir is None or not model_dir.is_dir():
        return None, {}
    registry = model_dir / "registry.json"
    if registry.is_file():
        data = _load(registry)
        current = data.get("current") if isinstance(data, dict) else None
        if not isinstance(current, dict):
            return None, {}
        ledger_path = current.get("ledger")
        ledger = _load(Path(ledger_path)) if isinstance(ledger_path, str) else None
        return str(current.get("id") or "twin"), _counts(ledger)
    ledgers = [p for name in LEDGER_NAMES for p in model_dir.rglob(name) if p.is_file()]
    if not ledgers:
        return None, {}
    newest = max(ledgers, key=lambda p: p.stat().st_mtime)
    data = _load(newest)
    if not isinstance(data, dict):
        return None, {}
    label = next((str(data[k]) for k in ("model_id", "model", "name") if data.get(k)),
                 newest.parent.name)
    return label, _counts(data)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("unreadable twin file %s: %s", path, exc)
        return None


def _counts(data: Any) -> dict[str, int]:
    """Examples per secretary from a ledger (``contributions: {id: {examples: n}}``, as
    ``twin_training`` writes it; a plain number or a list of records also reads)."""
    counts: dict[str, int] = {}
    if not isinstance(data, dict):
        return counts
    value = data.get("contributions", data.get("per_secretary"))
    if isinstance(value, dict):
        for sec, n in value.items():
            if isinstance(n, dict):
                n = n.get("examples", 0)
            if isinstance(n, int | float) and not isinstance(n, bool):
                counts[str(sec)] = int(n)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item.get("secretary_id") is not None:
                n = item.get("examples", 0)
                counts[str(item["secretary_id"])] = int(n) if isinstance(n, int) else 0
    return counts
