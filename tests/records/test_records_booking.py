"""Slot search, booking, cancel and reschedule on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from records import (
    BookingService,
    InvalidRequestError,
    PatientDetails,
    UnknownPractitionerError,
)
from records.models import Appointment, Patient

PARIS = ZoneInfo("Europe/Paris")
NEW = PatientDetails("Jean", "Dupont", date(1960, 1, 2), "06 00 00 00 01")


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=PARIS)


async def test_reference_data_from_profile(service: BookingService) -> None:
    practitioners = {p.id: p for p in await service.list_practitioners()}
    assert practitioners["morel"].display_name == "Dr Claire Morel"
    assert "dermato_suivi" in practitioners["haddad"].appointment_types
    types = {t.code: t for t in await service.list_appointment_types()}
    assert types["laser"].duration_min == 30 and types["laser"].follow_up_only
    assert types["consultation"].practitioner_ids == ("morel",)


@pytest.mark.parametrize("spoken,expected", [
    ("morel", "morel"), ("docteur Morel", "morel"), ("le docteur MOREL", "morel"),
    ("Dr Claire Morel", "morel"), ("Adad", "haddad"), ("docteur Hadad", "haddad"),
    ("Karim", "haddad"), ("le dermatologue", "haddad"), ("Morelle", "morel"),
])
async def test_spoken_practitioner_names(service: BookingService, spoken: str,
                                         expected: str) -> None:
    assert (await service.resolve_practitioner(spoken)).id == expected


async def test_unknown_practitioner_is_a_clear_error(service: BookingService) -> None:
    with pytest.raises(UnknownPractitionerError, match="Dr Claire Morel"):
        await service.find_free_slots(practitioner="docteur Dubois-Lefebvre")


async def test_free_slots_respect_schedule_and_filters(service: BookingService) -> None:
    slots = await service.find_free_slots(practitioner="haddad", appointment_type="laser",
                                          date_from=date(2026, 12, 1), limit=20)
    assert len(slots) == 20
    for s in slots:
        assert s.practitioner_id == "haddad" and s.appointment_type == "laser"
        assert s.end - s.start == timedelta(minutes=30)
        assert s.start.tzinfo is not None
        local = s.start.astimezone(PARIS)
        assert local.weekday() in (0, 1, 2, 3, 4)
    assert slots == sorted(slots, key=lambda s: s.start)

    afternoons = await service.find_free_slots(practitioner="morel", day_part="afternoon",
                                               weekdays=[3], limit=6)
    assert afternoons and all(s.start.hour >= 14 and s.start.weekday() == 3 for s in afternoons)
    mornings = await service.find_free_slots(practitioner="morel", day_part="morning", limit=6)
    assert all(s.start.hour < 13 for s in mornings)


async def test_no_slots_on_closures_sundays_or_before_now(service: BookingService) -> None:
    slots = await service.find_free_slots(date_from=date(2026, 12, 20),
                                          date_to=date(2026, 12, 31), limit=500)
    days = {s.start.date() for s in slots}
    assert not days & {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26)}
    assert all(d.weekday() != 6 for d in days)
    # date_from in the past is clamped to now (+30 min notice): Monday 08:00 -> 08:30
    first = (await service.find_free_slots(practitioner="morel", date_from=date(2020, 1, 1)))[0]
    assert first.start == at(date(2026, 11, 30), 8, 30)


async def test_bad_search_parameters(service: BookingService) -> None:
    with pytest.raises(InvalidRequestError, match="before"):
        await service.find_free_slots(date_from=date(2026, 12, 10), date_to=date(2026, 12, 1))
    with pytest.raises(InvalidRequestError, match="does not do"):
        await service.find_free_slots(practitioner="morel", appointment_type="laser")
    with pytest.raises(InvalidRequestError, match="weekdays"):
        await service.find_free_slots(weekdays=[7])


async def test_book_then_slot_disappears_and_second_booking_is_taken(
        service: BookingService) -> None:
    slot = (await service.find_free_slots(practitioner="morel", date_from=date(2026, 12, 1)))[0]
    outcome = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start=slot.start, patient=NEW, actor="assistant:call-1",
                                 call_id="call-1")
    assert outcome.status == "booked", outcome.message
    assert outcome.slot is not None and outcome.slot.start == slot.start
    again = await service.find_free_slots(practitioner="morel", date_from=date(2026, 12, 1))
    assert slot.start not in [s.start for s in again]
    other = PatientDetails("Marie", "Curie", date(1967, 11, 7))
    taken = await service.book(practitioner_id="morel", appointment_type="consultation",
                               start=slot.start, patient=other, actor="assistant:call-2")
    assert taken.status == "slot_taken" and taken.appointment_id is None
    # an overlapping start (10 minutes later) is taken too
    overlap = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start=slot.start + timedelta(minutes=10), patient=other,
                                 actor="assistant:call-2")
    assert overlap.status == "slot_taken"
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Patient).where(
            Patient.last_name == "Curie")) == 0  # nothing half-written


@pytest.mark.parametrize("start,reason", [
    (datetime(2026, 12, 1, 7, 0, tzinfo=PARIS), "outside"),       # before opening
    (datetime(2026, 12, 1, 12, 20, tzinfo=PARIS), "outside"),     # runs past 12:30
    (datetime(2026, 12, 2, 10, 0, tzinfo=PARIS), "outside"),      # Morel off on Wednesday
    (datetime(2026, 12, 6, 10, 0, tzinfo=PARIS), "outside"),      # Sunday
    (datetime(2026, 12, 24, 10, 0, tzinfo=PARIS), "closed"),      # Christmas closure
    (datetime(2026, 11, 29, 10, 0, tzinfo=PARIS), "past"),
    (datetime(2026, 12, 1, 10, 3, tzinfo=PARIS), "grid"),
    ("2026-13-01T10:00", "not a date"),
])
async def test_invalid_bookings_are_refused_clearly(service: BookingService, start: object,
                                                    reason: str) -> None:
    outcome = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start=start, patient=NEW, actor="assistant:call-1")  # type: ignore[arg-type]
    assert outcome.status == "invalid"
    assert reason in outcome.message


async def test_invalid_practitioner_type_patient(service: BookingService) -> None:
    start = at(date(2026, 12, 1), 10, 0)
    unknown = await service.book(practitioner_id="dubois", appointment_type="consultation",
                                 start=start, patient=NEW, actor="assistant:c")
    assert unknown.status == "invalid" and "no practitioner" in unknown.message
    wrong = await service.book(practitioner_id="morel", appointment_type="laser",
                               start=start, patient=NEW, actor="assistant:c")
    assert wrong.status == "invalid" and "does not do" in wrong.message
    baby = PatientDetails("Futur", "Bebe", date(2027, 5, 1))
    future = await service.book(practitioner_id="morel", appointment_type="consultation",
                                start=start, patient=baby, actor="assistant:c")
    assert future.status == "invalid" and "future" in future.message
    noactor = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start=start, patient=NEW, actor="")
    assert noactor.status == "invalid"


async def test_first_visit_and_follow_up_rules(service: BookingService) -> None:
    day = date(2026, 12, 1)  # Tuesday: Haddad 09:00-12:30
    laser = await service.book(practitioner_id="haddad", appointment_type="laser",
                               start=at(day, 9, 0), patient=NEW, actor="assistant:c")
    assert laser.status == "invalid" and "already followed" in laser.message
    first = await service.book(practitioner_id="haddad", appointment_type="dermato_premiere",
                               start=at(day, 9, 0), patient=NEW, actor="assistant:c")
    assert first.ok, first.message
    again = await service.book(practitioner_id="haddad", appointment_type="dermato_premiere",
                               start=at(day, 10, 0), patient=NEW, actor="assistant:c")
    assert again.status == "invalid" and "new patients only" in again.message
    follow = await service.book(practitioner_id="haddad", appointment_type="laser",
                                start=at(day, 10, 0), patient=NEW, actor="assistant:c")
    assert follow.ok, follow.message


async def test_naive_and_string_starts_are_practice_local(service: BookingService) -> None:
    outcome = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start="2026-12-01T14:00", patient=NEW, actor="staff:alice")
    assert outcome.ok and outcome.slot is not None
    assert outcome.slot.start == at(date(2026, 12, 1), 14, 0)
    info = (await service.day_agenda(date(2026, 12, 1)))
    assert [a.start for a in info if a.patient_name == "Jean Dupont"] == [
        at(date(2026, 12, 1), 14, 0)]


async def test_cancel_and_reschedule_own_appointments(service: BookingService) -> None:
    check = await service.verify_identity(full_name="Paul Girard", birth_date="4 juin 1978")
    assert check.status == "verified" and check.patient is not None
    paul = check.patient
    [appt] = await service.upcoming_appointments(patient=paul)
    assert appt.practitioner_id == "morel"
    new_start = at(date(2026, 12, 10), 15, 0)  # a Thursday afternoon
    moved = await service.reschedule(appointment_id=appt.id, new_start=new_start,
                                     patient=paul, actor="assistant:c9", call_id="c9")
    assert moved.status == "booked", moved.message
    [after] = await service.upcoming_appointments(patient=paul)
    assert after.id == appt.id and after.start == new_start
    free = await service.find_free_slots(practitioner="morel", date_from=appt.start.date(),
                                         date_to=appt.start.date(), limit=100)
    assert appt.start in [s.start for s in free]  # the old slot is free again

    cancelled = await service.cancel(appointment_id=appt.id, patient=paul,
                                     actor="assistant:c9", call_id="c9", reason="better")
    assert cancelled.status == "cancelled" and not cancelled.late
    assert await service.upcoming_appointments(patient=paul) == []
    twice = await service.cancel(appointment_id=appt.id, patient=paul, actor="assistant:c9")
    assert twice.status == "not_found"


async def test_reschedule_to_taken_or_invalid_slot_changes_nothing(
        service: BookingService) -> None:
    paul = (await service.verify_identity(full_name="Paul Girard",
                                          birth_date=date(1978, 6, 4))).patient
    assert paul is not None
    [appt] = await service.upcoming_appointments(patient=paul)
    busy = at(date(2026, 12, 1), 9, 0)
    assert (await service.book(practitioner_id="morel", appointment_type="consultation",
                               start=busy, patient=NEW, actor="staff:bob")).ok
    taken = await service.reschedule(appointment_id=appt.id, new_start=busy, patient=paul,
                                     actor="assistant:c")
    assert taken.status == "slot_taken"
    closed = await service.reschedule(appointment_id=appt.id, patient=paul, actor="assistant:c",
                                      new_start=at(date(2026, 12, 25), 9, 0))
    assert closed.status == "invalid"
    [still] = await service.upcoming_appointments(patient=paul)
    assert still.start == appt.start


async def test_patient_cannot_touch_someone_elses_appointment(service: BookingService) -> None:
    paul = (await service.verify_identity(full_name="Paul Girard", birth_date="04/06/1978")).patient
    nadia = (await service.verify_identity(full_name="Nadia Benali",
                                           birth_date="9 septembre 1983")).patient
    assert paul is not None and nadia is not None
    [nadias] = await service.upcoming_appointments(patient=nadia)
    out = await service.cancel(appointment_id=nadias.id, patient=paul, actor="assistant:c")
    assert out.status == "not_found" and "Nadia" not in out.message
    moved = await service.reschedule(appointment_id=nadias.id, patient=paul, actor="assistant:c",
                                     new_start=at(date(2026, 12, 10), 15, 0))
    assert moved.status == "not_found"
    assert [a.id for a in await service.upcoming_appointments(patient=nadia)] == [nadias.id]
    # no verified patient: only staff may cancel
    anon = await service.cancel(appointment_id=nadias.id, actor="assistant:c")
    assert anon.status == "invalid"
    staff = await service.cancel(appointment_id=nadias.id, actor="staff:alice")
    assert staff.status == "cancelled"


async def test_parent_manages_childs_appointments(service: BookingService) -> None:
    sophie = (await service.verify_identity(
        full_name="Sophie Laurent",
        birth_date="vingt-deux février mille neuf cent quatre-vingt-onze")).patient
    assert sophie is not None
    assert [d.first_name for d in sophie.dependents] == ["Léa"]
    appts = await service.upcoming_appointments(patient=sophie)
    assert {a.patient_name for a in appts} == {"Sophie Laurent", "Léa Laurent"}
    leas = next(a for a in appts if a.patient_name == "Léa Laurent")
    assert (await service.cancel(appointment_id=leas.id, patient=sophie,
                                 actor="assistant:c")).status == "cancelled"
    # booking a new child links it to the verified parent
    tom = PatientDetails("Tom", "Laurent", date(2021, 3, 3))
    out = await service.book(practitioner_id="morel", appointment_type="consultation_enfant",
                             start=at(date(2026, 12, 3), 11, 0), patient=tom,
                             actor="assistant:c", guardian=sophie)
    assert out.ok, out.message
    again = (await service.verify_identity(full_name="Sophie Laurent",
                                           birth_date=date(1991, 2, 22))).patient
    assert again is not None and {d.first_name for d in again.dependents} == {"Léa", "Tom"}


async def test_late_cancellation_is_flagged(service: BookingService) -> None:
    out = await service.book(practitioner_id="morel", appointment_type="consultation",
                             start=at(date(2026, 11, 30), 15, 0), patient=NEW,
                             actor="staff:alice")
    assert out.ok and out.appointment_id is not None
    cancelled = await service.cancel(appointment_id=out.appointment_id, actor="staff:alice")
    assert cancelled.status == "cancelled" and cancelled.late
    async with service.db.session() as s:
        appt = await s.get(Appointment, out.appointment_id)
        assert appt is not None and appt.status == "cancelled"


async def test_absence_blocks_slots_and_reports_clashes(service: BookingService) -> None:
    paul = (await service.verify_identity(full_name="Paul Girard",
                                          birth_date=date(1978, 6, 4))).patient
    assert paul is not None
    [appt] = await service.upcoming_appointments(patient=paul)
    day = appt.start.date()
    result = await service.add_absence(practitioner_id="morel", start=at(day, 0, 0),
                                       end=at(day + timedelta(days=1), 0, 0),
                                       actor="staff:alice", reason="formation")
    assert result.clashing_appointment_ids == (appt.id,)
    assert await service.find_free_slots(practitioner="morel", date_from=day,
                                         date_to=day) == []
    refused = await service.book(practitioner_id="morel", appointment_type="consultation",
                                 start=at(day, 11, 0), patient=NEW, actor="assistant:c")
    assert refused.status == "invalid" and "away" in refused.message
    with pytest.raises(InvalidRequestError, match="not after"):
        await service.add_absence(practitioner_id="morel", start=at(day, 12, 0),
                                  end=at(day, 11, 0), actor="staff:alice")
    with pytest.raises(UnknownPractitionerError):
        await service.add_absence(practitioner_id="dubois", start=at(day, 11, 0),
                                  end=at(day, 12, 0), actor="staff:alice")
