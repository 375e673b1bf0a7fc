"""CalDAV sync both ways against a real Radicale server started for each test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time as clock
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from records import BookingService, Database, PatientDetails
from records.caldav_client import CalDavCalendar, CalDavUnavailable, build_event_ics
from records.caldav_sync import CalDavSync, appointment_uid
from records.models import Appointment, AuditLog, StaffMessage

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
DAY = date(2026, 12, 1)  # Tuesday: Morel 08:30-12:30, 14:00-18:30
JEAN = PatientDetails("Jean", "Dupont", date(1960, 1, 2))


def at(hh: int, mm: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=PARIS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Radicale:
    def __init__(self, *, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/twin/"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{self.port}",
             "--auth-type", "none", "--storage-filesystem-folder", str(self.folder),
             "--logging-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = clock.monotonic() + 20
        while clock.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                clock.sleep(0.05)
        raise RuntimeError("Radicale did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = Radicale(folder=tmp_path / "radicale")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def morel_cal(radicale: Radicale) -> AsyncIterator[CalDavCalendar]:
    cal = CalDavCalendar(url=radicale.base + "morel/", username="twin", password="x")
    await cal.ensure_exists(display_name="Dr Claire Morel")
    yield cal
    await cal.aclose()


@pytest.fixture
def svc(seeded: Database, tmp_path: Path) -> BookingService:
    return BookingService(db=seeded, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")


def _sync(db: Database, cal: CalDavCalendar) -> CalDavSync:
    return CalDavSync(db=db, calendars={"morel": cal}, now=lambda: NOW)


async def test_bookings_reach_the_calendar_and_cancellations_leave_it(
        svc: BookingService, morel_cal: CalDavCalendar) -> None:
    out = await svc.book(practitioner_id="morel", appointment_type="consultation",
                         start=at(10), patient=JEAN, actor="assistant:call-1")
    assert out.appointment_id is not None
    sync = _sync(svc.db, morel_cal)
    report = await sync.sync_once()
    assert report.ok and report.pushed >= 2  # Jean + the seeded Morel appointments
    event = await morel_cal.get_event(appointment_uid(out.appointment_id))
    assert event is not None and event.start == at(10) and event.end == at(10, 20)
    assert "Jean Dupont" in event.summary and event.appointment_id == out.appointment_id
    assert (await sync.sync_once()).pushed == 0  # nothing new

    moved = await svc.reschedule(appointment_id=out.appointment_id, new_start=at(11),
                                 actor="staff:alice")
    assert moved.ok
    assert (await sync.sync_once()).pushed == 1
    event = await morel_cal.get_event(appointment_uid(out.appointment_id))
    assert event is not None and event.start == at(11)

    assert (await svc.cancel(appointment_id=out.appointment_id, actor="staff:alice")).status \
        == "cancelled"
    report = await sync.sync_once()
    assert report.deleted_remote == 1
    assert await morel_cal.get_event(appointment_uid(out.appointment_id)) is None


async def test_staff_events_in_the_calendar_block_slots(
        svc: BookingService, morel_cal: CalDavCalendar) -> None:
    ics = build_event_ics(uid="staff-meeting-1@nextcloud", start=at(10), end=at(11),
                          summary="Réunion de service")
    await morel_cal.put_event("staff-meeting-1@nextcloud", ics)
    sync = _sync(svc.db, morel_cal)
    report = await sync.sync_once()
    assert report.busy_added == 1
    free = await svc.find_free_slots(practitioner="morel", date_from=DAY, date_to=DAY, limit=50)
    starts = {s.start for s in free}
    assert not any(at(9, 41) <= s.start < at(11) for s in free) and at(11) in starts
    refused = await svc.book(practitioner_id="morel", appointment_type="consultation",
                             start=at(10, 20), patient=JEAN, actor="assistant:call-2")
    assert refused.status == "invalid" and "external agenda" in refused.message

    await morel_cal.delete_event("staff-meeting-1@nextcloud")
    assert (await sync.sync_once()).busy_removed == 1
    free = await svc.find_free_slots(practitioner="morel", date_from=DAY, date_to=DAY, limit=50)
    assert any(at(10) <= s.start < at(11) for s in free)


async def test_staff_moves_and_deletes_in_the_calendar_come_back(
        svc: BookingService, morel_cal: CalDavCalendar) -> None:
    a = await svc.book(practitioner_id="morel", appointment_type="consultation",
                       start=at(10), patient=JEAN, actor="assistant:call-3")
    b = await svc.book(practitioner_id="morel", appointment_type="consultation", start=at(15),
                       patient=PatientDetails("Anne", "Morin", date(1950, 5, 5)),
                       actor="assistant:call-4")
    c = await svc.book(practitioner_id="morel", appointment_type="consultation", start=at(16),
                       patient=PatientDetails("Luc", "Petit", date(1955, 5, 5)),
                       actor="assistant:call-5")
    assert a.appointment_id and b.appointment_id and c.appointment_id
    sync = _sync(svc.db, morel_cal)
    await sync.sync_once()

    def moved_ics(appt_id: int, start: datetime) -> str:
        uid = appointment_uid(appt_id)
        return build_event_ics(uid=uid, start=start, end=start + timedelta(minutes=20),
                               summary="moved by staff", appointment_id=appt_id)

    await morel_cal.put_event(appointment_uid(a.appointment_id), moved_ics(a.appointment_id, at(17)))
    await morel_cal.delete_event(appointment_uid(b.appointment_id))
    # moved onto another booked appointment: refused, staff told
    await morel_cal.put_event(appointment_uid(c.appointment_id), moved_ics(c.appointment_id, at(10)))
    # (a moved away from 10:00 in the same sync, so c's move is checked after a's)
    report = await sync.sync_once()
    assert report.ok and report.moved + report.conflicts == 2 and report.cancelled == 1

    async with svc.db.session() as s:
        ra = await s.get(Appointment, a.appointment_id)
        rb = await s.get(Appointment, b.appointment_id)
        assert ra is not None and ra.start_at == at(17)
        assert rb is not None and rb.status == "cancelled"
        audit = (await s.scalars(select(AuditLog).where(
            AuditLog.actor == "caldav:morel", AuditLog.entity == "appointment"))).all()
        assert {x.action for x in audit} >= {"appointment.reschedule", "appointment.cancel"}


async def test_move_onto_a_booked_slot_is_refused(svc: BookingService,
                                                  morel_cal: CalDavCalendar) -> None:
    a = await svc.book(practitioner_id="morel", appointment_type="consultation",
                       start=at(10), patient=JEAN, actor="assistant:call-3")
    b = await svc.book(practitioner_id="morel", appointment_type="consultation", start=at(15),
                       patient=PatientDetails("Anne", "Morin", date(1950, 5, 5)),
                       actor="assistant:call-4")
    assert a.appointment_id and b.appointment_id
    sync = _sync(svc.db, morel_cal)
    await sync.sync_once()
    uid = appointment_uid(b.appointment_id)
    await morel_cal.put_event(uid, build_event_ics(
        uid=uid, start=at(10, 10), end=at(10, 30), summary="x", appointment_id=b.appointment_id))
    report = await sync.sync_once()
    assert report.conflicts == 1 and report.pushed == 1  # our version was put back
    event = await morel_cal.get_event(uid)
    assert event is not None and event.start == at(15)
    async with svc.db.session() as s:
        msg = (await s.scalars(select(StaffMessage).where(StaffMessage.urgent.is_(True)))).one()
        assert "overlaps" in msg.body


async def test_calendar_down_bookings_still_happen_and_sync_later(
        svc: BookingService, radicale: Radicale) -> None:
    cal = CalDavCalendar(url=radicale.base + "morel/", username="twin", password="x",
                         timeout_s=2)
    await cal.ensure_exists()
    radicale.stop()
    with pytest.raises(CalDavUnavailable, match="unreachable"):
        await cal.events_between(at(0), at(23))
    out = await svc.book(practitioner_id="morel", appointment_type="consultation",
                         start=at(10), patient=JEAN, actor="assistant:call-6")
    assert out.status == "booked"  # the agenda does not depend on the calendar
    sync = _sync(svc.db, cal)
    report = await sync.sync_once()
    assert not report.ok and "unreachable" in report.errors[0]
    radicale.start()
    report = await sync.sync_once()
    assert report.ok and report.pushed >= 1
    assert out.appointment_id is not None
    assert await cal.get_event(appointment_uid(out.appointment_id)) is not None
    await cal.aclose()


def test_cli_sync(radicale: Radicale, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from twin.cli import main

    monkeypatch.setenv("TWIN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}")
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(main, ["db", "init", "--seed"]).exit_code == 0
    args = ["agenda", "sync", "--calendar", f"morel={radicale.base}morel/", "--calendar",
            f"haddad={radicale.base}haddad/", "--username", "twin", "--create"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "pushed 4" in r.output  # the four seeded demo appointments
    radicale.stop()
    r = runner.invoke(main, args)
    assert r.exit_code != 0 and "unreachable" in r.output
    r = runner.invoke(main, ["agenda", "sync", "--calendar", "morel"])
    assert r.exit_code != 0 and "PRACTITIONER_ID=" in r.output
