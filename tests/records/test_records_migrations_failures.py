"""Migrations up/down on both databases, and a database that goes away mid-booking."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, inspect, select

from records import BookingService, Database, DatabaseUnavailable, PatientDetails, seed_demo
from records.models import Appointment, AuditLog, Base, Call, Patient, StaffMessage

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
START = datetime.combine(date(2026, 12, 1), time(10, 0), tzinfo=PARIS)
JEAN = PatientDetails("Jean", "Dupont", date(1960, 1, 2))


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_migrations_up_down_up(db_url: str) -> None:
    db = Database(url=db_url)
    try:
        await db.migrate()
        await db.migrate()  # idempotent
        assert await db.current_revision() == "0002"
        assert set(Base.metadata.tables) <= await _tables(db)

        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        async with db.engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata))
        assert diff == [], f"models and migrations disagree: {diff}"

        await seed_demo(db, today=date(2026, 11, 30))
        await db.downgrade("0001")  # one step down keeps the data
        assert await db.current_revision() == "0001"
        assert len(await BookingService(db=db, now=lambda: NOW).list_practitioners()) == 2
        await db.migrate()
        await db.downgrade("base")
        assert await _tables(db) <= {"alembic_version"}
        assert await db.current_revision() is None
        await db.migrate()
        await seed_demo(db, today=date(2026, 11, 30))
        svc = BookingService(db=db, now=lambda: NOW)
        assert len(await svc.list_practitioners()) == 2
    finally:
        await db.dispose()


def _fail_on(db: Database, marker: str, fail: Any) -> Any:
    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(marker):
            fail(conn)

    return _hook


async def _assert_nothing_written(db: Database) -> None:
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Patient).where(
            Patient.last_name == "Dupont")) == 0
        assert await s.scalar(select(func.count()).select_from(Appointment).where(
            Appointment.start_at == START)) == 0
        assert await s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "appointment.book", AuditLog.actor == "assistant:call-3")) == 0


async def test_database_lost_mid_booking_books_nothing_and_keeps_request(
        seeded: Database, tmp_path: Path) -> None:
    """The connection dies while the appointment row is being written (after the patient
    row): the transaction is rolled back, the caller's request goes to the spool file."""
    spool = tmp_path / "spool.jsonl"
    svc = BookingService(db=seeded, now=lambda: NOW, spool_path=spool)

    if seeded.dialect == "postgresql":
        import psycopg

        admin = seeded.url.replace("postgresql+asyncpg://", "postgresql://")

        def fail(conn: Any) -> None:  # really kill this backend from outside
            pid = conn.connection.dbapi_connection._connection.get_server_pid()
            with psycopg.connect(admin, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    else:
        from sqlalchemy.exc import OperationalError

        def fail(conn: Any) -> None:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    hook = _fail_on(seeded, "INSERT INTO APPOINTMENTS", fail)
    out = await svc.book(practitioner_id="morel", appointment_type="consultation", start=START,
                         patient=JEAN, actor="assistant:call-3", call_id="call-3")
    assert out.status == "unavailable", out.message
    assert "request kept for the staff" in out.message
    event.remove(seeded.engine.sync_engine, "before_cursor_execute", hook)
    await _assert_nothing_written(seeded)
    [entry] = [json.loads(x) for x in spool.read_text().splitlines()]
    assert entry["kind"] == "booking_request" and entry["call_id"] == "call-3"
    assert entry["patient"]["last_name"] == "Dupont" and entry["start"].startswith("2026-12-01T10")
    # and the service works again once the database is back
    again = await svc.book(practitioner_id="morel", appointment_type="consultation",
                           start=START, patient=JEAN, actor="assistant:call-3")
    assert again.status == "booked"


@pytest.mark.postgres
async def test_database_down_keeps_messages_and_requests(pg_databases, tmp_path: Path) -> None:
    import psycopg

    url = await pg_databases.create()
    db = Database(url=url, connect_timeout_s=2)
    await db.migrate()
    await seed_demo(db, today=date(2026, 11, 30))
    spool = tmp_path / "spool.jsonl"
    svc = BookingService(db=db, now=lambda: NOW, spool_path=spool)
    name = url.rsplit("/", 1)[1]
    admin = url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/twin"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (name,))
    try:
        out = await svc.book(practitioner_id="morel", appointment_type="consultation",
                             start=START, patient=JEAN, actor="assistant:call-4")
        assert out.status == "unavailable"
        msg = await svc.leave_message(kind="callback", body="Rappeler Mme Dupont",
                                      actor="assistant:call-4", callback_number="0600000000")
        assert msg.status == "spooled"
        assert await svc.start_call(call_id="call-4", caller_number="0600000000") is False
        cancel = await svc.cancel(appointment_id=1, actor="staff:alice")
        assert cancel.status == "unavailable"
        check = await svc.verify_identity(full_name="Paul Girard", birth_date="4 juin 1978")
        assert check.status == "unavailable" and check.patient is None
        with pytest.raises(DatabaseUnavailable, match="unavailable"):
            await svc.find_free_slots(practitioner="morel")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    kinds = [json.loads(x)["kind"] for x in spool.read_text().splitlines()]
    assert kinds == ["booking_request", "message", "call.start", "cancel_request"]
    await _assert_nothing_written(db)

    # once the database is back, staff import what was kept: nothing is lost
    assert await svc.import_spool(actor="staff:alice") == 4
    archived = await asyncio.to_thread(lambda: list(tmp_path.glob("spool.imported-*.jsonl")))
    assert not spool.exists() and len(archived) == 1
    async with db.session() as s:
        msgs = (await s.scalars(select(StaffMessage).order_by(StaffMessage.id))).all()
        assert [m.kind for m in msgs] == ["callback", "callback", "callback"]
        assert "booking request" in msgs[0].body and "Jean Dupont" == msgs[0].caller_name
        assert msgs[1].body == "Rappeler Mme Dupont" and msgs[1].callback_number == "0600000000"
        assert "cancel request" in msgs[2].body
        call = await s.get(Call, "call-4")
        assert call is not None and call.caller_number == "0600000000"
    assert await svc.import_spool() == 0
    await db.dispose()
