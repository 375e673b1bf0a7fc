"""Retention of call data: a policy per data kind, enforced by ``twin transcripts purge``.

Defaults follow the CNIL's guidance for recorded calls: the audio is kept 6 months, the
transcripts and their analyses (labels, reviews, redaction decisions) 1 year, counted from
the day of the call. A purge deletes the expired audio files (the call's text stays until
its own term) and the expired calls with everything attached to them; it leaves a
``tr_audit`` record with counts and cutoffs (no personal data). The policy comes from
``--audio-days`` / ``--transcripts-days`` or the ``retention:`` section of a YAML or TOML
file (``audio_days``, ``transcripts_days``).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from transcripts.store import TranscriptStore
from transcripts.types import CallFilter

__all__ = ["DEFAULT_AUDIO_DAYS", "DEFAULT_TRANSCRIPTS_DAYS", "PurgeReport", "RetentionError",
           "RetentionPolicy", "purge"]

logger = logging.getLogger(__name__)

DEFAULT_AUDIO_DAYS = 183  # 6 months
DEFAULT_TRANSCRIPTS_DAYS = 365  # 1 year


class RetentionError(ValueError):
    """An invalid retention policy."""


@dataclass
class RetentionPolicy:
    audio_days: int = DEFAULT_AUDIO_DAYS
    transcripts_days: int = DEFAULT_TRANSCRIPTS_DAYS

    def __post_init__(self) -> None:
        for name in ("audio_days", "transcripts_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RetentionError(f"retention.{name} must be a whole number of days >= 1, "
                                     f"not {value!r}")
        if self.audio_days > self.transcripts_days:
            # the audio cannot outlive its call row
            raise RetentionError("retention.audio_days cannot exceed retention.transcripts_days")

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None, *, where: str = "retention"
                     ) -> RetentionPolicy:
        data = dict(data or {})
        known = {"audio_days", "transcripts_days"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RetentionError(f"{where}: unknown key(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known))})")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> RetentionPolicy:
        """The ``retention:`` section of a YAML or TOML file (defaults when absent)."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RetentionError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise RetentionError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                                 f"{exc}") from exc
        if not isinstance(data, dict):
            raise RetentionError(f"{path}: the top level must be a mapping")
        section = data.get("retention")
        if section is not None and not isinstance(section, dict):
            raise RetentionError(f"{path}: 'retention' must be a mapping")
        return cls.from_mapping(section, where=f"{path}: retention")


@dataclass
class PurgeReport:
    now: datetime
    audio_cutoff: datetime
    transcripts_cutoff: datetime
    dry_run: bool
    audio_deleted: int = 0
    calls_deleted: int = 0
    failures: list[str] = field(default_factory=list)  # "call 12: <error>"

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} the audio of {self.audio_deleted} calls recorded before "
                f"{self.audio_cutoff:%Y-%m-%d} and {self.calls_deleted} calls (text, labels, "
                f"audio) from before {self.transcripts_cutoff:%Y-%m-%d}"
                + (f"; {len(self.failures)} failures" if self.failures else ""))


async def purge(store: TranscriptStore, policy: RetentionPolicy, *,
                now: datetime | None = None, dry_run: bool = False,
                actor: str = "retention") -> PurgeReport:
    """Delete what the policy says has expired at ``now``; see the module docstring."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = PurgeReport(now=now, audio_cutoff=now - timedelta(days=policy.audio_days),
                         transcripts_cutoff=now - timedelta(days=policy.transcripts_days),
                         dry_run=dry_run)
    expired_calls = await store.call_ids(CallFilter(started_before=report.transcripts_cutoff))
    old_audio = await store.call_ids(CallFilter(started_before=report.audio_cutoff,
                                                started_from=report.transcripts_cutoff,
                                                has_audio=True))
    for call_id in old_audio:
        if dry_run:
            report.audio_deleted += 1
            continue
        try:
            if await store.delete_audio(call_id, actor=actor, reason="retention"):
                report.audio_deleted += 1
        except Exception as exc:
            logger.exception("purge: deleting the audio of call %d failed", call_id)
            report.failures.append(f"call {call_id}: {type(exc).__name__}")
    for call_id in expired_calls:
        if dry_run:
            report.calls_deleted += 1
            continue
        try:
            await store.delete_call(call_id, actor=actor, reason="retention")
            report.calls_deleted += 1
        except Exception as exc:
            logger.exception("purge: deleting call %d failed", call_id)
            report.failures.append(f"call {call_id}: {type(exc).__name__}")
    if not dry_run:
        await store.audit(actor=actor, action="retention.purge", entity="retention",
                          after={"policy": asdict(policy), "now": now.isoformat(),
                                 "audio_cutoff": report.audio_cutoff.isoformat(),
                                 "transcripts_cutoff": report.transcripts_cutoff.isoformat(),
                                 "audio_deleted": report.audio_deleted,
                                 "calls_deleted": report.calls_deleted,
                                 "failures": len(report.failures)})
    logger.info("purge: %s", report.summary())
    return report
