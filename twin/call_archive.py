"""The assistant's own calls go into the transcripts store when they end.

:class:`CallArchive` turns a ``voice.call.CallReport`` into a stored call (source
"assistant", handled by the assistant, turns spoken by "assistant" and "patient", status
"transcribed" so that the redaction pass picks it up), with the handoff reason, the
outcome and the per-turn latency figures in its metadata, and the path of the call's
recording. ``observe(report)`` is the synchronous ``on_report`` callback of
``voice.call.build_call_handler``: it schedules the write and returns at once; ``drain()``
waits for the writes still running (at shutdown). A failure is logged (without the
call's content) and never reaches the call.

A caller who objected to the recording: the call is stored without audio and without
text, flagged, and the audit keeps that the objection happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["CallArchive", "open_call_archive", "report_fanout", "report_to_call"]

logger = logging.getLogger(__name__)

_SPEAKERS = {"patient": "patient", "assistant": "assistant"}
_LATENCY_KEYS = ("stt_s", "llm_first_token_s", "tts_first_audio_s", "voice_to_voice_s")


def report_to_call(report: Any, *, practice_id: str = "") -> Any:
    """A ``transcripts.NewCall`` from a ``voice.call.CallReport``."""
    from transcripts.types import NewCall, NewTurn

    summary = dict(report.summary or {})
    objected = bool(summary.get("recording_objected"))
    handoff = report.handoff
    metadata: dict[str, Any] = {
        "ended_by": report.ended_by,
        "handoff_reason": handoff.reason if handoff else None,
        "latency": [{k: t.get(k) for k in _LATENCY_KEYS} for t in report.turns or []],
        "tools": [str(a.get("tool")) for a in summary.get("actions") or []],
        "booked": list(report.booked or []),
        "safety": list(summary.get("safety") or []),
        "follow_up_needed": bool(summary.get("follow_up")),
    }
    turns = [] if objected else [
        NewTurn(speaker=_SPEAKERS.get(who, "unknown"), text=text)
        for who, text in report.transcript if text]
    ended = report.ended or report.started
    return NewCall(
        external_id=str(report.call_id), source="assistant", handled_by="assistant",
        started_at=datetime.fromtimestamp(report.started, UTC),
        duration_s=max(0.0, float(ended - report.started)), practice_id=practice_id,
        outcome=str(summary.get("outcome") or "") or None, status="transcribed",
        audio_path=None if objected else report.recording,
        channels=2 if report.recording and not objected else None,  # caller | assistant
        metadata=metadata, turns=turns)


class CallArchive:
    """Writes finished assistant calls into a ``transcripts.TranscriptStore``."""

    def __init__(self, *, store: Any, practice_id: str = "", actor: str = "assistant") -> None:
        self._store = store
        self._practice_id = practice_id
        self._actor = actor
        self._pending: set[asyncio.Task[int | None]] = set()
        self.stored = 0
        self.failed = 0

    def observe(self, report: Any) -> None:
        """``on_report`` callback: schedule the write (needs a running event loop)."""
        try:
            task = asyncio.get_running_loop().create_task(self.record(report),
                                                          name=f"archive-{report.call_id}")
        except Exception:
            self.failed += 1
            logger.exception("call archive: cannot schedule the write of a call")
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def record(self, report: Any) -> int | None:
        """Store one call; returns its id, or None if that failed (logged, never raised)."""
        try:
            call = report_to_call(report, practice_id=self._practice_id)
            call_id: int = await self._store.add_call(call, actor=self._actor)
            if report.summary and report.summary.get("recording_objected"):
                await self._store.apply_objection(call_id, actor=self._actor)
        except Exception as exc:
            self.failed += 1
            # no message text: it may quote the caller
            logger.error("call archive: storing an assistant call failed (%s)",
                         type(exc).__name__)
            logger.debug("call archive failure", exc_info=True)
            return None
        self.stored += 1
        return call_id

    async def drain(self) -> None:
        """Wait for the writes still running."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


@contextlib.asynccontextmanager
async def open_call_archive(*, url: str, practice_id: str = "") -> AsyncIterator[CallArchive | None]:
    """A :class:`CallArchive` on the transcripts store at ``url`` (migrated), or None
    when the store cannot be opened (logged: calls go on without it). On exit, waits for
    the writes still running and closes the store."""
    try:
        from transcripts.store import TranscriptStore

        store = TranscriptStore(url=url)
        await store.migrate()
    except Exception:
        logger.exception("call archive unavailable: the assistant's calls will not be stored "
                         "as transcripts")
        yield None
        return
    archive = CallArchive(store=store, practice_id=practice_id)
    try:
        yield archive
    finally:
        await archive.drain()
        await store.dispose()


def report_fanout(*callbacks: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """One ``on_report`` callback that calls each of ``callbacks`` (None skipped); one
    that raises is logged and does not stop the others."""
    active = [c for c in callbacks if c is not None]

    def fan(report: Any) -> None:
        for callback in active:
            try:
                callback(report)
            except Exception:
                logger.exception("an on_report callback failed")

    return fan
