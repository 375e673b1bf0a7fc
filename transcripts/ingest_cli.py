"""``twin transcripts ingest`` and ``twin transcripts transcribe`` (registered in
:mod:`transcripts.cli`)."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any

import click

from transcripts.cli import run_with_store, url_option

__all__ = ["ingest_cmd", "transcribe_cmd"]

_ROLES = ("patient", "secretary")


def _roles(value: str) -> tuple[str, str]:
    parts = tuple(p.strip() for p in value.split(","))
    if len(parts) != 2 or set(parts) != set(_ROLES):
        raise click.BadParameter("give the speaker of the left then the right channel, e.g. "
                                 "'patient,secretary' or 'secretary,patient'")
    return parts[0], parts[1]


def _tz(name: str | None) -> tzinfo | None:
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone '{name}'") from exc


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--secretary", "secretary_id", default=None,
              help="Secretary who answered these calls (a sidecar JSON file overrides it).")
@click.option("--practice", "practice_id", default="", help="Practice id stored on the calls.")
@click.option("--channels", "channels", default="patient,secretary", show_default=True,
              help="Speaker of the left,right channel of stereo recordings.")
@click.option("--timezone", "timezone", default=None,
              help="Time zone of date-times in file names (default: this machine's).")
@click.option("--actor", default="ingest", show_default=True, help="Who ingests (audit).")
@url_option
def ingest_cmd(paths: tuple[Path, ...], secretary_id: str | None, practice_id: str,
               channels: str, timezone: str | None, actor: str, url: str | None) -> None:
    """Store WAV, FLAC and MP3 recordings (files or folders) as calls to transcribe.

    The same recording (same bytes) is stored once. A corrupt, empty or unsupported file
    is reported and skipped; the exit status is non-zero only when no file could be used.
    """
    from transcripts.ingest import ingest

    roles = _roles(channels)
    zone = _tz(timezone)

    def show(path: Path, message: str) -> None:
        click.echo(f"{path}: {message}")

    async def work(store: Any) -> Any:
        return await ingest(store, list(paths), actor=actor, secretary_id=secretary_id,
                            practice_id=practice_id, channel_roles=roles, tz=zone, on_file=show)

    report = run_with_store(url, work)
    for rej in report.rejected:
        click.echo(f"{rej.path}: REJECTED: {rej.reason}", err=True)
    click.echo(f"ingested {len(report.added)} recording(s) ({report.audio_s / 60:.1f} min of "
               f"audio), {len(report.duplicates)} already stored, {len(report.rejected)} rejected")
    if report.failed_all:
        raise SystemExit(1)


@click.command("transcribe")
@click.option("--workers", default=1, show_default=True,
              help="Worker processes (each loads the model once; CPU threads are shared out "
                   "so that workers x threads <= cores). With --ray-address: Ray actors "
                   "(default: one per CPU of the cluster).")
@click.option("--threads", default=0, help="CPU threads per worker (default: cores / workers).")
@click.option("--ray-address", default=None,
              help="Distribute over Ray: 'local' (a cluster on this machine), 'auto' (the "
                   "cluster this node belongs to) or 'ray://host:10001'.")
@click.option("--language", default="fr", show_default=True, help="Language of the calls.")
@click.option("--detect-language", is_flag=True,
              help="Detect each call's language on its first 30 s of speech.")
@click.option("--beam-size", default=5, show_default=True, help="Whisper beam size (1: faster).")
@click.option("--greeting", "greetings", multiple=True,
              help="Words of the secretary's greeting (e.g. the practice's name), used to "
                   "tell the secretary on mono recordings (repeatable).")
@click.option("--limit", type=int, default=None, help="Transcribe at most this many calls.")
@click.option("--call", "call_ids", type=int, multiple=True,
              help="Transcribe these calls (status new) only (repeatable).")
@click.option("--retry-failed", is_flag=True, help="Try again calls that failed before.")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="faster-whisper model folder (default: the installed whisper-base).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--actor", default="transcriber", show_default=True, help="Who writes (audit).")
@url_option
def transcribe_cmd(workers: int, threads: int, ray_address: str | None, language: str,
                   detect_language: bool, beam_size: int, greetings: tuple[str, ...],
                   limit: int | None, call_ids: tuple[int, ...], retry_failed: bool,
                   model_dir: Path | None, no_progress: bool, actor: str,
                   url: str | None) -> None:
    """Transcribe the ingested recordings that are still new (resumes where it stopped)."""
    from transcripts.distributed import make_backend
    from transcripts.ingest import transcribe_pending
    from transcripts.transcribe import TranscribeConfig

    if model_dir is None:
        from twin.models import ModelError, require

        try:
            model_dir = require("whisper-base")
        except ModelError as exc:
            raise click.ClickException(str(exc)) from exc
    base = TranscribeConfig()
    config = TranscribeConfig(language=language, detect_language=detect_language,
                              beam_size=beam_size,
                              greeting_words=base.greeting_words + tuple(greetings))
    backend = make_backend(model_dir=model_dir, config=config, workers=workers,
                           ray_address=ray_address, cpu_threads=threads)

    async def work(store: Any) -> Any:
        return await transcribe_pending(store, backend, actor=actor, retry_failed=retry_failed,
                                        limit=limit, call_ids=call_ids,
                                        progress=not no_progress)

    report = run_with_store(url, work)
    for cid, reason in report.skipped:
        click.echo(f"call {cid}: skipped: {reason}", err=True)
    for cid, reason in report.failed:
        click.echo(f"call {cid}: FAILED: {reason}", err=True)
    speed = report.audio_s / report.wall_s if report.wall_s else 0.0
    click.echo(f"transcribed {len(report.done)} call(s), {report.audio_s / 60:.1f} min of audio "
               f"in {report.wall_s:.0f} s ({speed:.1f}x real time, {backend.workers} worker(s)); "
               f"{len(report.failed)} failed")
    if report.interrupted:
        click.echo(f"interrupted: {report.left} call(s) left; run the command again to resume")
        raise SystemExit(130)
    if report.failed and not report.done:
        raise SystemExit(1)
