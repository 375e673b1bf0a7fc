"""Redacting stored calls: the work behind ``twin transcripts redact``.

Runs :class:`transcripts.redaction.Redactor` over each call (all its turns together, so a
name said once is found everywhere), writes the spans through the store
(``apply_redaction``: typed, numbered placeholders, originals in ``tr_pii_mapping``) as
*proposed* for a reviewer to accept or reject, and moves a transcribed call to
``redacted``. An imported call whose labelled spans were already applied only gets what
the labels missed. A call is marked in its metadata (``pii_detector``) so ``--all`` does not
run it twice.

The practice's own staff, name, address and phone (its profile, plus the secretary of the
call, named by the last part of ``secretary_id``: ``sec-amelie`` -> "amelie") are not
redacted; the names in the agenda's patient list are looked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.profile import PracticeProfile
    from transcripts.redaction import RedactionContext, Redactor
    from transcripts.store import TranscriptStore
    from transcripts.types import CallView

__all__ = ["MARKER", "RedactReport", "context_for_call", "patient_names", "redact_calls",
           "redactable_call_ids"]

logger = logging.getLogger(__name__)

MARKER = "pii_detector"


@dataclass
class RedactReport:
    calls: int = 0
    turns: int = 0
    spans: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.spans.items())) or "none"
        return (f"redacted {self.calls} calls ({self.turns} turns): "
                f"{sum(self.spans.values())} spans ({kinds})")


async def patient_names(store: TranscriptStore) -> list[str]:
    """The agenda's patients ("first last"); none when the agenda has no tables yet."""
    from sqlalchemy import inspect, select

    from records.models import Patient

    async with store.session() as session:
        present = await session.run_sync(
            lambda s: inspect(s.connection()).has_table(Patient.__tablename__))
        if not present:
            logger.info("no patient list: the agenda has no tables in this database")
            return []
        rows = await session.execute(select(Patient.first_name, Patient.last_name))
        return [f"{first} {last}" for first, last in rows.all()]


def context_for_call(view: CallView, *, profile: PracticeProfile, patients: Sequence[str],
                     health: bool) -> RedactionContext:
    """The redaction context of one stored call."""
    from transcripts.redaction import RedactionContext

    staff = []
    if view.secretary_id:
        staff.append(view.secretary_id.replace("_", "-").split("-")[-1])
    return RedactionContext.from_profile(
        profile, staff_names=staff, patient_names=patients, health=health,
        language=view.language or "fr", ref_year=view.started_at.year)


async def redactable_call_ids(store: TranscriptStore) -> list[int]:
    """Transcribed calls, and imported calls (labels applied) not yet run through the
    detector."""
    from transcripts.types import CallFilter

    ids = await store.call_ids(CallFilter(statuses=("transcribed",)))
    for cid in await store.call_ids(CallFilter(statuses=("redacted",), sources=("import",))):
        view = await store.get_call(cid, can_see_pii=False)
        if view is not None and MARKER not in (view.metadata or {}):
            ids.append(cid)
    return sorted(set(ids))


async def redact_calls(store: TranscriptStore, redactor: Redactor, call_ids: Sequence[int], *,
                       profile: PracticeProfile, patients: Sequence[str] = (),
                       health: bool = False, actor: str = "cli:redact") -> RedactReport:
    """Detect and apply redactions on ``call_ids``; see the module docstring."""
    from transcripts.types import StaleEditError

    report = RedactReport()
    if not redactor.loaded:
        await asyncio.to_thread(redactor.load)
    for cid in call_ids:
        view = await store.get_call(cid, can_see_pii=False)
        if view is None:
            report.skipped.append(f"{cid}: no such call")
            continue
        if view.status == "new" or not view.turns:
            report.skipped.append(f"{cid}: not transcribed yet")
            continue
        ctx = context_for_call(view, profile=profile, patients=patients, health=health)
        texts = [t.text for t in view.turns]
        spans = await asyncio.to_thread(redactor.detect_call, texts, context=ctx,
                                        speakers=[t.speaker for t in view.turns])
        version = view.version
        new_ids: set[int] = set()
        try:
            for turn, proposals in zip(view.turns, spans, strict=True):
                if not proposals:
                    continue
                new_ids.update(await store.apply_redaction(turn.id, proposals, actor=actor,
                                                           expected_version=version))
                version += 1
            if view.status == "transcribed":
                version = await store.set_status(cid, "redacted", actor=actor,
                                                 expected_version=version)
            await store.update_call_info(cid, actor=actor, expected_version=version,
                                         metadata={MARKER: {"spans": len(new_ids),
                                                            "health": health}})
        except StaleEditError:
            report.skipped.append(f"{cid}: changed while being redacted; run it again")
            continue
        after = await store.get_call(cid, can_see_pii=False)
        added = Counter(s.type for t in (after.turns if after else []) for s in t.spans
                        if s.id in new_ids)
        report.calls += 1
        report.turns += len(texts)
        report.spans.update(added)
        logger.info("call %s redacted: %s spans", cid, len(new_ids))
    return report
