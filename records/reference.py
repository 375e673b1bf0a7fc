"""Reference data of the practice read from the database: practitioners, types, schedules.

Also resolves a spoken practitioner name ("docteur Durand", "Reno" for Renaud, "le dermatologue")
to an id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from records.models import (
    AppointmentType,
    AppointmentTypePractitioner,
    Closure,
    Practitioner,
    ScheduleRange,
)
from records.names import name_key, similarity, sound_key, strip_titles
from records.schemas import (
    AmbiguousPractitionerError,
    InvalidRequestError,
    UnknownAppointmentTypeError,
    UnknownPractitionerError,
)

__all__ = ["Reference", "load_reference"]

_FUZZY_PRACTITIONER = 0.75


@dataclass
class Reference:
    practitioners: dict[str, Practitioner]
    types: dict[str, AppointmentType]
    doers: dict[str, list[str]]  # type code -> practitioner ids
    schedules: dict[str, dict[int, list[tuple[time, time]]]]  # pid -> weekday -> ranges
    closures: list[Closure] = field(default_factory=list)

    def closed_on(self, day: date) -> Closure | None:
        return next((c for c in self.closures if c.start_date <= day <= c.end_date), None)

    def types_of(self, pid: str) -> list[AppointmentType]:
        return sorted((self.types[c] for c, ids in self.doers.items() if pid in ids),
                      key=lambda t: (t.position, t.code))

    def appointment_type(self, code: str) -> AppointmentType:
        t = self.types.get(code) or self.types.get(name_key(code).replace(" ", "_"))
        if t is None:
            raise UnknownAppointmentTypeError(code, sorted(self.types))
        return t

    def check_can_do(self, pid: str, code: str) -> None:
        if pid not in self.doers.get(code, []):
            p = self.practitioners[pid]
            raise InvalidRequestError(
                f"{p.display_name} does not do {code!r} appointments "
                f"(they do: {', '.join(t.code for t in self.types_of(pid)) or 'none'})")

    def resolve_practitioner(self, spoken: str) -> str:
        """The id of the practitioner meant by ``spoken``; raises if unknown or ambiguous."""
        active = {pid: p for pid, p in self.practitioners.items() if p.active}
        known = [p.display_name for p in active.values()]
        key = strip_titles(name_key(spoken))
        if not key:
            raise UnknownPractitionerError(spoken, known)
        if key in active:
            return key
        by_name = [pid for pid, p in active.items()
                   if key in {name_key(p.last_name), name_key(f"{p.first_name} {p.last_name}"),
                              name_key(f"{p.last_name} {p.first_name}"),
                              name_key(p.first_name)}]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise AmbiguousPractitionerError(spoken, [active[i].display_name for i in by_name])
        sounds = [pid for pid, p in active.items()
                  if sound_key(key.split()[-1]) == sound_key(p.last_name)]
        if len(sounds) == 1:
            return sounds[0]
        by_specialty = [pid for pid, p in active.items()
                        if any(w[:6] == s[:6] for w in key.split() if len(w) >= 6
                               for s in name_key(p.specialty).split() if len(s) >= 6)]
        if len(by_specialty) == 1:
            return by_specialty[0]
        scored = sorted(((max(similarity(key, name_key(p.last_name)),
                              similarity(key, name_key(f"{p.first_name} {p.last_name}"))), pid)
                         for pid, p in active.items()), reverse=True)
        good = [(s, pid) for s, pid in scored if s >= _FUZZY_PRACTITIONER]
        if len(good) == 1 or (len(good) > 1 and good[0][0] - good[1][0] >= 0.15):
            return good[0][1]
        if len(good) > 1:
            raise AmbiguousPractitionerError(spoken, [active[p].display_name for _, p in good])
        raise UnknownPractitionerError(spoken, known)


async def load_reference(session: AsyncSession) -> Reference:
    practitioners = {p.id: p for p in (await session.scalars(select(Practitioner))).all()}
    types = {t.code: t for t in (await session.scalars(select(AppointmentType))).all()}
    doers: dict[str, list[str]] = defaultdict(list)
    for link in (await session.scalars(select(AppointmentTypePractitioner))).all():
        doers[link.appointment_type].append(link.practitioner_id)
    schedules: dict[str, dict[int, list[tuple[time, time]]]] = defaultdict(
        lambda: defaultdict(list))
    rows = (await session.scalars(select(ScheduleRange).order_by(
        ScheduleRange.practitioner_id, ScheduleRange.weekday, ScheduleRange.start_time))).all()
    for r in rows:
        schedules[r.practitioner_id][r.weekday].append((r.start_time, r.end_time))
    closures = list((await session.scalars(select(Closure))).all())
    return Reference(practitioners=practitioners, types=types, doers=dict(doers),
                     schedules=schedules, closures=closures)
