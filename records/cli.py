"""``twin db`` (create, migrate, seed the agenda database) and ``twin agenda`` (what the
assistant did: a day's appointments, free slots, staff messages, the audit log).

The database is ``--url``, else ``$TWIN_DATABASE_URL``, else SQLite in the data folder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, TypeVar

import click

__all__ = ["agenda", "db"]

T = TypeVar("T")

_url_option = click.option(
    "--url", envvar="TWIN_DATABASE_URL", default=None, show_envvar=True,
    help="SQLAlchemy async URL (sqlite+aiosqlite:///path.db or postgresql+asyncpg://...); "
         "default: SQLite agenda.db in the data folder ($TWIN_HOME).")


def _run(url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from records.db import Database, default_url
    from records.guard import is_unavailable
    from records.schemas import RecordsError

    async def main() -> T:
        database = Database(url=url or default_url())
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except RecordsError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise click.ClickException(f"cannot reach the database: {exc}") from exc
        raise


def _day(value: str | None) -> date:
    if value is None or value.lower() in ("today", "aujourd'hui", "aujourdhui"):
        return date.today()
    if value.lower() in ("tomorrow", "demain"):
        return date.today() + timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        from records.spoken_dates import SpokenDateError, parse_spoken_date_strict

        try:
            return parse_spoken_date_strict(value)
        except SpokenDateError as exc:
            raise click.BadParameter(f"{value!r}: use YYYY-MM-DD, today or tomorrow "
                                     f"({exc})") from None


def _service(database: Any) -> Any:
    from records.service import BookingService

    return BookingService(db=database)


@click.group()
def db() -> None:
    """Create, migrate and seed the agenda database."""


@db.command("init")
@_url_option
@click.option("--seed/--no-seed", default=False, help="Also load the demo practice and patients.")
def db_init(url: str | None, seed: bool) -> None:
    """Create the schema (or upgrade it to the newest revision)."""

    async def work(database: Any) -> str:
        await database.migrate()
        if seed:
            from records.seed import seed_demo

            await seed_demo(database)
        return f"{database.safe_url}: schema at revision {await database.current_revision()}"

    click.echo(_run(url, work))


@db.command("migrate")
@_url_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--down", is_flag=True, help="Downgrade to --revision (e.g. base) instead.")
def db_migrate(url: str | None, revision: str, down: bool) -> None:
    """Upgrade (or downgrade) the schema with the Alembic migrations."""

    async def work(database: Any) -> str:
        before = await database.current_revision()
        await (database.downgrade(revision) if down else database.migrate(revision))
        return f"{database.safe_url}: {before or 'empty'} -> {await database.current_revision() or 'empty'}"

    click.echo(_run(url, work))


@db.command("seed")
@_url_option
@click.option("--profile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Practice profile YAML (default: the demo practice).")
@click.option("--today", default=None, help="Date the demo appointments are relative to.")
def db_seed(url: str | None, profile: str | None, today: str | None) -> None:
    """Load the practice (and demo patients) from its profile; idempotent."""
    from knowledge.profile import ProfileError

    async def work(database: Any) -> str:
        from records.seed import seed_demo

        await database.migrate()
        await seed_demo(database, profile_path=profile, today=_day(today))
        return f"{database.safe_url}: seeded"

    try:
        click.echo(_run(url, work))
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc


@db.command("status")
@_url_option
def db_status(url: str | None) -> None:
    """Show the schema revision."""

    async def work(database: Any) -> str:
        return f"{database.safe_url}: revision {await database.current_revision() or 'none'}"

    click.echo(_run(url, work))


@click.group(invoke_without_command=True)
@click.pass_context
def agenda(ctx: click.Context) -> None:
    """Show a day's appointments (default: today), free slots, messages, audit log."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(agenda_day)


@agenda.command("day")
@_url_option
@click.argument("day", required=False)
@click.option("--practitioner", "-p", default=None, help="Id or name (\"Durand\").")
@click.option("--all", "include_cancelled", is_flag=True, help="Include cancelled ones.")
def agenda_day(url: str | None = None, day: str | None = None, practitioner: str | None = None,
               include_cancelled: bool = False) -> None:
    """Appointments of DAY (YYYY-MM-DD, today, tomorrow)."""
    when = _day(day)

    async def work(database: Any) -> list[Any]:
        return list(await _service(database).day_agenda(
            when, practitioner=practitioner, include_cancelled=include_cancelled))

    rows = _run(url, work)
    click.echo(f"{when:%A %Y-%m-%d}: {len(rows)} appointment(s)")
    for a in rows:
        flag = "" if a.status == "booked" else f"  [{a.status}]"
        click.echo(f"  {a.start:%H:%M}-{a.end:%H:%M}  {a.practitioner_name:<18} "
                   f"{a.appointment_type:<20} {a.patient_name:<22} #{a.id} by {a.created_by}{flag}")


