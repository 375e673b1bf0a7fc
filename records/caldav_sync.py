"""Keep external CalDAV calendars (one per practitioner) in sync with the agenda, both ways.

``await CalDavSync(db=db, calendars={"durand": CalDavCalendar(url=...)}).sync_once()``:

* **agenda -> calendar**: booked appointments are PUT as events (UID
  ``twin-appointment-<id>@secretary-twin``, property ``X-TWIN-APPOINTMENT-ID``); changed
  ones are re-sent, cancelled ones deleted.
* **calendar -> agenda**: events the staff created in the calendar become busy blocks
  (``external_busy``), so the assistant never offers those times; our events that staff
  moved in the calendar move the appointment (if the new time is free in the agenda, else
  a staff message); our events the staff deleted cancel the appointment. Every such change
  is audited with actor ``caldav:<practitioner>``.

The database stays the source of truth for bookings: a booking commits in the database
whether or not the CalDAV server is up; until it has been pushed it is marked
``sync_pending`` and the next ``sync_once`` sends it. A server that is down gives a
:class:`~records.caldav_client.CalDavUnavailable` entry in ``SyncReport.errors``, nothing
is lost. Run ``sync_once`` periodically (``run(interval_s=...)``) and after bookings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from records.caldav_client import CalDavError, CalendarClient, RemoteEvent, build_event_ics
from records.db import Database
from records.models import (
    Appointment,
    AppointmentType,
    AuditLog,
    ExternalBusy,
    Patient,
    Practitioner,
    StaffMessage,
)

__all__ = ["CalDavSync", "SyncReport", "appointment_uid"]

logger = logging.getLogger(__name__)


def appointment_uid(appointment_id: int) -> str:
    return f"twin-appointment-{appointment_id}@secretary-twin"


@dataclass
class SyncReport:
    pushed: int = 0
    deleted_remote: int = 0
    busy_added: int = 0
    busy_removed: int = 0
    moved: int = 0
    cancelled: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class CalDavSync:
    def __init__(self, *, db: Database, calendars: Mapping[str, CalendarClient],
                 window_days: int = 90, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.calendars = dict(calendars)
        self.window = timedelta(days=window_days)
        self._now = now or (lambda: datetime.now(UTC))

    async def run(self, *, interval_s: float = 60.0, stop: asyncio.Event | None = None) -> None:
        """Sync every ``interval_s`` seconds until ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            report = await self.sync_once()
            if report.errors:
                logger.warning("CalDAV sync: %s", "; ".join(report.errors))
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass

    async def sync_once(self) -> SyncReport:
        report = SyncReport()
        for pid, calendar in self.calendars.items():
            try:
                await self._sync_practitioner(pid, calendar, report)
            except CalDavError as exc:
                report.errors.append(f"{pid}: {exc}")
        return report

    async def _sync_practitioner(self, pid: str, cal: CalendarClient, report: SyncReport) -> None:
        now = self._now()
        lo, hi = now - timedelta(days=1), now + self.window
        remote = await cal.events_between(lo, hi)
        ours = {e.appointment_id: e for e in remote if e.appointment_id is not None}
        foreign = {e.key: e for e in remote if e.appointment_id is None}
        actor = f"caldav:{pid}"

        # Appointments that vanished from the window: deleted or moved far away?
        async with self.db.session() as s:
            synced = (await s.scalars(select(Appointment).where(
                Appointment.practitioner_id == pid, Appointment.status == "booked",
                Appointment.external_uid.is_not(None), Appointment.sync_pending.is_(False),
                Appointment.start_at >= lo, Appointment.start_at < hi))).all()
        elsewhere: dict[int, RemoteEvent | None] = {}
        for a in synced:
            if a.id not in ours:
                elsewhere[a.id] = await cal.get_event(appointment_uid(a.id))

        async with self.db.write() as s:
            # Same lock as a booking: a move from the calendar never races a booking.
            await s.execute(select(Practitioner.id).where(Practitioner.id == pid)
                            .with_for_update())
            await self._pull_foreign(s, pid, foreign, lo, hi, report)
            rows = (await s.scalars(select(Appointment).where(
                Appointment.practitioner_id == pid,
                or_(Appointment.sync_pending.is_(True), Appointment.external_uid.is_not(None),
                    Appointment.status == "booked"),
                Appointment.end_at >= lo, Appointment.start_at < hi).with_for_update())).all()
            for a in rows:
                if a.status != "booked" or a.sync_pending or a.external_uid is None:
                    continue
                ev = ours.get(a.id) or elsewhere.get(a.id)
                if a.id in elsewhere and ev is None:
                    a.status, a.cancelled_at = "cancelled", datetime.now(UTC)
                    self._audit(s, actor, "appointment.cancel", a.id,
                                {"source": "deleted in the external calendar"})
                    report.cancelled += 1
                elif ev is not None and (ev.start != a.start_at or ev.end != a.end_at):
                    await self._apply_move(s, a, ev, actor, report)

        # Push (network) outside the transaction, then record what was sent.
        async with self.db.session() as s:
            todo = (await s.execute(select(Appointment, Patient, AppointmentType).join(
                Patient, Patient.id == Appointment.patient_id).join(
                AppointmentType, AppointmentType.code == Appointment.appointment_type).where(
                Appointment.practitioner_id == pid, Appointment.end_at >= lo,
                or_(Appointment.sync_pending.is_(True),
                    (Appointment.external_uid.is_(None)) & (Appointment.status == "booked"))
            ))).all()
        for a, patient, atype in todo:
            uid = appointment_uid(a.id)
            if a.status == "booked":
                etag = await cal.put_event(uid, build_event_ics(
                    uid=uid, start=a.start_at, end=a.end_at, appointment_id=a.id,
                    summary=f"{atype.label} - {patient.first_name} {patient.last_name}",
                    description=f"Rendez-vous pris par {a.created_by}"))
                report.pushed += 1
            else:
                await cal.delete_event(uid)
                etag = None
                report.deleted_remote += 1
            async with self.db.write() as s:
                row = await s.get(Appointment, a.id)
                if row is not None and row.start_at == a.start_at and row.status == a.status:
                    row.external_uid = uid if a.status == "booked" else row.external_uid
                    row.external_etag = etag
                    row.sync_pending = False

    async def _pull_foreign(self, s: Any, pid: str, foreign: dict[str, RemoteEvent],
                            lo: datetime, hi: datetime, report: SyncReport) -> None:
        existing = {b.uid: b for b in (await s.scalars(select(ExternalBusy).where(
            ExternalBusy.practitioner_id == pid, ExternalBusy.end_at >= lo,
            ExternalBusy.start_at < hi))).all()}
        for key, ev in foreign.items():
            row = existing.pop(key, None)
            if row is None:
                s.add(ExternalBusy(practitioner_id=pid, uid=key, start_at=ev.start,
                                   end_at=ev.end, summary=ev.summary[:500]))
                self._audit(s, f"caldav:{pid}", "busy.import", None,
                            {"uid": key, "start": ev.start.isoformat(), "end": ev.end.isoformat()})
                report.busy_added += 1
            elif (row.start_at, row.end_at, row.summary) != (ev.start, ev.end, ev.summary[:500]):
                row.start_at, row.end_at, row.summary = ev.start, ev.end, ev.summary[:500]
                self._audit(s, f"caldav:{pid}", "busy.update", None, {"uid": key})
        for row in existing.values():
            await s.delete(row)
            self._audit(s, f"caldav:{pid}", "busy.remove", None, {"uid": row.uid})
            report.busy_removed += 1

    async def _apply_move(self, s: Any, a: Appointment, ev: RemoteEvent, actor: str,
                          report: SyncReport) -> None:
        clash = (await s.execute(select(Appointment.id).where(
            Appointment.practitioner_id == a.practitioner_id, Appointment.status == "booked",
            Appointment.id != a.id, Appointment.start_at < ev.end,
            Appointment.end_at > ev.start).limit(1))).first()
        if clash is not None:
            a.sync_pending = True  # put our version back in the calendar
            s.add(StaffMessage(
                kind="other", created_by=actor, created_at=datetime.now(UTC),
                practitioner_id=a.practitioner_id, patient_id=a.patient_id, urgent=True,
                body=(f"Appointment {a.id} was moved in the external calendar to "
                      f"{ev.start.isoformat()}, which overlaps appointment {clash[0]}; "
                      "the move was not applied.")))
            self._audit(s, actor, "appointment.move_refused", a.id,
                        {"to": ev.start.isoformat(), "clash": clash[0]})
            report.conflicts += 1
            return
        old = a.start_at.isoformat()
        a.start_at, a.end_at = ev.start, ev.end
        self._audit(s, actor, "appointment.reschedule", a.id, {
            "from": {"start": old}, "to": {"start": ev.start.isoformat()},
            "source": "moved in the external calendar"})
        report.moved += 1

    @staticmethod
    def _audit(s: Any, actor: str, action: str, appointment_id: int | None,
               details: dict[str, Any]) -> None:
        s.add(AuditLog(at=datetime.now(UTC), actor=actor, call_id=None, action=action,
                       entity="appointment" if appointment_id is not None else "external_busy",
                       entity_id=str(appointment_id) if appointment_id is not None else None,
                       details=details))
