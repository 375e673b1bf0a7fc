"""A scenario's own fixture: which practice, who is on file, what is booked, and when the
call happens, so that any practice can write its own checks.

In a scenario file, ``fixture:`` at the top applies to every scenario of the file, and a
scenario's own ``fixture:`` overrides it key by key::

    fixture:
      profile: ../practices/my-practice.yaml   # relative to the scenario file
      demo_patients: false                     # default: true for the demo practice only
      now: 2026-11-30 18:45                    # the call's local date and time; it drives
                                               # "jeudi", the greeting and "are you open?"
      caller_number: "06 11 22 33 44"          # the number the call comes from
      patients:
        - {name: Yann Le Goff, born: 1985-05-05, phone: "06 11 22 33 44"}
        - {name: Malo Le Goff, born: 2021-02-02, guardian: Yann Le Goff}
      appointments:
        - {patient: Yann Le Goff, practitioner: lefebvre, type: ophtalmo_premiere,
           start: 2026-12-03 09:00}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

__all__ = ["FixtureAppointment", "FixturePatient", "ScenarioFixture", "apply_fixture",
           "parse_fixture", "seed_fixture"]

_KEYS = {"profile", "demo_patients", "now", "caller_number", "patients", "appointments"}


@dataclass(frozen=True)
class FixturePatient:
    name: str
    born: date
    phone: str | None = None
    guardian: str | None = None  # the name of another fixture patient


@dataclass(frozen=True)
class FixtureAppointment:
    patient: str
    practitioner: str
    type: str
    start: datetime  # naive: the practice's local time


@dataclass(frozen=True)
class ScenarioFixture:
    profile: Path | None = None
    demo_patients: bool | None = None  # None: only for the demo practice
    now: datetime | None = None  # naive: the practice's local time
    caller_number: str | None = None
    patients: tuple[FixturePatient, ...] = ()
    appointments: tuple[FixtureAppointment, ...] = field(default_factory=tuple)
    given: frozenset[str] = frozenset()  # keys written in the file (for overriding)

    def over(self, base: ScenarioFixture | None) -> ScenarioFixture:
        """This fixture's keys over ``base``'s (a scenario's own over its file's)."""
        if base is None:
            return self
        values = {k: getattr(self, k) for k in self.given}
        return replace(base, **values, given=base.given | self.given)


def _when(value: Any, where: str, error: type[Exception]) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise error(f"{where}: expected a date and time like 2026-11-30 10:00, "
                    f"got {value!r}") from None


def _day(value: Any, where: str, error: type[Exception]) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise error(f"{where}: expected a date like 1985-05-05, got {value!r}") from None


def _mapping(raw: Any, where: str, keys: set[str], required: set[str],
             error: type[Exception]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise error(f"{where}: expected a mapping")
    unknown = set(raw) - keys
    if unknown:
        raise error(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(keys)})")
    missing = required - set(raw)
    if missing:
        raise error(f"{where}: missing {sorted(missing)}")
    return raw


def parse_fixture(raw: Any, where: str, *, base_dir: Path,
                  error: type[Exception] = ValueError) -> ScenarioFixture:
    """Validate a ``fixture:`` mapping; paths are resolved against ``base_dir``."""
    d = _mapping(raw, f"{where}.fixture", _KEYS, set(), error)
    patients = []
    for i, p in enumerate(d.get("patients") or []):
        pw = f"{where}.fixture.patients[{i}]"
        p = _mapping(p, pw, {"name", "born", "phone", "guardian"}, {"name", "born"}, error)
        patients.append(FixturePatient(name=str(p["name"]), born=_day(p["born"], pw, error),
                                       phone=str(p["phone"]) if p.get("phone") else None,
                                       guardian=str(p["guardian"]) if p.get("guardian") else None))
    names = {p.name for p in patients}
    for p in patients:
        if p.guardian is not None and p.guardian not in names:
            raise error(f"{where}.fixture: guardian {p.guardian!r} is not a fixture patient")
    appointments = []
    for i, a in enumerate(d.get("appointments") or []):
        aw = f"{where}.fixture.appointments[{i}]"
        a = _mapping(a, aw, {"patient", "practitioner", "type", "start"},
                     {"patient", "practitioner", "type", "start"}, error)
        if a["patient"] not in names:
            raise error(f"{aw}: patient {a['patient']!r} is not a fixture patient")
        appointments.append(FixtureAppointment(patient=str(a["patient"]),
                                               practitioner=str(a["practitioner"]),
                                               type=str(a["type"]),
                                               start=_when(a["start"], aw, error)))
    profile = None
    if d.get("profile"):
        profile = (base_dir / str(d["profile"])).resolve()
        if not profile.is_file():
            raise error(f"{where}.fixture.profile: {profile} not found")
    demo = d.get("demo_patients")
    if demo is not None and not isinstance(demo, bool):
        raise error(f"{where}.fixture.demo_patients: expected true or false")
    return ScenarioFixture(
        profile=profile, demo_patients=demo,
        now=_when(d["now"], f"{where}.fixture.now", error) if d.get("now") else None,
        caller_number=str(d["caller_number"]) if d.get("caller_number") else None,
        patients=tuple(patients), appointments=tuple(appointments), given=frozenset(d))


async def apply_fixture(db: Any, fixture: ScenarioFixture, *, profile: Any,
                        now: datetime) -> None:
    """Put the fixture's patients and appointments in a freshly seeded agenda."""
    from sqlalchemy import select

    from records import BookingService, PatientDetails
    from records.models import Patient
    from records.names import name_key
    from voice.understanding import split_name

    tz = profile.practice.tzinfo
    ids: dict[str, int] = {}
    async with db.write() as s:
        for p in fixture.patients:
            first, last = split_name(p.name)
            key = name_key(f"{first} {last}")
            row = (await s.scalars(select(Patient).where(
                Patient.name_key == key, Patient.birth_date == p.born))).first()
            if row is None:
                row = Patient(first_name=first, last_name=last, name_key=key, birth_date=p.born,
                              phone=p.phone, created_at=datetime.now(UTC))
                s.add(row)
                await s.flush()
            ids[p.name] = row.id
        for p in fixture.patients:
            if p.guardian is not None:
                child = await s.get(Patient, ids[p.name])
                if child is not None:
                    child.guardian_id = ids[p.guardian]
    booking = BookingService(db=db, tz=profile.practice.timezone,
                             now=lambda: now.replace(tzinfo=tz))
    born = {p.name: p for p in fixture.patients}
    for a in fixture.appointments:
        p = born[a.patient]
        first, last = split_name(p.name)
        out = await booking.book(practitioner_id=a.practitioner, appointment_type=a.type,
                                 start=a.start.replace(tzinfo=tz), actor="staff:fixture",
                                 patient=PatientDetails(first, last, p.born, p.phone))
        if out.status != "booked":
            raise ValueError(f"fixture appointment {a.patient} {a.start:%Y-%m-%d %H:%M} with "
                             f"{a.practitioner}: {out.status}: {out.message}")


async def seed_fixture(db: Any, fixture: ScenarioFixture, *, profile_path: Path,
                       now: datetime) -> None:
    """A fresh agenda for one scenario: its practice (demo patients for the demo practice,
    unless the fixture says otherwise), then the fixture's own patients and appointments."""
    from knowledge.profile import load_profile
    from records.seed import demo_patients_fit, seed_demo, seed_profile

    profile = load_profile(profile_path)
    await db.create_schema()
    demo = fixture.demo_patients
    if demo is None:
        demo = demo_patients_fit(profile)
    if demo:
        await seed_demo(db, profile_path=profile_path, today=now.date())
    else:
        await seed_profile(db, profile)
    await apply_fixture(db, fixture, profile=profile, now=now.replace(tzinfo=None))
