"""``twin transcripts redact``: find personal data in stored calls and redact it
(:mod:`transcripts.redaction_job` does the work). Registered in :mod:`transcripts.cli`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["redact_cmd"]


@click.command("redact")
@click.option("--call", "call_ids", type=int, multiple=True,
              help="Redact this call (store id; repeatable), whatever its status.")
@click.option("--all", "all_calls", is_flag=True,
              help="Redact every transcribed call, and imported calls not yet run through the "
                   "detector (the default without --call).")
@click.option("--health/--no-health", default=False, show_default=True,
              help="Also redact health details (symptoms, conditions, medicines), when the "
                   "practice asks for it.")
@click.option("--profile", "profile_path", type=click.Path(exists=True, dir_okay=False,
                                                           path_type=Path),
              default=None, help="Practice profile YAML (its staff, address and phone are "
                                 "not redacted); default: the demo practice.")
@click.option("--actor", default="cli:redact", show_default=True, help="Who redacts (audit).")
@click.option("--url", envvar="TWIN_DATABASE_URL", default=None, show_envvar=True,
              help="SQLAlchemy async URL of the database; default: the agenda's SQLite file in "
                   "the data folder.")
def redact_cmd(call_ids: tuple[int, ...], all_calls: bool, health: bool,
               profile_path: Path | None, actor: str, url: str | None) -> None:
    """Find personal data in calls and replace it by typed placeholders (proposed spans)."""
    from knowledge.profile import ProfileError, default_profile_path, load_profile
    from transcripts.cli import run_with_store
    from transcripts.redaction import Redactor
    from transcripts.redaction_job import (
        RedactReport,
        patient_names,
        redact_calls,
        redactable_call_ids,
    )

    if call_ids and all_calls:
        raise click.UsageError("give --call ID (repeatable) or --all, not both")
    try:
        profile = load_profile(profile_path or default_profile_path())
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    redactor = Redactor()
    try:
        redactor.load()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc

    async def work(store: Any) -> RedactReport:
        ids = list(call_ids) if call_ids else await redactable_call_ids(store)
        patients = await patient_names(store)
        return await redact_calls(store, redactor, ids, profile=profile, patients=patients,
                                  health=health, actor=actor)

    report = run_with_store(url, work)
    for line in report.skipped:
        click.echo(f"redact: {line}", err=True)
    click.echo(report.summary())
