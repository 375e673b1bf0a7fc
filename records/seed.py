"""Seed a practice from its profile YAML; fictional demo patients for the demo practice only.

``await seed_profile(db, profile)`` (``twin practice init``) is idempotent and generic:
practitioners, appointment types, schedules and closures are upserted from any valid
profile, and nothing else is written. ``await seed_demo(db)`` does that for the demo
practice (``knowledge/practices/demo.yaml``) and adds its fictional patients, each with one
upcoming appointment only if they have none; with a profile that is not the demo's it
seeds the practice alone. Demo data belongs to ``twin demo``, the scenario suite and tests.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from records.db import Database
from records.models import (
    Appointment,
    AppointmentType,
    AppointmentTypePractitioner,
    AuditLog,
    Closure,
    Patient,
    Practitioner,
    ScheduleRange,
)
from records.names import name_key
from records.schemas import PatientDetails

if TYPE_CHECKING:
    from knowledge.profile import PracticeProfile

__all__ = ["DEMO_PATIENTS", "demo_patients_fit", "seed_demo", "seed_profile"]

logger = logging.getLogger(__name__)

SEED_ACTOR = "staff:seed"

# (first, last, birth date, phone, guardian index, practitioner, type, days ahead, slot index)
DEMO_PATIENTS: tuple[tuple[str, str, date, str | None, int | None, str, str, int, int], ...] = (
    ("Paul", "Girard", date(1978, 6, 4), "06 45 12 33 98", None, "morel", "consultation", 3, 2),
    ("Sophie", "Laurent", date(1991, 2, 22), "06 12 98 45 21", None, "haddad",
     "dermato_premiere", 5, 1),
    ("Nadia", "Benali", date(1983, 9, 9), "07 61 22 80 14", None, "morel", "consultation", 6, 4),
    ("Léa", "Laurent", date(2018, 5, 10), None, 1, "morel", "consultation_enfant", 8, 3),
)


def _load_profile(path: Path | None) -> PracticeProfile:
    from knowledge.profile import default_profile_path, load_profile

    return load_profile(path or default_profile_path())


async def seed_profile(db: Database, profile: PracticeProfile) -> dict[str, int]:
    """Upsert practitioners, appointment types, weekly schedules and closures (idempotent;
    no patient, no appointment). Returns how many of each the profile has."""
    async with db.write() as s:
        for p in profile.practitioners:
            row = await s.get(Practitioner, p.id) or Practitioner(id=p.id)
            row.title, row.first_name, row.last_name = p.title, p.first_name, p.last_name
            row.specialty, row.active = p.specialty, True
            s.add(row)
        await s.flush()
        for i, t in enumerate(profile.appointment_types):
            row_t = await s.get(AppointmentType, t.code) or AppointmentType(code=t.code)
            row_t.label, row_t.duration_min, row_t.position = t.label, t.duration_min, i
            row_t.new_patients_only, row_t.follow_up_only = t.new_patients_only, t.follow_up_only
            s.add(row_t)
        await s.flush()
        codes = [t.code for t in profile.appointment_types]
        await s.execute(delete(AppointmentTypePractitioner).where(
            AppointmentTypePractitioner.appointment_type.in_(codes)))
        for t in profile.appointment_types:
            for pid in t.practitioners:
                s.add(AppointmentTypePractitioner(appointment_type=t.code, practitioner_id=pid))
        ids = [p.id for p in profile.practitioners]
        await s.execute(delete(ScheduleRange).where(ScheduleRange.practitioner_id.in_(ids)))
        for p in profile.practitioners:
            for weekday, ranges in enumerate(p.schedule.days):
                for r in ranges:
                    s.add(ScheduleRange(practitioner_id=p.id, weekday=weekday,
                                        start_time=r.start, end_time=r.end))
        existing = {(c.start_date, c.end_date) for c in (await s.scalars(select(Closure))).all()}
        for c in profile.closures:
            if (c.start, c.end) not in existing:
                s.add(Closure(start_date=c.start, end_date=c.end, reason=c.reason))
        s.add(AuditLog(at=datetime.now(UTC), actor=SEED_ACTOR, call_id=None,
                       action="seed.profile", entity="practice", entity_id=profile.practice.id,
                       details={"source": profile.source}))
    return {"practitioners": len(profile.practitioners),
            "appointment_types": len(profile.appointment_types),
            "schedule_ranges": sum(len(r) for p in profile.practitioners for r in p.schedule.days),
            "closures": len(profile.closures)}


def demo_patients_fit(profile: PracticeProfile) -> bool:
    """Whether the profile has the practitioners and types the demo patients are booked with."""
    ids = {p.id for p in profile.practitioners}
    codes = {t.code for t in profile.appointment_types}
    return all(pid in ids and code in codes for *_, pid, code, _a, _i in DEMO_PATIENTS)


async def seed_demo(db: Database, *, profile_path: str | Path | None = None,
                    today: date | None = None) -> int:
    """Seed the demo practice and patients (idempotent); returns the number of demo
    patients (0 for a profile that is not the demo's: its practice alone is seeded)."""
    from records.service import BookingService

    profile = _load_profile(Path(profile_path) if profile_path else None)
    await seed_profile(db, profile)
    if not demo_patients_fit(profile):
        logger.info("practice %s seeded without demo patients (not the demo practice)",
                    profile.practice.id)
        return 0
    today = today or date.today()
    tz = profile.practice.timezone
    service = BookingService(db=db, tz=tz, now=lambda: datetime.combine(
        today, time(7, 0), tzinfo=profile.practice.tzinfo))

    created: list[Patient] = []
    async with db.write() as s:
        for first, last, born, phone, guardian, *_ in DEMO_PATIENTS:
            key = name_key(f"{first} {last}")
            row = (await s.scalars(select(Patient).where(
                Patient.name_key == key, Patient.birth_date == born))).first()
            if row is None:
                row = Patient(first_name=first, last_name=last, name_key=key, birth_date=born,
                              phone=phone, created_at=datetime.now(UTC))
                s.add(row)
                await s.flush()
                s.add(AuditLog(at=datetime.now(UTC), actor=SEED_ACTOR, call_id=None,
                               action="patient.create", entity="patient", entity_id=str(row.id),
                               details={"seed": True}))
            if guardian is not None:
                row.guardian_id = created[guardian].id
            created.append(row)

    horizon = datetime.combine(today, time(0), tzinfo=profile.practice.tzinfo)
    for row, (_, _, _, phone, _, pid, code, ahead, index) in zip(
            created, DEMO_PATIENTS, strict=True):
        async with db.session() as s:
            has = (await s.execute(select(Appointment.id).where(
                Appointment.patient_id == row.id, Appointment.status == "booked",
                Appointment.start_at >= horizon).limit(1))).first()
        if has is not None:
            continue
        slots = await service.find_free_slots(
            practitioner=pid, appointment_type=code, date_from=today + timedelta(days=ahead),
            limit=index + 1)
        if not slots:
            logger.warning("seed: no free slot for demo patient %d", row.id)
            continue
        outcome = await service.book(
            practitioner_id=pid, appointment_type=code, start=slots[-1].start,
            patient=PatientDetails(row.first_name, row.last_name, row.birth_date, phone),
            actor=SEED_ACTOR)
        if not outcome.ok:
            logger.warning("seed: could not book for demo patient %d: %s", row.id, outcome.status)
    logger.info("seeded practice %s with %d demo patients", profile.practice.id, len(created))
    return len(created)
