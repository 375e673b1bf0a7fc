"""``twin transcripts``: bring calls in (import, ingest, transcribe), redact, purge, export.

The store is ``--url``, else ``$TWIN_DATABASE_URL``, else the agenda's SQLite file in the
data folder (the same database as the agenda, its own ``tr_`` tables). Commands built in
other modules register here with one ``cli.add_command(...)`` line at the bottom.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["cli", "run_with_store", "url_option"]

T = TypeVar("T")

# (annotated: modules registering commands here import it back, mypy needs the type)
url_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--url", envvar="TWIN_DATABASE_URL", default=None, show_envvar=True,
    help="SQLAlchemy async URL of the database (sqlite+aiosqlite:///path.db or "
         "postgresql+asyncpg://...); default: the agenda's SQLite file in the data folder.")


def run_with_store(url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the store (migrated to the newest schema), run ``work(store)``, close it."""
    from records.db import default_url
    from records.guard import is_unavailable
    from transcripts.store import TranscriptStore

    async def main() -> T:
        store = TranscriptStore(url=url or default_url())
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.dispose()

    try:
        return asyncio.run(main())
    except Exception as exc:
        if is_unavailable(exc):
            raise click.ClickException(f"cannot reach the database: {exc}") from exc
        raise


@click.group("transcripts")
def cli() -> None:
    """Transcribe, redact, review and export calls (the twin's training material)."""


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--approve", is_flag=True,
              help="Mark the calls that carry a review as approved (training data at once).")
@click.option("--update", is_flag=True,
              help="Replace calls already stored with different content (default: report them).")
@url_option
def import_cmd(file: Path, approve: bool, update: bool, url: str | None) -> None:
    """Import already-transcribed calls from a JSONL file (the corpus format)."""
    from transcripts.importer import import_jsonl

    report = run_with_store(url, lambda store: import_jsonl(store, file, approve=approve,
                                                            update=update))
    for error in report.errors:
        click.echo(f"{file.name}: {error}", err=True)
    for call_id in report.conflicts:
        click.echo(f"{file.name}: call {call_id} is already stored with other content "
                   "(--update replaces it)", err=True)
    for where in report.spans_not_found:
        click.echo(f"{file.name}: a PII span of {where} was not found in the turn's text",
                   err=True)
    click.echo(report.summary())
    if report.errors:
        raise SystemExit(1)


@cli.command("list")
@click.option("--status", "statuses", multiple=True, help="Only calls in this status (repeatable).")
@click.option("--limit", default=50, show_default=True)
@url_option
def list_cmd(statuses: tuple[str, ...], limit: int, url: str | None) -> None:
    """List the stored calls, newest first (no personal data)."""
    from transcripts.types import CallFilter, Page

    page = run_with_store(url, lambda store: store.list_calls(CallFilter(statuses=statuses),
                                                              Page(limit=limit)))
    for c in page.items:
        rating = "-" if c.review_rating is None else str(c.review_rating)
        click.echo(f"{c.id:>6} {c.external_id:<24} {c.started_at:%Y-%m-%d %H:%M} "
                   f"{c.source:<9} {c.status:<11} {c.secretary_id or '-':<12} "
                   f"{c.category or '-':<14} rating {rating}  {c.turn_count} turns")
    click.echo(f"{len(page.items)} of {page.total} calls")


@cli.command("show")
@click.argument("call_id", type=int)
@url_option
def show_cmd(call_id: int, url: str | None) -> None:
    """Print a call's redacted transcript."""
    view = run_with_store(url, lambda store: store.get_call(call_id, can_see_pii=False))
    if view is None:
        raise click.ClickException(f"no call {call_id}")
    click.echo(f"{view.external_id}  {view.started_at:%Y-%m-%d %H:%M}  {view.status}  "
               f"{view.secretary_id or '-'}  {view.category or '-'} / {view.outcome or '-'}")
    for t in view.turns:
        click.echo(f"  {t.speaker:>9}: {t.text}")


@cli.command("approve")
@click.argument("call_ids", type=int, nargs=-1, required=True)
@click.option("--actor", default="cli", show_default=True, help="Who approves (audit).")
@url_option
def approve_cmd(call_ids: tuple[int, ...], actor: str, url: str | None) -> None:
    """Mark reviewed calls approved (training data)."""

    async def work(store: Any) -> list[str]:
        done = []
        for cid in call_ids:
            view = await store.get_call(cid, can_see_pii=False)
            if view is None:
                done.append(f"{cid}: no such call")
            elif view.status != "reviewed":
                done.append(f"{cid}: status is {view.status}, not reviewed")
            else:
                await store.set_status(cid, "approved", actor=actor)
                done.append(f"{cid}: approved")
        return done

    for line in run_with_store(url, work):
        click.echo(line)