@agenda.command("free")
@_url_option
@click.option("--practitioner", "-p", default=None, help="Id or name (\"docteur Durand\").")
@click.option("--type", "appointment_type", default=None, help="Appointment type code.")
@click.option("--from", "date_from", default=None, help="First day (default today).")
@click.option("--to", "date_to", default=None, help="Last day.")
@click.option("--day-part", type=click.Choice(["morning", "afternoon"]), default=None)
@click.option("--limit", default=10, show_default=True)
def agenda_free(url: str | None, practitioner: str | None, appointment_type: str | None,
                date_from: str | None, date_to: str | None, day_part: str | None,
                limit: int) -> None:
    """Free slots, earliest first."""

    async def work(database: Any) -> list[Any]:
        return list(await _service(database).find_free_slots(
            practitioner=practitioner, appointment_type=appointment_type,
            date_from=_day(date_from) if date_from else None,
            date_to=_day(date_to) if date_to else None, day_part=day_part, limit=limit))

    for s in _run(url, work):
        click.echo(f"{s.start:%a %Y-%m-%d %H:%M}-{s.end:%H:%M}  {s.practitioner_name:<18} "
                   f"{s.appointment_type}")


@agenda.command("messages")
@_url_option
@click.option("--limit", default=20, show_default=True)
def agenda_messages(url: str | None, limit: int) -> None:
    """Messages left for the staff, newest first."""
    from sqlalchemy import select

    from records.models import StaffMessage

    async def work(database: Any) -> list[Any]:
        async with database.session() as s:
            return list((await s.scalars(select(StaffMessage).order_by(
                StaffMessage.id.desc()).limit(limit))).all())

    for m in _run(url, work):
        who = m.caller_name or (f"patient #{m.patient_id}" if m.patient_id else "unknown")
        click.echo(f"#{m.id} {m.created_at:%Y-%m-%d %H:%M} UTC {m.kind}{' URGENT' if m.urgent else ''}"
                   f" from {who} ({m.callback_number or 'no number'}) via {m.created_by}: {m.body}")


@agenda.command("calls")
@_url_option
@click.option("--limit", default=20, show_default=True)
def agenda_calls(url: str | None, limit: int) -> None:
    """Recent calls: caller number, times, outcome, handoff reason."""
    from sqlalchemy import select

    from records.models import Call

    async def work(database: Any) -> list[Any]:
        async with database.session() as s:
            return list((await s.scalars(select(Call).order_by(
                Call.started_at.desc()).limit(limit))).all())

    for c in _run(url, work):
        length = f"{(c.ended_at - c.started_at).total_seconds():.0f} s" if c.ended_at else "open"
        click.echo(f"{c.started_at:%Y-%m-%d %H:%M} UTC {c.id:<24} {c.caller_number or '-':<16} "
                   f"{length:>7}  {c.outcome or '-'}"
                   + (f" (handoff: {c.handoff_reason})" if c.handoff_reason else ""))


@agenda.command("audit")
@_url_option
@click.option("--limit", default=20, show_default=True)
@click.option("--call", "call_id", default=None, help="Only this call's entries.")
def agenda_audit(url: str | None, limit: int, call_id: str | None) -> None:
    """The audit log: every write, who made it, newest first."""
    from sqlalchemy import select

    from records.models import AuditLog

    async def work(database: Any) -> list[Any]:
        query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
        if call_id:
            query = query.where(AuditLog.call_id == call_id)
        async with database.session() as s:
            return list((await s.scalars(query)).all())

    for r in _run(url, work):
        click.echo(f"{r.at:%Y-%m-%d %H:%M:%S} UTC {r.actor:<24} {r.action:<22} "
                   f"{r.entity}#{r.entity_id or '-'} {json.dumps(r.details, ensure_ascii=False)}")


