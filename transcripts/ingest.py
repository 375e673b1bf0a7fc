"""Recordings into the transcripts store, and the store's pending recordings into transcripts.

``ingest``: every WAV/FLAC/MP3 file given (folders recursively) is hashed (sha256 of its
bytes: the same recording is never stored twice, whatever its name), decoded once to check
it (a corrupt, empty or unsupported file is rejected with its reason and the batch goes
on), and stored as a call with status ``new``, source ``recording``, external id
``rec-<sha12>``, its duration, channels, sample rate, source path, start time (from a
sidecar, else the file name, else the file's modification time) and secretary (sidecar or
``--secretary``). A sidecar is ``<file>.json`` or ``<stem>.json`` next to the recording:
``{"started_at", "secretary_id", "practice_id", "caller_number", "language", "call_id",
"channel_roles": ["patient", "secretary"], "category", "outcome"}`` (all optional).

``transcribe_pending``: every ``new`` recording is transcribed by a backend
(:mod:`transcripts.distributed`) and its turns written in one transaction that also sets
the status to ``transcribed``; a run that is interrupted leaves the other calls ``new``
and the next run picks them up (a call's old turns, if any, are replaced).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from transcripts.audio import AUDIO_EXTENSIONS, AudioError, AudioInfo, file_sha256, probe

__all__ = [
    "IngestReport",
    "RecordingMeta",
    "Rejected",
    "TranscribeReport",
    "discover",
    "ingest",
    "pending_jobs",
    "recording_meta",
    "save_transcript",
    "started_at_from_name",
    "transcribe_pending",
]

logger = logging.getLogger(__name__)

#: Left, right channel of a stereo recording by default (the corpus's MixMonitor convention).
SPEAKER_ROLES = ("patient", "secretary")


@dataclass(frozen=True)
class Rejected:
    path: Path
    reason: str


@dataclass
class IngestReport:
    added: list[tuple[Path, int]] = field(default_factory=list)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    audio_s: float = 0.0

    @property
    def failed_all(self) -> bool:
        """Nothing usable: every file was rejected (or none was found)."""
        return not self.added and not self.duplicates


@dataclass
class RecordingMeta:
    """What is known about a recording before it is transcribed."""

    path: Path
    sha256: str
    info: AudioInfo
    started_at: datetime
    started_at_source: str
    secretary_id: str | None = None
    practice_id: str = ""
    caller_number: str | None = None
    language: str = "fr"
    channel_roles: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def external_id(self) -> str:
        return f"rec-{self.sha256[:12]}"


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Rejected]]:
    """Audio files under ``paths`` (sorted, each once). A file named explicitly that is not
    WAV/FLAC/MP3 is rejected; in folders, other files (sidecars, notes) are ignored."""
    found: dict[Path, None] = {}
    rejected: list[Rejected] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
                    found.setdefault(p, None)
        elif path.is_file():
            if path.suffix.lower() in AUDIO_EXTENSIONS:
                found.setdefault(path, None)
            else:
                rejected.append(Rejected(path, f"unsupported file type '{path.suffix or path.name}' "
                                               f"(expected {', '.join(AUDIO_EXTENSIONS)})"))
        else:
            rejected.append(Rejected(path, "no such file or folder"))
    return list(found), rejected


_NAME_PATTERNS = (
    # 2026-10-05T08:34:00, 2026-10-05_08-34-00, 2026-10-05 08h34
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T_ -](\d{2})[:h_-]?(\d{2})(?:[:m_-]?(\d{2}))?"),
    # 20261005-083400, 20261005_0834, 20261005083400
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[-_T]?(\d{2})(\d{2})(\d{2})?(?!\d)"),
)
_EPOCH = re.compile(r"(?<!\d)(1[5-9]\d{8})(?:\.\d+)?(?!\d)")  # Asterisk ${UNIQUEID}


def started_at_from_name(name: str, *, tz: tzinfo | None = None) -> datetime | None:
    """The call's start from a recording's file name, if it carries one.

    Date-time stamps are local time (``tz``, default the machine's time zone); an Asterisk
    ``${UNIQUEID}`` (``1759646040.123``) is a Unix time.
    """
    for pattern in _NAME_PATTERNS:
        m = pattern.search(name)
        if m:
            year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
            second = int(m.group(6) or 0)
            try:
                naive = datetime(year, month, day, hour, minute, second)
            except ValueError:
                continue
            return (naive.replace(tzinfo=tz) if tz else naive.astimezone()).astimezone(UTC)
    m = _EPOCH.search(name)
    if m:
        return datetime.fromtimestamp(int(m.group(1)), UTC)
    return None


def _sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AudioError(f"unreadable sidecar {candidate.name}: {exc}") from exc
            if not isinstance(data, dict):
                raise AudioError(f"sidecar {candidate.name} is not a JSON object")
            return data
    return {}


def _parse_when(value: Any, tz: tzinfo | None) -> datetime:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise AudioError(f"sidecar started_at '{value}' is not an ISO date-time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz) if tz else when.astimezone()
    return when.astimezone(UTC)


def recording_meta(path: Path, *, sha256: str | None = None, secretary_id: str | None = None,
                   practice_id: str = "", channel_roles: Sequence[str] = (),
                   tz: tzinfo | None = None) -> RecordingMeta:
    """Check one recording (decodes it) and gather its metadata. Raises :class:`AudioError`."""
    info = probe(path)
    side = _sidecar(path)
    if side.get("started_at"):
        started, source = _parse_when(side["started_at"], tz), "sidecar"
    elif (from_name := started_at_from_name(path.name, tz=tz)) is not None:
        started, source = from_name, "file name"
    else:
        started, source = datetime.fromtimestamp(path.stat().st_mtime, UTC), "file mtime"
    roles = tuple(side.get("channel_roles") or channel_roles)
    if roles and (len(roles) != 2 or any(r not in SPEAKER_ROLES for r in roles)):
        raise AudioError(f"channel roles {list(roles)}: expected two of {SPEAKER_ROLES}")
    extra = {k: side[k] for k in ("call_id", "category", "outcome") if side.get(k)}
    return RecordingMeta(
        path=path, sha256=sha256 or file_sha256(path), info=info, started_at=started,
        started_at_source=source, secretary_id=side.get("secretary_id") or secretary_id,
        practice_id=str(side.get("practice_id") or practice_id),
        caller_number=side.get("caller_number"), language=str(side.get("language") or "fr"),
        channel_roles=roles if info.channels == 2 else (), extra=extra)


ProgressCallback = Callable[[Path, str], None]


async def ingest(store: Any, paths: Iterable[Path], *, actor: str = "ingest",
                 secretary_id: str | None = None, practice_id: str = "",
                 channel_roles: Sequence[str] = SPEAKER_ROLES, tz: tzinfo | None = None,
                 on_file: ProgressCallback | None = None) -> IngestReport:
    """Store every usable recording under ``paths`` as a ``new`` call (see the module doc).

    ``channel_roles``: the speaker of the left and right channel of stereo recordings
    (default: left = the caller, right = the secretary), unless a sidecar says otherwise.
    """
    import asyncio

    from transcripts.types import DuplicateCallError, NewCall

    files, rejected = discover(paths)
    report = IngestReport(rejected=list(rejected))
    for path in files:
        try:
            sha = await asyncio.to_thread(file_sha256, path)
        except OSError as exc:
            report.rejected.append(Rejected(path, f"unreadable: {exc.strerror or exc}"))
            continue
        existing = await store.find_call_id(audio_sha256=sha)
        if existing is not None:
            report.duplicates.append((path, existing))
            _tell(on_file, path, f"duplicate of call {existing}")
            continue
        try:
            meta = await asyncio.to_thread(
                recording_meta, path, sha256=sha, secretary_id=secretary_id,
                practice_id=practice_id, channel_roles=channel_roles, tz=tz)
        except AudioError as exc:
            report.rejected.append(Rejected(path, str(exc)))
            _tell(on_file, path, f"rejected: {exc}")
            continue
        roles = meta.channel_roles or (tuple(channel_roles) if meta.info.channels == 2 else ())
        call = NewCall(
            external_id=meta.external_id, source="recording", started_at=meta.started_at,
            practice_id=meta.practice_id, duration_s=round(meta.info.duration_s, 3),
            language=meta.language, secretary_id=meta.secretary_id,
            caller_number=meta.caller_number, category=meta.extra.get("category"),
            outcome=meta.extra.get("outcome"), status="new", audio_path=str(path.resolve()),
            audio_sha256=sha, channels=meta.info.channels, sample_rate=meta.info.sample_rate,
            metadata={"source_file": path.name, "codec": meta.info.codec,
                      "size_bytes": path.stat().st_size,
                      "started_at_source": meta.started_at_source,
                      **({"channel_roles": list(roles)} if roles else {}),
                      **({"source_call_id": meta.extra["call_id"]} if "call_id" in meta.extra
                         else {})})
        try:
            call_id = await store.add_call(call, actor=actor)
        except DuplicateCallError as exc:  # the same recording ingested concurrently
            report.duplicates.append((path, exc.existing_id))
            continue
        report.added.append((path, call_id))
        report.audio_s += meta.info.duration_s
        _tell(on_file, path, f"added as call {call_id} ({meta.info.channels} ch, "
                             f"{meta.info.duration_s:.1f} s)")
    logger.info("ingest: %d added, %d duplicates, %d rejected", len(report.added),
                len(report.duplicates), len(report.rejected))
    return report


def _tell(callback: ProgressCallback | None, path: Path, message: str) -> None:
    if callback is not None:
        callback(path, message)


@dataclass
class TranscribeReport:
    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0
    interrupted: bool = False
    left: int = 0


async def pending_jobs(store: Any, *, retry_failed: bool = False,
                       call_ids: Sequence[int] = ()) -> tuple[list[Any], list[tuple[int, str]]]:
    """Recordings waiting for transcription (status ``new``), oldest first, as jobs;
    calls that cannot be transcribed (audio deleted, an earlier error) come back apart."""
    from transcripts.distributed import TranscribeJob
    from transcripts.types import CallFilter

    ids = list(call_ids) or await store.call_ids(CallFilter(statuses=("new",),
                                                            sources=("recording",)))
    jobs: list[TranscribeJob] = []
    skipped: list[tuple[int, str]] = []
    for cid in ids:
        view = await store.get_call(cid, can_see_pii=False)
        if view is None:
            skipped.append((cid, "no such call"))
            continue
        if not view.audio_path or view.audio_deleted_at is not None:
            skipped.append((cid, "no audio (deleted or never recorded)"))
            continue
        if view.metadata.get("transcription_error") and not retry_failed and not call_ids:
            skipped.append((cid, f"failed before: {view.metadata['transcription_error']} "
                                 "(--retry-failed to try again)"))
            continue
        roles = tuple(view.metadata.get("channel_roles") or ())
        jobs.append(TranscribeJob(call_id=cid, audio_path=view.audio_path, channel_roles=roles,
                                  duration_s=float(view.duration_s or 0.0)))
    return jobs, skipped


async def save_transcript(store: Any, call_id: int, transcript: Any, *, actor: str) -> None:
    """Write a call's turns and move it to ``transcribed`` (its old turns are replaced)."""
    from transcripts.types import NewTurn

    turns = [NewTurn(speaker=t.speaker, text=t.text, start_s=round(t.start_s, 3),
                     end_s=round(t.end_s, 3), confidence=t.confidence, words=t.words)
             for t in transcript.turns]
    await store.update_call_info(
        call_id, actor=actor, language=transcript.language,
        metadata={"asr": {"model": transcript.model, "diarized": transcript.diarized,
                          "elapsed_s": round(transcript.elapsed_s, 2),
                          "turns": len(turns)},
                  "transcription_error": None})
    await store.replace_turns(call_id, turns, actor=actor, status="transcribed")


ResultCallback = Callable[[Any], None]


async def transcribe_pending(store: Any, backend: Any, *, actor: str = "transcriber",
                             retry_failed: bool = False, limit: int | None = None,
                             call_ids: Sequence[int] = (), progress: bool = True,
                             on_result: ResultCallback | None = None) -> TranscribeReport:
    """Transcribe the pending recordings with ``backend``, saving each call as it finishes.

    ``on_result(job_result)`` is called after each call is saved. An interruption
    (KeyboardInterrupt) stops the run cleanly: finished calls are saved, the others stay
    ``new`` for the next run.
    """
    import asyncio
    import time

    jobs, skipped = await pending_jobs(store, retry_failed=retry_failed, call_ids=call_ids)
    if limit is not None:
        jobs = jobs[:limit]
    report = TranscribeReport(skipped=skipped, left=len(jobs))
    if not jobs:
        return report
    bar = _progress_bar(sum(j.duration_s for j in jobs), len(jobs), enabled=progress)
    started = time.monotonic()
    backend.start()  # in the main thread (Ray sets signal handlers there)
    results = backend.run(jobs)
    try:
        while True:
            result = await asyncio.to_thread(next, results, None)
            if result is None:
                break
            cid = result.job.call_id
            if result.transcript is not None:
                await save_transcript(store, cid, result.transcript, actor=actor)
                report.done.append(cid)
                report.audio_s += result.transcript.duration_s
            else:
                await store.update_call_info(cid, actor=actor,
                                             metadata={"transcription_error": result.error})
                report.failed.append((cid, str(result.error)))
            report.left -= 1
            if bar is not None:
                bar.update(result.job.duration_s)
                bar.set_postfix_str(f"{len(report.done)}/{len(jobs)} calls", refresh=False)
            if on_result is not None:
                on_result(result)
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.interrupted = True
        logger.warning("interrupted: %d calls transcribed, %d left for the next run",
                       len(report.done), report.left)
    finally:
        if bar is not None:
            bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
        await asyncio.to_thread(backend.close)
        report.wall_s = time.monotonic() - started
    return report


def _progress_bar(total_s: float, calls: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:  # pragma: no cover - tqdm comes with the transcripts extra
        return None
    return tqdm(total=total_s, unit="s", unit_scale=False, desc=f"{calls} calls",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
                           "[{elapsed}<{remaining}, {rate_fmt}] {postfix}")
