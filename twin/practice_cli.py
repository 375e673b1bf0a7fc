"""``twin practice``: set up the agenda of any practice from its profile.

``twin practice init PROFILE`` creates (or updates, idempotently) the practitioners,
appointment types, weekly schedules and closures of a valid practice profile in the
agenda database of the settings (``--config``, ``TWIN_DATABASE_URL``), and writes
nothing else: no patient, no appointment, no demo data. ``twin serve``, ``twin call``
and ``twin eval scenarios`` then take the same profile from the settings (``profile:``
or ``TWIN_PROFILE``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

__all__ = ["cli", "init_practice"]


async def init_practice(*, profile_path: Path, database_url: str) -> dict[str, Any]:
    """Validate the profile and upsert its practice into the database; the counts written."""
    from knowledge.profile import load_profile
    from records import Database
    from records.seed import seed_profile

    profile = load_profile(profile_path)
    db = Database(url=database_url)
    try:
        await db.migrate()
        counts = await seed_profile(db, profile)
    finally:
        await db.dispose()
    return {"practice": profile.practice.id, "name": profile.practice.name,
            "database": db.safe_url, **counts}


@click.group("practice")
def cli() -> None:
    """Set up a practice's agenda from its profile."""


@cli.command("init")
@click.argument("profile", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--config", type=click.Path(path_type=Path), help="Settings file (YAML or TOML).")
@click.option("--url", default=None, help="Database URL (default: the settings' database).")
def init_cmd(profile: Path | None, config: Path | None, url: str | None) -> None:
    """Create the practitioners, appointment types and schedules of PROFILE (default: the
    settings' profile) in the agenda database; idempotent, no demo data."""
    from knowledge.profile import ProfileError
    from twin.settings import Settings, SettingsError

    try:
        settings = Settings.load(config)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    path = profile or settings.profile_path
    if url is None:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        done = asyncio.run(init_practice(profile_path=path, database_url=url or settings.db_url))
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{done['name']} ({done['practice']}) in {done['database']}: "
               f"{done['practitioners']} practitioners, {done['appointment_types']} appointment "
               f"types, {done['schedule_ranges']} schedule ranges, {done['closures']} closures.")
    if profile is not None and settings.profile is None:
        click.echo(f"Use it: set `profile: {path}` in the settings, or TWIN_PROFILE={path}.")