@agenda.command("cancel")
@_url_option
@click.argument("appointment_id", type=int)
@click.option("--staff", required=True, help="Your name, for the audit log.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
def agenda_cancel(url: str | None, appointment_id: int, staff: str, reason: str) -> None:
    """Cancel an appointment as a staff member."""

    async def work(database: Any) -> Any:
        return await _service(database).cancel(appointment_id=appointment_id,
                                               actor=f"staff:{staff}", reason=reason)

    out = _run(url, work)
    if out.status != "cancelled":
        raise click.ClickException(out.message)
    click.echo(out.message)


@agenda.command("absence")
@_url_option
@click.argument("practitioner")
@click.argument("start")
@click.argument("end")
@click.option("--staff", required=True, help="Your name, for the audit log.")
@click.option("--reason", default="", help="Why (kept in the agenda).")
def agenda_absence(url: str | None, practitioner: str, start: str, end: str, staff: str,
                   reason: str) -> None:
    """Mark PRACTITIONER away from START to END (YYYY-MM-DD[THH:MM], practice time;
    a bare END date means until the end of that day)."""
    from datetime import datetime, time

    def parse(value: str, *, end_of_day: bool) -> datetime:
        try:
            if "T" in value or " " in value.strip():
                return datetime.fromisoformat(value)
            d = date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
        return datetime.combine(d + timedelta(days=1) if end_of_day else d, time(0))

    async def work(database: Any) -> Any:
        svc = _service(database)
        pid = (await svc.resolve_practitioner(practitioner)).id
        lo = parse(start, end_of_day=False).replace(tzinfo=svc.tz)
        hi = parse(end, end_of_day=True).replace(tzinfo=svc.tz)
        return pid, await svc.add_absence(practitioner_id=pid, start=lo, end=hi,
                                          actor=f"staff:{staff}", reason=reason)

    pid, result = _run(url, work)
    click.echo(f"absence #{result.absence_id} recorded for {pid}")
    if result.clashing_appointment_ids:
        click.echo("appointments to move or cancel: "
                   + ", ".join(f"#{i}" for i in result.clashing_appointment_ids))


@agenda.command("sync")
@_url_option
@click.option("--calendar", "calendars", multiple=True, required=True, metavar="ID=URL",
              help="Practitioner id and CalDAV calendar URL; repeat per practitioner.")
@click.option("--username", envvar="TWIN_CALDAV_USERNAME", default=None, show_envvar=True)
@click.option("--password", envvar="TWIN_CALDAV_PASSWORD", default=None, show_envvar=True,
              help="Better given through the environment variable.")
@click.option("--create", is_flag=True, help="Create missing calendars (MKCALENDAR).")
def agenda_sync(url: str | None, calendars: tuple[str, ...], username: str | None,
                password: str | None, create: bool) -> None:
    """Sync the agenda with CalDAV calendars, both ways, once."""
    from records.caldav_client import CalDavCalendar, CalDavError
    from records.caldav_sync import CalDavSync

    targets: dict[str, CalDavCalendar] = {}
    for item in calendars:
        pid, sep, cal_url = item.partition("=")
        if not sep or not pid or not cal_url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{item!r}: use PRACTITIONER_ID=https://server/calendar/")
        targets[pid] = CalDavCalendar(url=cal_url, username=username, password=password)

    async def work(database: Any) -> Any:
        try:
            if create:
                for cal in targets.values():
                    await cal.ensure_exists()
            return await CalDavSync(db=database, calendars=targets).sync_once()
        finally:
            for cal in targets.values():
                await cal.aclose()

    try:
        report = _run(url, work)
    except CalDavError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pushed {report.pushed}, deleted {report.deleted_remote}, busy +{report.busy_added}"
               f"/-{report.busy_removed}, moved {report.moved}, cancelled {report.cancelled}, "
               f"conflicts {report.conflicts}")
    if report.errors:
        raise click.ClickException("; ".join(report.errors))


@agenda.command("spool")
@_url_option
@click.option("--import", "do_import", is_flag=True,
              help="Move the entries into the database as staff messages.")
def agenda_spool(url: str | None, do_import: bool) -> None:
    """Requests kept on disk while the database was unreachable."""
    from records.db import default_data_dir
    from records.spool import Spool

    entries = asyncio.run(Spool(path=default_data_dir() / "records-spool.jsonl").read())
    if not entries:
        click.echo("spool is empty")
        return
    for e in entries:
        click.echo(json.dumps(e, ensure_ascii=False))
    if do_import:

        async def work(database: Any) -> int:
            return int(await _service(database).import_spool())

        click.echo(f"imported {_run(url, work)} entries as staff messages")