def _retention_from_config(path: Path) -> tuple[Any, str | None]:
    """The policy (and database URL) of the main settings file; a file that is not one
    (e.g. only a ``retention:`` section beside other tools' keys) is read for that section."""
    from transcripts.retention import RetentionPolicy
    from twin.settings import Settings, SettingsError

    try:
        settings = Settings.load(path, env={})
    except SettingsError:
        return RetentionPolicy.load(path), None
    r = settings.retention
    return (RetentionPolicy(audio_days=r.audio_days, transcripts_days=r.transcripts_days),
            settings.db_url)  # database_url, else agenda.db in the file's data_dir


@cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              help="The main settings file (twin/settings.py: its 'retention' section and, "
                   "without --url, its database), or any YAML or TOML file with a "
                   "'retention:' section (audio_days, transcripts_days).")
@click.option("--audio-days", type=int, default=None,
              help="Keep call audio this many days (default 183, about 6 months).")
@click.option("--transcripts-days", type=int, default=None,
              help="Keep transcripts and their analyses this many days (default 365).")
@url_option
def purge_cmd(dry_run: bool, config_path: Path | None, audio_days: int | None,
              transcripts_days: int | None, url: str | None) -> None:
    """Delete the audio and the calls whose retention period is over (leaves an audit record)."""
    from dataclasses import replace

    from transcripts.retention import RetentionError, RetentionPolicy, purge

    try:
        policy = RetentionPolicy()
        if config_path is not None:
            policy, file_url = _retention_from_config(config_path)
            url = url or file_url
        if audio_days is not None:
            policy = replace(policy, audio_days=audio_days)
        if transcripts_days is not None:
            policy = replace(policy, transcripts_days=transcripts_days)
    except RetentionError as exc:
        raise click.ClickException(str(exc)) from exc
    report = run_with_store(url, lambda store: purge(store, policy, dry_run=dry_run,
                                                     actor="cli:purge"))
    for failure in report.failures:
        click.echo(f"purge: {failure}", err=True)
    click.echo(("dry run: " if dry_run else "") + report.summary())
    if report.failures:
        raise SystemExit(1)


@cli.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["dataset", "jsonl"]), default="dataset",
              show_default=True,
              help="dataset: a Hugging Face datasets folder (save_to_disk); jsonl: the corpus "
                   "format, one call per line.")
@click.option("--status", "statuses", multiple=True, default=("approved",), show_default=True,
              help="Export calls in this status (repeatable).")
@url_option
def export_cmd(out: Path, fmt: str, statuses: tuple[str, ...], url: str | None) -> None:
    """Export approved, redacted calls (the twin's training input)."""
    from transcripts.export import export_dataset, write_jsonl

    async def work(store: Any) -> int:
        if fmt == "jsonl":
            count = await write_jsonl(store, out, statuses=statuses)
        else:
            count = await export_dataset(store, out, statuses=statuses)
        await store.audit(actor="cli:export", action="export", entity="export",
                          after={"format": fmt, "statuses": list(statuses), "calls": count})
        return count

    count = run_with_store(url, work)
    click.echo(f"exported {count} calls to {out} ({fmt})")


@cli.command("objection")
@click.argument("call_ref")
@click.option("--actor", default="cli", show_default=True, help="Who records it (audit).")
@url_option
def objection_cmd(call_ref: str, actor: str, url: str | None) -> None:
    """The caller objected to the recording: delete the call's audio and text.

    CALL_REF is the store's id or the call's external id."""

    async def work(store: Any) -> str:
        call_id = int(call_ref) if call_ref.isdigit() else None
        if call_id is None or await store.get_call(call_id, can_see_pii=False) is None:
            call_id = await store.find_call_id(external_id=call_ref)
        if call_id is None:
            raise click.ClickException(f"no call {call_ref}")
        await store.apply_objection(call_id, actor=actor)
        return f"call {call_id}: audio and text deleted (objection recorded)"

    click.echo(run_with_store(url, work))


# Commands built in other modules register here.
from transcripts.ingest_cli import ingest_cmd, transcribe_cmd  # noqa: E402  (needs cli above)

cli.add_command(ingest_cmd)
cli.add_command(transcribe_cmd)
from transcripts.redact_cli import redact_cmd  # noqa: E402

cli.add_command(redact_cmd)
