"""Identity checks, privacy, staff messages, call records and the audit log."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from records import BookingService, PatientDetails
from records.models import AuditLog, Call, Patient, StaffMessage

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize("name,born", [
    ("Paul Girard", "quatre juin soixante-dix-huit"),
    ("paul girard", "04/06/1978"),
    ("Girard Paul", "le 4 juin 1978"),
    ("Paul Girar", date(1978, 6, 4)),       # misheard surname, exact birth date
    ("Monsieur Paul Girard", "4 juin 78"),
])
async def test_identity_verified(service: BookingService, name: str, born: str | date) -> None:
    check = await service.verify_identity(full_name=name, birth_date=born)
    assert check.status == "verified", check.message
    assert check.patient is not None and check.patient.last_name == "Girard"


async def test_wrong_birth_date_reveals_nothing(service: BookingService) -> None:
    check = await service.verify_identity(full_name="Paul Girard", birth_date="5 juin 1978")
    assert check.status == "not_verified" and check.patient is None
    assert check.birth_date == date(1978, 6, 5)
    unknown = await service.verify_identity(full_name="Albert Inconnu", birth_date="5 juin 1978")
    # same answer whether the name exists or not: no enumeration of patients
    assert unknown.status == check.status and unknown.message == check.message
    assert "1978-06-04" not in check.message and "Girard" not in check.message


async def test_unreadable_or_impossible_birth_date(service: BookingService) -> None:
    bad = await service.verify_identity(full_name="Paul Girard", birth_date="trente février 78")
    assert bad.status == "invalid_date" and "does not exist" in bad.message
    future = await service.verify_identity(full_name="Paul Girard", birth_date="1 mars 2030")
    assert future.status == "invalid_date"


async def test_forged_verification_is_refused(service: BookingService) -> None:
    paul = (await service.verify_identity(full_name="Paul Girard",
                                          birth_date=date(1978, 6, 4))).patient
    nadia = (await service.verify_identity(full_name="Nadia Benali",
                                           birth_date=date(1983, 9, 9))).patient
    assert paul is not None and nadia is not None
    forged = dataclasses.replace(paul, patient_id=nadia.patient_id)
    with pytest.raises(ValueError, match="not verified"):
        await service.upcoming_appointments(patient=forged)
    [nadias] = await service.upcoming_appointments(patient=nadia)
    out = await service.cancel(appointment_id=nadias.id, patient=forged, actor="assistant:x")
    assert out.status == "invalid"
    other = BookingService(db=service.db, now=service._now)  # another secret
    with pytest.raises(ValueError, match="not verified"):
        await other.upcoming_appointments(patient=paul)


async def test_homonym_with_other_birth_date_is_kept_for_staff(service: BookingService) -> None:
    start = datetime.combine(date(2026, 12, 1), time(10, 0), tzinfo=PARIS)
    out = await service.book(practitioner_id="morel", appointment_type="consultation",
                             start=start, actor="assistant:call-7", call_id="call-7",
                             patient=PatientDetails("Paul", "Girard", date(1978, 6, 5),
                                                    "06 45 12 33 98"))
    assert out.status == "invalid" and out.staff_message_id is not None
    async with service.db.session() as s:
        msg = await s.get(StaffMessage, out.staff_message_id)
        assert msg is not None and msg.call_id == "call-7"
        assert msg.caller_birth_date == "1978-06-05" and "10:00" in msg.body
        girards = (await s.scalars(select(Patient).where(Patient.last_name == "Girard"))).all()
        assert len(girards) == 1  # no duplicate record
    assert not [a for a in await service.day_agenda(date(2026, 12, 1))
                if a.start == start]


async def test_messages_and_calls(service: BookingService) -> None:
    assert await service.start_call(call_id="call-9", caller_number="+33645123398")
    paul = (await service.verify_identity(full_name="Paul Girard", birth_date=date(1978, 6, 4),
                                          actor="assistant:call-9", call_id="call-9")).patient
    saved = await service.leave_message(
        kind="prescription_renewal", body="Renouvellement du Levothyrox 75", patient=paul,
        actor="assistant:call-9", call_id="call-9", callback_number="06 45 12 33 98")
    assert saved.status == "saved" and saved.message_id is not None
    bad = await service.leave_message(kind="gossip", body="x", actor="assistant:call-9")
    assert bad.status == "invalid"
    empty = await service.leave_message(kind="callback", body="  ", actor="assistant:call-9")
    assert empty.status == "invalid"
    assert await service.end_call(call_id="call-9", outcome="message",
                                  handoff_reason=None, summary="renewal request")
    async with service.db.session() as s:
        call = await s.get(Call, "call-9")
        assert call is not None and call.caller_number == "+33645123398"
        assert call.outcome == "message" and call.ended_at is not None
        msg = await s.get(StaffMessage, saved.message_id)
        assert msg is not None and paul is not None and msg.patient_id == paul.patient_id


async def test_a_call_resolves_only_its_own_notes(service: BookingService) -> None:
    mine = await service.leave_message(kind="callback", body="Booking not made.",
                                       actor="assistant:call-7", call_id="call-7")
    other_call = await service.leave_message(kind="callback", body="Rappeler.",
                                             actor="assistant:call-8", call_id="call-8")
    by_staff = await service.leave_message(kind="callback", body="Rappeler.",
                                           actor="staff:alice", call_id="call-7")
    ids = [m.message_id for m in (mine, other_call, by_staff) if m.message_id is not None]
    assert len(ids) == 3
    assert await service.resolve_messages(ids=ids, actor="assistant:call-7", call_id="call-7",
                                          note="booked later in the same call.") == 1
    async with service.db.session() as s:
        rows = {m.id: m for m in [await s.get(StaffMessage, i) for i in ids] if m is not None}
    assert rows[ids[0]].handled_at is not None and "Resolved: booked later" in rows[ids[0]].body
    assert rows[ids[1]].handled_at is None and rows[ids[2]].handled_at is None
    # a second resolve finds nothing left to resolve
    assert await service.resolve_messages(ids=ids, actor="assistant:call-7", call_id="call-7",
                                          note="again") == 0


async def test_every_write_is_audited_with_its_actor(service: BookingService) -> None:
    start = datetime.combine(date(2026, 12, 1), time(10, 0), tzinfo=PARIS)
    booked = await service.book(practitioner_id="morel", appointment_type="consultation",
                                start=start, actor="assistant:call-5", call_id="call-5",
                                patient=PatientDetails("Jean", "Dupont", date(1960, 1, 2)))
    assert booked.appointment_id is not None
    await service.reschedule(appointment_id=booked.appointment_id, actor="staff:alice",
                             new_start=start.replace(hour=11))
    await service.cancel(appointment_id=booked.appointment_id, actor="staff:bob", reason="sick")
    await service.verify_identity(full_name="Paul Girard", birth_date="1 janvier 1950",
                                  actor="assistant:call-6", call_id="call-6")
    async with service.db.session() as s:
        rows = (await s.scalars(select(AuditLog).where(
            AuditLog.entity_id == str(booked.appointment_id),
            AuditLog.entity == "appointment").order_by(AuditLog.id))).all()
        assert [(r.action, r.actor) for r in rows] == [
            ("appointment.book", "assistant:call-5"),
            ("appointment.reschedule", "staff:alice"),
            ("appointment.cancel", "staff:bob")]
        assert rows[0].call_id == "call-5" and rows[0].details["practitioner"] == "morel"
        assert rows[1].details["to"]["start"].startswith("2026-12-01T11:00")
        assert rows[2].details["reason"] == "sick"
        failed = (await s.scalars(select(AuditLog).where(AuditLog.call_id == "call-6"))).one()
        assert failed.action == "identity.mismatch"


async def test_booking_for_a_fuzzily_verified_patient_uses_their_record(
        service: BookingService) -> None:
    check = await service.verify_identity(full_name="Paul Girar", birth_date="4 juin 1978")
    assert check.status == "verified" and check.patient is not None
    out = await service.book(practitioner_id="morel", appointment_type="consultation",
                             start=datetime.combine(date(2026, 12, 1), time(10, 0), tzinfo=PARIS),
                             patient=check.patient, actor="assistant:call-8")
    assert out.ok, out.message
    # a misheard child's name under a verified parent finds the existing child
    sophie = (await service.verify_identity(full_name="Sophie Laurent",
                                            birth_date=date(1991, 2, 22))).patient
    child = await service.book(practitioner_id="morel", appointment_type="consultation_enfant",
                               start=datetime.combine(date(2026, 12, 1), time(11, 0),
                                                      tzinfo=PARIS),
                               patient=PatientDetails("Léa", "Laurant", date(2018, 5, 10)),
                               guardian=sophie, actor="assistant:call-8")
    assert child.ok, child.message
    async with service.db.session() as s:
        assert len((await s.scalars(select(Patient).where(
            Patient.last_name.in_(["Girar", "Laurant"])))).all()) == 0  # no duplicates
    assert sophie is not None
    appts = await service.upcoming_appointments(patient=sophie)
    assert sum(a.patient_name == "Léa Laurent" for a in appts) == 2


async def test_birth_date_guessing_stops_after_three_failures(service: BookingService) -> None:
    for guess in ("1 juin 1978", "2 juin 1978", "3 juin 1978"):
        check = await service.verify_identity(full_name="Paul Girard", birth_date=guess,
                                              actor="assistant:call-66", call_id="call-66")
        assert check.status == "not_verified"
    right = await service.verify_identity(full_name="Paul Girard", birth_date="4 juin 1978",
                                          actor="assistant:call-66", call_id="call-66")
    assert right.status == "too_many_attempts" and right.patient is None
    # another call is not affected
    other = await service.verify_identity(full_name="Paul Girard", birth_date="4 juin 1978",
                                          actor="assistant:call-67", call_id="call-67")
    assert other.status == "verified"
