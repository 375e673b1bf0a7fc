"""The booking service used by the assistant's tools and by the staff.

Every write runs in one database transaction together with its audit-log row. The
no-double-booking guarantee comes from the database: the booking transaction locks the
practitioner row (``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on
SQLite), checks for overlaps, then inserts; a partial unique index on
``(practitioner_id, start_at) WHERE status = 'booked'`` backs it up. It therefore holds
across processes and machines sharing the PostgreSQL database.

Patients only see or change their own appointments (or their dependents') through a
:class:`~records.schemas.VerifiedPatient` returned by :meth:`BookingService.verify_identity`.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from records.db import Database, default_data_dir
from records.guard import is_unavailable
from records.journal import Journal
from records.models import (
    Absence,
    Appointment,
    ExternalBusy,
    Patient,
    Practitioner,
)
from records.patients import (
    PatientTokens,
    failed_identity_checks,
    find_or_create_patient,
    known_patient,
    match_identity,
    patient_problem,
    to_verified,
)
from records.reference import Reference, load_reference
from records.schemas import (
    ACTOR_STAFF_PREFIX,
    AppointmentInfo,
    AppointmentTypeInfo,
    BookingOutcome,
    CancelOutcome,
    IdentityCheck,
    InvalidRequestError,
    PatientDetails,
    PractitionerInfo,
    RecordsError,
    Slot,
    VerifiedPatient,
)
from records.slots import DayPart, Interval, candidate_starts, fits_schedule
from records.spoken_dates import SpokenDateError, parse_spoken_date_strict
from records.spool import Spool

__all__ = ["MAX_IDENTITY_FAILURES", "BookingService"]

logger = logging.getLogger(__name__)

#: Failed identity checks allowed per call before the service refuses to check more
#: (stops a caller from guessing birth dates); the assistant should hand over then.
MAX_IDENTITY_FAILURES = 3

class BookingService(Journal):
    """Slots, bookings, identity checks, messages and call records of one practice."""

    def __init__(self, *, db: Database, tz: str = "Europe/Paris",
                 now: Callable[[], datetime] | None = None, min_notice_min: int = 30,
                 horizon_days: int = 60, cancellation_notice_hours: int = 24,
                 spool_path: str | Path | None = None,
                 secret: bytes | None = None) -> None:
        self.db = db
        self.tz = ZoneInfo(tz)
        self._now = now or (lambda: datetime.now(UTC))
        self.min_notice = timedelta(minutes=min_notice_min)
        self.horizon_days = horizon_days
        self.cancellation_notice = timedelta(hours=cancellation_notice_hours)
        self.spool = Spool(path=spool_path or default_data_dir() / "records-spool.jsonl")
        self._tokens = PatientTokens(secret=secret or os.urandom(32))

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        value = self._now()
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        return value.astimezone(self.tz)

    def _local(self, value: datetime | str) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise InvalidRequestError(f"{value!r} is not a date and time") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        return value.astimezone(self.tz)

    def _slot(self, ref: Reference, appt: Appointment) -> Slot:
        return Slot(practitioner_id=appt.practitioner_id,
                    practitioner_name=ref.practitioners[appt.practitioner_id].display_name,
                    appointment_type=appt.appointment_type,
                    start=appt.start_at.astimezone(self.tz), end=appt.end_at.astimezone(self.tz))

    # ------------------------------------------------------------------ reference data

    async def list_practitioners(self) -> list[PractitionerInfo]:
        async with self.db.session() as s:
            ref = await load_reference(s)
        return [PractitionerInfo(id=p.id, display_name=p.display_name, specialty=p.specialty,
                                 appointment_types=tuple(t.code for t in ref.types_of(p.id)))
                for p in ref.practitioners.values() if p.active]

    async def list_appointment_types(self) -> list[AppointmentTypeInfo]:
        async with self.db.session() as s:
            ref = await load_reference(s)
        return [AppointmentTypeInfo(code=t.code, label=t.label, duration_min=t.duration_min,
                                    practitioner_ids=tuple(ref.doers.get(t.code, [])),
                                    new_patients_only=t.new_patients_only,
                                    follow_up_only=t.follow_up_only)
                for t in sorted(ref.types.values(), key=lambda t: (t.position, t.code))]

    async def resolve_practitioner(self, spoken: str) -> PractitionerInfo:
        """The practitioner meant by a spoken name; raises ``UnknownPractitionerError``..."""
        async with self.db.session() as s:
            ref = await load_reference(s)
        p = ref.practitioners[ref.resolve_practitioner(spoken)]
        return PractitionerInfo(id=p.id, display_name=p.display_name, specialty=p.specialty,
                                appointment_types=tuple(t.code for t in ref.types_of(p.id)))

    # ------------------------------------------------------------------ slots

    async def find_free_slots(self, *, practitioner: str | None = None,
                              appointment_type: str | None = None,
                              date_from: date | None = None, date_to: date | None = None,
                              day_part: DayPart | None = None,
                              weekdays: Collection[int] | None = None,
                              limit: int = 5) -> list[Slot]:
        """Free slots, earliest first; raises ``RecordsError`` on bad parameters."""
        if day_part not in (None, "morning", "afternoon"):
            raise InvalidRequestError(f"day_part must be 'morning' or 'afternoon', not {day_part!r}")
        if weekdays is not None and any(not isinstance(w, int) or not 0 <= w <= 6
                                        for w in weekdays):
            raise InvalidRequestError(f"weekdays must be 0 (Monday) to 6 (Sunday): {weekdays!r}")
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        now = self.now()
        today = now.date()
        start_day = max(date_from or today, today)
        end_day = date_to or (start_day + timedelta(days=self.horizon_days))
        if date_to is not None and date_to < (date_from or today):
            raise InvalidRequestError(f"date_to {date_to} is before date_from {date_from or today}")
        if end_day < today:
            return []
        if (end_day - start_day).days > 366:
            raise InvalidRequestError("search at most one year at a time")

        async with self.db.session() as s:
            ref = await load_reference(s)
            pids, durations = self._targets(ref, practitioner, appointment_type)
            busy = await self._busy(s, pids, start_day, end_day + timedelta(days=1))
        return self._compute_slots(ref, pids, durations, start_day, end_day, busy, now,
                                   day_part, weekdays, limit)

    def _targets(self, ref: Reference, practitioner: str | None,
                 appointment_type: str | None) -> tuple[list[str], dict[str, str]]:
        """Practitioner ids to search and the appointment type each one is searched for."""
        if practitioner:
            pids = [ref.resolve_practitioner(practitioner)]
        else:
            pids = [pid for pid, p in ref.practitioners.items() if p.active]
        codes: dict[str, str] = {}
        if appointment_type:
            code = ref.appointment_type(appointment_type).code
            if practitioner:
                ref.check_can_do(pids[0], code)
            pids = [p for p in pids if p in ref.doers.get(code, [])]
            codes = dict.fromkeys(pids, code)
        else:
            for pid in pids:
                types = ref.types_of(pid)
                if types:
                    codes[pid] = types[0].code
            pids = [p for p in pids if p in codes]
        return pids, codes

    async def _busy(self, s: AsyncSession, pids: list[str], first: date,
                    last: date) -> dict[str, list[Interval]]:
        lo = datetime.combine(first, datetime.min.time(), tzinfo=self.tz)
        hi = datetime.combine(last, datetime.min.time(), tzinfo=self.tz)
        busy: dict[str, list[Interval]] = defaultdict(list)
        for model in (Appointment, Absence, ExternalBusy):
            query = select(model.practitioner_id, model.start_at, model.end_at).where(
                model.practitioner_id.in_(pids), model.start_at < hi, model.end_at > lo)
            if model is Appointment:
                query = query.where(Appointment.status == "booked")
            for pid, start, end in (await s.execute(query)).all():
                busy[pid].append(Interval(start.astimezone(self.tz), end.astimezone(self.tz)))
        for intervals in busy.values():
            intervals.sort(key=lambda i: i.start)
        return busy

    def _compute_slots(self, ref: Reference, pids: list[str], codes: dict[str, str],
                       start_day: date, end_day: date, busy: dict[str, list[Interval]],
                       now: datetime, day_part: DayPart | None,
                       weekdays: Collection[int] | None, limit: int) -> list[Slot]:
        out: list[Slot] = []
        not_before = now + self.min_notice
        day = start_day
        while day <= end_day and len(out) < limit:
            if ref.closed_on(day) is None:
                today_slots: list[Slot] = []
                for pid in pids:
                    t = ref.types[codes[pid]]
                    duration = timedelta(minutes=t.duration_min)
                    name = ref.practitioners[pid].display_name
                    for start in candidate_starts(
                            day=day, ranges=ref.schedules[pid].get(day.weekday(), []),
                            duration=duration, busy=busy.get(pid, []), tz=self.tz,
                            not_before=not_before, day_part=day_part, weekdays=weekdays):
                        today_slots.append(Slot(pid, name, t.code, start, start + duration))
                today_slots.sort(key=lambda sl: (sl.start, sl.practitioner_id))
                out.extend(today_slots[: limit - len(out)])
            day += timedelta(days=1)
        return out

    async def _slot_problem(self, s: AsyncSession, ref: Reference, pid: str, code: str,
                            start: datetime, end: datetime,
                            ignore_appointment: int | None = None) -> tuple[str, str] | None:
        """``(status, reason)`` if [start, end) cannot be booked for ``pid``, else None."""
        now = self.now()
        if start <= now:
            return "invalid", f"{start:%Y-%m-%d %H:%M} is in the past"
        if start.minute % 5 or start.second or start.microsecond:
            return "invalid", f"{start:%H:%M:%S} is not on the 5-minute grid"
        closure = ref.closed_on(start.date())
        if closure is not None:
            return "invalid", f"the practice is closed on {start:%Y-%m-%d} ({closure.reason})"
        ranges = ref.schedules[pid].get(start.weekday(), [])
        if not fits_schedule(start, end, ranges):
            hours = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in ranges) or "no consultations"
            return "invalid", (f"{start:%A %Y-%m-%d %H:%M}-{end:%H:%M} is outside "
                               f"{ref.practitioners[pid].display_name}'s hours ({hours})")
        for model, label in ((Absence, "away"), (ExternalBusy, "busy in the external agenda")):
            hit = (await s.execute(select(model.id).where(
                model.practitioner_id == pid, model.start_at < end,
                model.end_at > start).limit(1))).first()
            if hit is not None:
                return "invalid", f"{ref.practitioners[pid].display_name} is {label} then"
        query = select(Appointment.id).where(
            Appointment.practitioner_id == pid, Appointment.status == "booked",
            Appointment.start_at < end, Appointment.end_at > start)
        if ignore_appointment is not None:
            query = query.where(Appointment.id != ignore_appointment)
        if (await s.execute(query.limit(1))).first() is not None:
            return "slot_taken", f"{start:%Y-%m-%d %H:%M} with {pid} is already taken"
        return None

    @staticmethod
    async def _lock_practitioners(s: AsyncSession, pids: Collection[str]) -> None:
        # Sorted, so two transactions locking two practitioners never deadlock.
        for pid in sorted(set(pids)):
            await s.execute(select(Practitioner.id).where(Practitioner.id == pid)
                            .with_for_update())

    # ------------------------------------------------------------------ identity

    async def verify_identity(self, *, full_name: str, birth_date: str | date,
                              actor: str = "assistant:unknown",
                              call_id: str | None = None) -> IdentityCheck:
        """Check a caller's name and birth date (spoken forms accepted)."""
        if isinstance(birth_date, date):
            born = birth_date
        else:
            try:
                born = parse_spoken_date_strict(birth_date, today=self.now().date())
            except SpokenDateError as exc:
                return IdentityCheck(status="invalid_date", message=str(exc))
        if born > self.now().date():
            return IdentityCheck(status="invalid_date", birth_date=born,
                                 message=f"birth date {born} is in the future")
        if not full_name or not full_name.strip():
            return IdentityCheck(status="not_verified", birth_date=born, message="no name given")
        try:
            return await self._verify(full_name, born, str(birth_date), actor, call_id)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            logger.warning("identity check impossible, database unavailable: %s", exc)
            return IdentityCheck(status="unavailable", birth_date=born,
                                 message="records database unavailable; cannot check identity")

    async def _verify(self, full_name: str, born: date, said: str, actor: str,
                      call_id: str | None) -> IdentityCheck:
        async with self.db.write() as s:
            if call_id is not None and await failed_identity_checks(s, call_id) >= MAX_IDENTITY_FAILURES:
                self._audit(s, actor=actor, action="identity.refused", entity="patient",
                            entity_id=None, call_id=call_id,
                            details={"name_given": full_name, "birth_date_given": said})
                return IdentityCheck(status="too_many_attempts", birth_date=born, message=(
                    f"{MAX_IDENTITY_FAILURES} failed identity checks in this call; "
                    "hand over to the staff"))
            match = await match_identity(s, full_name=full_name, birth_date=born)
            self._audit(s, actor=actor, action=f"identity.{match.status}", entity="patient",
                        entity_id=match.patient.id if match.patient else None, call_id=call_id,
                        details={"name_given": full_name, "birth_date_given": said})
            if match.status == "verified" and match.patient is not None:
                verified = await to_verified(s, match.patient, self._tokens)
                return IdentityCheck(status="verified", patient=verified, birth_date=born,
                                     message="identity verified")
        if match.status == "ambiguous":
            return IdentityCheck(status="ambiguous", birth_date=born,
                                 message="several patients match; staff must check")
        return IdentityCheck(status="not_verified", birth_date=born,
                             message="no patient on file with this name and birth date")

    async def _scope(self, s: AsyncSession, patient: VerifiedPatient) -> set[int]:
        ids = self._allowed_ids(patient)
        children = (await s.scalars(select(Patient.id).where(
            Patient.guardian_id == patient.patient_id))).all()
        return ids | set(children)

    # ------------------------------------------------------------------ booking

    async def book(self, *, practitioner_id: str, appointment_type: str,
                   start: datetime | str, patient: PatientDetails | VerifiedPatient,
                   actor: str, call_id: str | None = None,
                   guardian: VerifiedPatient | None = None) -> BookingOutcome:
        """Book a slot; never raises for expected failures (see ``BookingOutcome``).

        ``patient``: the details the caller gave (the patient is found by exact name and
        birth date, or created), or a ``VerifiedPatient`` (books for that very record).
        ``guardian``: a verified parent booking for a child; the child is matched among
        their dependents (tolerant name, exact birth date) or created and linked to them.
        """
        patient_id = None
        try:
            self._check_actor(actor)
            when = self._local(start)
            if isinstance(patient, VerifiedPatient):
                patient_id = next(iter(self._allowed_ids(patient)))
                patient = PatientDetails(patient.first_name, patient.last_name,
                                         patient.birth_date)
            problem = patient_problem(patient, self.now().date())
            if problem:
                return BookingOutcome(status="invalid", message=problem)
            guardian_id = None
            if guardian is not None:
                guardian_id = next(iter(self._allowed_ids(guardian)))
        except RecordsError as exc:
            return BookingOutcome(status="invalid", message=str(exc))
        try:
            return await self._book(practitioner_id, appointment_type, when, patient, actor,
                                    call_id, guardian_id, patient_id)
        except IntegrityError:
            return BookingOutcome(status="slot_taken",
                                  message=f"{when:%Y-%m-%d %H:%M} was booked by someone else")
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.spool.append("booking_request", {
                "actor": actor, "call_id": call_id, "practitioner": practitioner_id,
                "appointment_type": appointment_type, "start": when.isoformat(),
                "patient": {"first_name": patient.first_name, "last_name": patient.last_name,
                            "birth_date": str(patient.birth_date), "phone": patient.phone},
                "error": str(exc)[:300]})
            return BookingOutcome(status="unavailable", message=(
                "records database unavailable: nothing booked, request kept for the staff"))

    async def _book(self, practitioner: str, code: str, when: datetime,
                    details: PatientDetails, actor: str, call_id: str | None,
                    guardian_id: int | None, patient_id: int | None) -> BookingOutcome:
        async with self.db.write() as s:
            ref = await load_reference(s)
            try:
                pid = ref.resolve_practitioner(practitioner)
                atype = ref.appointment_type(code)
                ref.check_can_do(pid, atype.code)
            except RecordsError as exc:
                return BookingOutcome(status="invalid", message=str(exc))
            end = when + timedelta(minutes=atype.duration_min)
            await self._lock_practitioners(s, [pid])
            problem = await self._slot_problem(s, ref, pid, atype.code, when, end)
            if problem is not None:
                status, reason = problem
                return BookingOutcome(status=status, message=reason)  # type: ignore[arg-type]
            try:
                known = await known_patient(s, details, patient_id, guardian_id)
                person, how = (known, "existing") if known is not None else \
                    await find_or_create_patient(s, details, now=self.now(),
                                                 guardian_id=guardian_id)
            except LookupError as exc:
                msg = self._new_message(
                    s, kind="callback", actor=actor, call_id=call_id,
                    body=(f"Booking not made: {exc}. Caller asked for {atype.label} with "
                          f"{ref.practitioners[pid].display_name} on {when:%Y-%m-%d %H:%M}."),
                    caller_name=f"{details.first_name} {details.last_name}",
                    caller_birth_date=str(details.birth_date), callback_number=details.phone,
                    practitioner_id=pid)
                await s.flush()
                return BookingOutcome(status="invalid", staff_message_id=msg.id, message=(
                    f"{exc}; not booked, a message was left for the staff"))
            rule = await self._type_rule_problem(s, atype, person.id, how)
            if rule:
                return BookingOutcome(status="invalid", message=rule)
            appt = Appointment(practitioner_id=pid, appointment_type=atype.code,
                               patient_id=person.id, start_at=when, end_at=end, status="booked",
                               created_by=actor, call_id=call_id, created_at=datetime.now(UTC))
            s.add(appt)
            await s.flush()
            self._audit(s, actor=actor, action="appointment.book", entity="appointment",
                        entity_id=appt.id, call_id=call_id, details={
                            "practitioner": pid, "type": atype.code, "start": when.isoformat(),
                            "patient_id": person.id, "patient": how})
            slot = self._slot(ref, appt)
        return BookingOutcome(status="booked", appointment_id=appt.id, slot=slot,
                              message=f"booked {atype.code} with {pid} at {when:%Y-%m-%d %H:%M}")

    @staticmethod
    async def _type_rule_problem(s: AsyncSession, atype: Any, patient_id: int,
                                 how: str) -> str | None:
        if not (atype.new_patients_only or atype.follow_up_only):
            return None
        from records.models import AppointmentTypePractitioner as Link

        doers = select(Link.practitioner_id).where(Link.appointment_type == atype.code)
        seen = how == "existing" and (await s.execute(select(Appointment.id).where(
            Appointment.patient_id == patient_id, Appointment.status == "booked",
            Appointment.practitioner_id.in_(doers)).limit(1))).first() is not None
        if atype.new_patients_only and seen:
            return f"{atype.code} is for new patients only; this patient is already followed"
        if atype.follow_up_only and not seen:
            return f"{atype.code} is for patients already followed; book a first visit instead"
        return None

    # ------------------------------------------------------------------ patient's appointments

    async def upcoming_appointments(self, *, patient: VerifiedPatient,
                                    include_dependents: bool = True) -> list[AppointmentInfo]:
        """The verified patient's (and their children's) future booked appointments."""
        self._allowed_ids(patient)
        async with self.db.session() as s:
            ids = await self._scope(s, patient) if include_dependents else {patient.patient_id}
            return await self._appointments(s, Appointment.patient_id.in_(ids),
                                            Appointment.status == "booked",
                                            Appointment.end_at > self.now())

    async def _appointments(self, s: AsyncSession, *where: Any) -> list[AppointmentInfo]:
        ref = await load_reference(s)
        rows = (await s.execute(select(Appointment, Patient).join(
            Patient, Patient.id == Appointment.patient_id).where(*where).order_by(
            Appointment.start_at, Appointment.practitioner_id))).all()
        return [AppointmentInfo(
            id=a.id, patient_id=p.id, patient_name=p.full_name, practitioner_id=a.practitioner_id,
            practitioner_name=ref.practitioners[a.practitioner_id].display_name,
            appointment_type=a.appointment_type,
            appointment_label=ref.types[a.appointment_type].label,
            start=a.start_at.astimezone(self.tz), end=a.end_at.astimezone(self.tz),
            status=a.status, created_by=a.created_by) for a, p in rows]

    async def _owned(self, s: AsyncSession, appointment_id: int,
                     patient: VerifiedPatient | None, actor: str) -> Appointment | str:
        """The live appointment if the actor may change it, else a reason."""
        appt = await s.get(Appointment, appointment_id, with_for_update=True,
                           populate_existing=True)
        if patient is None:
            if not actor.startswith(ACTOR_STAFF_PREFIX):
                return "only staff may change an appointment without a verified patient"
        elif appt is not None and appt.patient_id not in await self._scope(s, patient):
            appt = None  # someone else's: say "not found", reveal nothing
        if appt is None or appt.status != "booked":
            return f"no upcoming appointment {appointment_id} for this patient"
        if appt.start_at <= self.now():
            return f"appointment {appointment_id} is in the past"
        return appt

    async def cancel(self, *, appointment_id: int, actor: str,
                     patient: VerifiedPatient | None = None, call_id: str | None = None,
                     reason: str = "") -> CancelOutcome:
        """Cancel an appointment of the verified patient (or any, for a ``staff:`` actor)."""
        try:
            self._check_actor(actor)
            if patient is not None:
                self._allowed_ids(patient)
            async with self.db.write() as s:
                appt = await self._owned(s, appointment_id, patient, actor)
                if isinstance(appt, str):
                    status = "invalid" if appt.startswith("only staff") else "not_found"
                    return CancelOutcome(status=status, message=appt)  # type: ignore[arg-type]
                appt.status = "cancelled"
                appt.cancelled_at = datetime.now(UTC)
                appt.sync_pending = appt.external_uid is not None
                late = appt.start_at - self.now() < self.cancellation_notice
                self._audit(s, actor=actor, action="appointment.cancel", entity="appointment",
                            entity_id=appt.id, call_id=call_id, details={
                                "start": appt.start_at.isoformat(), "reason": reason,
                                "late": late})
            return CancelOutcome(status="cancelled", appointment_id=appointment_id, late=late,
                                 message=f"cancelled appointment {appointment_id}"
                                 + (" (late cancellation)" if late else ""))
        except RecordsError as exc:
            return CancelOutcome(status="invalid", message=str(exc))
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.spool.append("cancel_request", {
                "actor": actor, "call_id": call_id, "appointment_id": appointment_id,
                "reason": reason, "error": str(exc)[:300]})
            return CancelOutcome(status="unavailable", appointment_id=appointment_id, message=(
                "records database unavailable: nothing cancelled, request kept for the staff"))

    async def reschedule(self, *, appointment_id: int, new_start: datetime | str, actor: str,
                         patient: VerifiedPatient | None = None, call_id: str | None = None,
                         practitioner_id: str | None = None) -> BookingOutcome:
        """Move an appointment atomically: the new slot is taken and the old one freed, or
        nothing changes. Same appointment type; same practitioner unless one is given."""
        try:
            self._check_actor(actor)
            if patient is not None:
                self._allowed_ids(patient)
            when = self._local(new_start)
            return await self._reschedule(appointment_id, when, actor, patient, call_id,
                                          practitioner_id)
        except RecordsError as exc:
            return BookingOutcome(status="invalid", appointment_id=appointment_id,
                                  message=str(exc))
        except IntegrityError:
            return BookingOutcome(status="slot_taken", appointment_id=appointment_id,
                                  message="the new slot was booked by someone else")
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.spool.append("reschedule_request", {
                "actor": actor, "call_id": call_id, "appointment_id": appointment_id,
                "new_start": str(new_start), "error": str(exc)[:300]})
            return BookingOutcome(status="unavailable", appointment_id=appointment_id, message=(
                "records database unavailable: nothing changed, request kept for the staff"))

    async def _reschedule(self, appointment_id: int, when: datetime, actor: str,
                          patient: VerifiedPatient | None, call_id: str | None,
                          practitioner: str | None) -> BookingOutcome:
        async with self.db.write() as s:
            ref = await load_reference(s)
            current = await s.get(Appointment, appointment_id)
            old_pid = current.practitioner_id if current is not None else None
            pid = ref.resolve_practitioner(practitioner) if practitioner else old_pid
            await self._lock_practitioners(s, [p for p in (old_pid, pid) if p])
            appt = await self._owned(s, appointment_id, patient, actor)
            if isinstance(appt, str) or pid is None:
                return BookingOutcome(status="not_found", appointment_id=appointment_id,
                                      message=str(appt))
            ref.check_can_do(pid, appt.appointment_type)
            end = when + timedelta(minutes=ref.types[appt.appointment_type].duration_min)
            problem = await self._slot_problem(s, ref, pid, appt.appointment_type, when, end,
                                               ignore_appointment=appt.id)
            if problem is not None:
                status, reason = problem
                return BookingOutcome(status=status, appointment_id=appointment_id,  # type: ignore[arg-type]
                                      message=reason)
            old = {"practitioner": appt.practitioner_id, "start": appt.start_at.isoformat()}
            appt.practitioner_id, appt.start_at, appt.end_at = pid, when, end
            appt.sync_pending = appt.external_uid is not None
            await s.flush()
            self._audit(s, actor=actor, action="appointment.reschedule", entity="appointment",
                        entity_id=appt.id, call_id=call_id, details={
                            "from": old, "to": {"practitioner": pid,
                                                "start": when.isoformat()}})
            slot = self._slot(ref, appt)
        return BookingOutcome(status="booked", appointment_id=appointment_id, slot=slot,
                              message=f"moved appointment {appointment_id} to "
                                      f"{when:%Y-%m-%d %H:%M} with {pid}")

    # ------------------------------------------------------------------ staff views

    async def day_agenda(self, day: date, *, practitioner: str | None = None,
                         include_cancelled: bool = False) -> list[AppointmentInfo]:
        """Staff view: every appointment of a day (all patients)."""
        lo = datetime.combine(day, datetime.min.time(), tzinfo=self.tz)
        where: list[Any] = [Appointment.start_at >= lo,
                            Appointment.start_at < lo + timedelta(days=1)]
        if not include_cancelled:
            where.append(Appointment.status == "booked")
        async with self.db.session() as s:
            if practitioner:
                where.append(Appointment.practitioner_id
                             == (await load_reference(s)).resolve_practitioner(practitioner))
            return await self._appointments(s, *where)

