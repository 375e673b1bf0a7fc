"""Identity that holds: exact birth date plus a name that does not confuse Jean and Jeanne,
answers that never tell an unverified caller whether someone is a patient, and one more
question before a change when the caller's number is not the patient's.

Real rules, tools and a seeded demo agenda (SQLite); the LLM double is never asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from llm_doubles import ScriptedLLM
from sqlalchemy import select

from knowledge.profile import default_profile_path, load_profile
from records import BookingService, Database, PatientDetails
from records.models import Patient
from records.names import gender_variants, similarity
from records.seed import seed_demo
from voice.call import VoiceServices, make_agent

TODAY = date(2026, 11, 30)
NADIA = ("Nadia Benali", date(1983, 9, 9))  # demo patient, phone 07 61 22 80 14


@pytest.fixture()
async def services(tmp_path: Path) -> AsyncIterator[VoiceServices]:
    db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await db.create_schema()
    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
    profile = load_profile(default_profile_path())
    booking = BookingService(db=db, tz=profile.practice.timezone,
                             now=lambda: datetime(2026, 11, 30, 10, 0, tzinfo=profile.practice.tzinfo))
    yield VoiceServices(llm=ScriptedLLM(), whisper=None, tts_engine=None, booking=booking,
                        profile=profile, today=lambda: TODAY)
    await db.dispose()


async def _call(services: VoiceServices, turns: list[str], *,
                caller_number: str | None = None) -> tuple[Any, Any, list[str]]:
    agent, tools = make_agent(services, call_id=f"identity-{caller_number}",
                              caller_number=caller_number)
    agent.greeting()
    said = []
    for turn in turns:
        said.append("".join([p async for p in agent.respond(turn)]))
    return agent, tools, said


async def _upcoming(services: VoiceServices, name: str, born: date) -> list[Any]:
    check = await services.booking.verify_identity(full_name=name, birth_date=born,
                                                   actor="staff:test")
    assert check.status == "verified"
    return list(await services.booking.upcoming_appointments(patient=check.patient))


# -- Jean is not Jeanne ---------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [("Jean", "Jeanne"), ("Paul", "Paule"), ("Michel", "Michelle"),
                                 ("Frédéric", "Frédérique"), ("Louis", "Louise")])
def test_gender_forms_of_a_first_name_are_different_names(a: str, b: str) -> None:
    assert gender_variants(a, b) and similarity(f"{a} Girard", f"{b} Girard") == 0.0


async def test_jeanne_with_jeans_birth_date_is_not_jean(services: VoiceServices) -> None:
    booking = services.booking
    for first in ("Jean", "Paul"):
        slot = (await booking.find_free_slots(practitioner="morel", limit=1))[0]
        out = await booking.book(practitioner_id="morel", appointment_type=slot.appointment_type,
                                 start=slot.start, actor="staff:test",
                                 patient=PatientDetails(first, "Martin", date(1970, 1, 1)))
        assert out.status == "booked"
    for said in ("Jeanne Martin", "Paule Martin"):
        check = await booking.verify_identity(full_name=said, birth_date=date(1970, 1, 1),
                                              actor="staff:test")
        assert check.status != "verified", said
    check = await booking.verify_identity(full_name="Paul Girard", birth_date=date(1978, 6, 4),
                                          actor="staff:test")
    assert check.status == "verified"
    # booking as Jeanne makes Jeanne's own record, never Jean's
    slot = (await booking.find_free_slots(practitioner="morel", limit=1))[0]
    out = await booking.book(practitioner_id="morel", appointment_type=slot.appointment_type,
                             start=slot.start, actor="staff:test",
                             patient=PatientDetails("Jeanne", "Martin", date(1970, 1, 1)))
    assert out.status == "booked"
    async with booking.db.session() as s:
        names = sorted(p.first_name for p in (await s.scalars(select(Patient).where(
            Patient.last_name == "Martin"))).all())
    assert names == ["Jean", "Jeanne", "Paul"]


# -- nothing revealed before verification ----------------------------------------------------

async def test_answers_do_not_reveal_whether_someone_is_a_patient(services: VoiceServices) -> None:
    """A cancel attempt for a real patient with a wrong birth date and one for a person who
    does not exist get the same words; so do the booking checks."""
    _a, _t, real = await _call(services, ["Je voudrais annuler le rendez-vous de Nadia Benali.",
                                          "Nadia Benali, née le 1er janvier 1990."])
    _a, _t, nobody = await _call(services, ["Je voudrais annuler le rendez-vous de Inès Durieux.",
                                            "Inès Durieux, née le 1er janvier 1990."])
    assert real[1] == nobody[1] and "Morel" not in real[1]
    _a, _t, known = await _call(services, [
        "Est-ce que le docteur Morel peut me recevoir jeudi après-midi ?", "Oui, c'est parfait.",
        "Je suis Paul Girard, né le 4 juin 1968."])  # on file with 1978
    assert "redire" in known[2]
    for word in ("dossier", "patient", "déjà", "connu", "fichier"):
        assert word not in known[2], known[2]


# -- another number than the patient's: one more question ------------------------------------

CANCEL = ["Bonjour, je voudrais annuler mon rendez-vous avec le docteur Morel.",
          "Nadia Benali, née le 9 septembre 1983."]


async def test_same_number_as_on_file_needs_no_extra_question(services: VoiceServices) -> None:
    _a, _t, said = await _call(services, [*CANCEL, "Oui."], caller_number="07 61 22 80 14")
    assert "Je confirme l'annulation" in said[1] and "C'est annulé" in said[2], said
    assert await _upcoming(services, *NADIA) == []


async def test_other_number_asks_the_appointments_day_before_any_change(
        services: VoiceServices) -> None:
    [appt] = await _upcoming(services, *NADIA)
    day = appt.start.strftime("%d").lstrip("0")
    _agent, tools, said = await _call(services, [*CANCEL, f"Le {day}.", "Oui."],
                                     caller_number="06 99 88 77 66")
    assert "quel jour" in said[1] and "Morel" not in said[1], said  # nothing read back yet
    assert "Je confirme l'annulation" in said[2] and "C'est annulé" in said[3], said
    assert await _upcoming(services, *NADIA) == []
    assert ("identity_second_check", {"result": "passed"}, "rules") in tools.actions


async def test_other_number_and_wrong_day_changes_nothing(services: VoiceServices) -> None:
    [appt] = await _upcoming(services, *NADIA)
    wrong = "le 28 décembre" if appt.start.day != 28 else "le 27 décembre"
    agent, tools, said = await _call(services, [*CANCEL, wrong, "Oui."],
                                     caller_number="+33 6 99 88 77 66")
    assert agent.handoff is not None and agent.handoff.reason == "identity", said
    assert "Morel" not in " ".join(said[1:])
    assert await _upcoming(services, *NADIA) == [appt]
    assert "cancel_appointment" not in [a[0] for a in tools.actions]


async def test_other_number_moving_also_asks(services: VoiceServices) -> None:
    [appt] = await _upcoming(services, *NADIA)
    _a, _t, said = await _call(services, ["Je dois décaler mon rendez-vous.",
                                          "Nadia Benali, née le 9 septembre 1983."],
                               caller_number="06 99 88 77 66")
    assert "quel jour" in said[1] and "déplacer" not in said[1], said
    assert await _upcoming(services, *NADIA) == [appt]
