"""The practice agenda and patient records: SQLAlchemy models, booking service, CalDAV sync.

Public API (all importable from ``records``)::

    db = Database(url="sqlite+aiosqlite:///var/agenda.db")   # or postgresql+asyncpg://...
    await db.migrate()                  # Alembic upgrade head (idempotent); = create_schema()
    await seed_demo(db)                 # demo practice from knowledge/practices/demo.yaml
    svc = BookingService(db=db, tz="Europe/Paris", now=None)

    await svc.list_practitioners()      -> list[PractitionerInfo]
    await svc.list_appointment_types()  -> list[AppointmentTypeInfo]
    await svc.resolve_practitioner("docteur Adad") -> PractitionerInfo   # raises RecordsError
    await svc.find_free_slots(practitioner=None, appointment_type=None, date_from=None,
                              date_to=None, day_part=None, weekdays=None, limit=5)
                                        -> list[Slot]                 # raises RecordsError
    await svc.verify_identity(full_name="Paul Girard", birth_date="quatre juin 78",
                              actor="assistant:call-1", call_id="call-1") -> IdentityCheck
    await svc.book(practitioner_id="durand", appointment_type="consultation", start=dt,
                   patient=PatientDetails(...) or a VerifiedPatient, actor="assistant:call-1",
                   call_id="call-1", guardian=None)
                                        -> BookingOutcome  (booked|slot_taken|invalid|unavailable)
    await svc.upcoming_appointments(patient=verified)            -> list[AppointmentInfo]
    await svc.cancel(appointment_id=, actor=, patient=verified, call_id=None, reason="")
                                        -> CancelOutcome
    await svc.reschedule(appointment_id=, new_start=, actor=, patient=verified, call_id=None,
                         practitioner_id=None) -> BookingOutcome
    await svc.leave_message(kind="callback", body=..., actor=..., call_id=None, patient=None,
                            caller_name=None, caller_birth_date=None, callback_number=None,
                            practitioner_id=None, urgent=False) -> MessageOutcome
    await svc.start_call(call_id=, caller_number=None) / end_call(call_id=, outcome=,
                          handoff_reason=None, summary=None)      -> bool (False: DB down)
    await svc.day_agenda(day, practitioner=None)                 -> list[AppointmentInfo]
    await svc.add_absence(practitioner_id=, start=, end=, actor="staff:x", reason="")
                                        -> AbsenceResult (clashing appointment ids)

    parse_spoken_date("douze mars quatre-vingt-cinq") -> date(1985, 3, 12) | None

    # CalDAV, both ways (records.caldav_client / records.caldav_sync):
    CalDavSync(db=db, calendars={"durand": CalDavCalendar(url=..., username=..., password=...)})
        await sync.sync_once() -> SyncReport;  await sync.run(interval_s=60, stop=event)

Reads (find_free_slots, upcoming_appointments, ...) raise ``DatabaseUnavailable`` when the
database cannot be reached; verify_identity then returns status ``unavailable``.

Business failures never raise from book/cancel/reschedule/leave_message: they come back as
a status with a short English ``message``. ``actor`` is ``assistant:<call id>`` or
``staff:<name>`` and is written to the audit log with every change.
"""

from records.db import Database, DatabaseUnavailable
from records.schemas import (
    AbsenceResult,
    AmbiguousPractitionerError,
    AppointmentInfo,
    AppointmentTypeInfo,
    BookingOutcome,
    CancelOutcome,
    DependentInfo,
    IdentityCheck,
    InvalidRequestError,
    MessageOutcome,
    PatientDetails,
    PractitionerInfo,
    RecordsError,
    Slot,
    UnknownAppointmentTypeError,
    UnknownPractitionerError,
    VerifiedPatient,
)
from records.seed import seed_demo
from records.service import BookingService
from records.spoken_dates import SpokenDateError, parse_spoken_date, parse_spoken_date_strict

__all__ = [
    "AbsenceResult",
    "AmbiguousPractitionerError",
    "AppointmentInfo",
    "AppointmentTypeInfo",
    "BookingOutcome",
    "BookingService",
    "CancelOutcome",
    "Database",
    "DatabaseUnavailable",
    "DependentInfo",
    "IdentityCheck",
    "InvalidRequestError",
    "MessageOutcome",
    "PatientDetails",
    "PractitionerInfo",
    "RecordsError",
    "Slot",
    "SpokenDateError",
    "UnknownAppointmentTypeError",
    "UnknownPractitionerError",
    "VerifiedPatient",
    "parse_spoken_date",
    "parse_spoken_date_strict",
    "seed_demo",
]
