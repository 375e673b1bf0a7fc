"""Understanding that holds on ordinary phrasing and recognition errors, one call per case.

Each test is a text-level call with the real rules, tools and a seeded demo agenda
(SQLite); the LLM double is never asked (asserted where it matters), so what happens is
the rules' doing. The words are what callers said on calls this project had not seen.
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
from records import BookingService, Database
from records.models import Patient, StaffMessage
from records.seed import seed_demo
from voice.call import VoiceServices, make_agent
from voice.understanding import (
    extract_identity,
    is_agreement,
    is_refusal,
    message_kind,
    resolve_day,
    split_name,
    time_in,
)

TODAY = date(2026, 11, 30)  # a Monday; the demo patients have appointments 3 to 8 days ahead


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


class Call:
    def __init__(self, services: VoiceServices, *, caller_number: str | None = None) -> None:
        self.agent, self.tools = make_agent(services, call_id="phrasing-call",
                                            caller_number=caller_number)
        self.agent.greeting()
        self.llm = services.llm
        self.db = services.booking.db

    async def say(self, text: str) -> str:
        return "".join([p async for p in self.agent.respond(text)])

    async def patient(self, first: str, last: str) -> Patient | None:
        async with self.db.session() as s:
            return (await s.scalars(select(Patient).where(
                Patient.first_name == first, Patient.last_name == last))).first()


async def _booked(call: Call) -> list[Any]:
    from records.models import Appointment

    ids = [int(i) for i in call.tools.booked_ids()]
    async with call.db.session() as s:
        rows = (await s.execute(select(Appointment, Patient).join(
            Patient, Patient.id == Appointment.patient_id).where(Appointment.id.in_(ids)))).all()
    return [tuple(r) for r in rows]


# -- identity said in answer to an offered slot ------------------------------------------

async def test_bare_name_and_birth_date_answering_an_offer_is_the_identity(
        services: VoiceServices) -> None:
    call = Call(services)
    first = await call.say("Je voudrais un rendez-vous avec le docteur Morel jeudi matin.")
    assert "Je peux vous proposer" in first
    reply = await call.say("Sophie Marchand, née le trois avril 1990.")
    assert "Je récapitule" in reply and "Sophie Marchand" in reply, reply
    reply = await call.say("Oui, ça me va, pas d'autre question.")
    assert "C'est noté, Sophie Marchand" in reply, reply
    [(_appt, patient)] = await _booked(call)
    assert (patient.first_name, patient.last_name, patient.birth_date) == (
        "Sophie", "Marchand", date(1990, 4, 3))
    assert call.llm.requests == []


# -- message requests in other verb forms -------------------------------------------------

@pytest.mark.parametrize("said", [
    "Laissez-lui un mot, s'il vous plaît : je serai en retard de dix minutes jeudi.",
    "Vous pouvez lui transmettre que j'ai bien reçu son courrier ?",
])
async def test_message_requests_in_other_verb_forms(services: VoiceServices, said: str) -> None:
    call = Call(services)
    reply = await call.say(said)
    assert "date de naissance" in reply, reply
    reply = await call.say("Paul Girard, né le 4 juin 1978.")
    assert "C'est noté" in reply and "transmets" in reply, reply
    async with call.db.session() as s:
        rows = (await s.scalars(select(StaffMessage))).all()
    assert len(rows) == 1 and rows[0].kind == "other" and rows[0].caller_name == "Paul Girard"
    assert said.split(":")[0][:12] in rows[0].body and call.llm.requests == []


# -- moving later never moves earlier -------------------------------------------------------

@pytest.mark.parametrize("said", [
    "Bonjour, je voudrais repousser mon rendez-vous.",
    "Je voudrais déplacer mon rendez-vous à la semaine d'après.",
])
async def test_moving_later_never_moves_earlier(services: VoiceServices, said: str) -> None:
    before = await _upcoming(services, "Paul Girard", date(1978, 6, 4))
    call = Call(services)
    await call.say(said)
    reply = await call.say("Je suis Paul Girard, né le 4 juin 1978.")
    assert "Je peux le déplacer" in reply, reply
    reply = await call.say("Oui.")
    assert "C'est fait" in reply, reply
    after = await _upcoming(services, "Paul Girard", date(1978, 6, 4))
    assert after[0].id == before[0].id and after[0].start >= before[0].end
    if "semaine d'après" in said:  # the week after the appointment's week
        monday = before[0].start.date().toordinal() + 7 - before[0].start.weekday()
        assert after[0].start.date().toordinal() >= monday


async def _upcoming(services: VoiceServices, name: str, born: date) -> list[Any]:
    check = await services.booking.verify_identity(full_name=name, birth_date=born,
                                                   actor="staff:test")
    return list(await services.booking.upcoming_appointments(patient=check.patient))


# -- "plutôt à 10 heures" is a time ---------------------------------------------------------

async def test_rather_at_ten_is_a_time_not_the_tenth(services: VoiceServices) -> None:
    call = Call(services)
    first = await call.say("Je voudrais un rendez-vous avec le docteur Morel jeudi après-midi.")
    assert "jeudi 3 décembre" in first
    reply = await call.say("Plutôt à 10 heures.")
    assert "jeudi 3 décembre" in reply and "10 décembre" not in reply, reply
    offered = call.tools.state.proposed.start  # the slot nearest 10:00 that day (20 min slots)
    assert offered.date() == date(2026, 12, 3)
    assert abs(offered.hour * 60 + offered.minute - 600) <= 20, offered
    assert resolve_day("plutôt à 10 heures", TODAY)[0] != date(2026, 12, 10)
    assert time_in("plutôt à 10 heures") == (10, 0)


# -- agreements that contain "non" or "autre" ----------------------------------------------

@pytest.mark.parametrize("said", ["oui ça me va, pas d'autre question", "non non, c'est parfait",
                                  "Non non, c'est très bien.", "Oui, rien d'autre, merci."])
def test_agreements_with_no_or_other_in_them(said: str) -> None:
    assert is_agreement(said) and not is_refusal(said)


async def test_non_non_cest_parfait_confirms_the_recap(services: VoiceServices) -> None:
    call = Call(services)
    await call.say("Je voudrais un rendez-vous avec le docteur Morel lundi.")
    reply = await call.say("Je m'appelle Nadia Benali, née le 9 septembre 1983.")
    assert "Je confirme" in reply
    reply = await call.say("Non non, c'est parfait.")
    assert "C'est noté" in reply and len(call.tools.booked_ids()) == 1, reply


# -- surnames with particles ----------------------------------------------------------------

@pytest.mark.parametrize("said,first,last", [
    ("Je suis Yann Le Goff, né le 5 mai 1985.", "Yann", "Le Goff"),
    ("C'est Jean de la Fontaine, né le 8 juillet 1961.", "Jean", "de la Fontaine"),
    ("Je m'appelle Awa N'Diaye, née le 2 mars 1988.", "Awa", "N'Diaye"),
])
async def test_surnames_with_particles_are_kept_whole(services: VoiceServices, said: str,
                                                      first: str, last: str) -> None:
    name, _born = extract_identity(said) or ("", None)
    assert split_name(name) == (first, last)
    call = Call(services)
    await call.say("Je voudrais un rendez-vous avec le docteur Morel mardi.")
    await call.say("Oui, d'accord.")
    reply = await call.say(said)
    assert f"C'est noté, {first} {last}" in reply, reply
    [(_appt, patient)] = await _booked(call)
    assert (patient.first_name, patient.last_name) == (first, last)


# -- a child booked by a parent is linked to the parent -------------------------------------

async def test_child_booked_by_a_parent_who_said_who_they_are_first(
        services: VoiceServices) -> None:
    call = Call(services)
    await call.say("Bonjour, je suis Sophie Laurent, née le 22 février 1991, je voudrais un "
                   "rendez-vous pour mon fils avec le docteur Morel vendredi matin.")
    reply = await call.say("Oui, d'accord.")
    assert "de l'enfant" in reply, reply
    reply = await call.say("Il s'appelle Tom Laurent, il est né le 3 mars 2021.")
    assert "C'est noté, Tom Laurent" in reply, reply
    tom, sophie = await call.patient("Tom", "Laurent"), await call.patient("Sophie", "Laurent")
    assert tom is not None and sophie is not None and tom.guardian_id == sophie.id


async def test_child_booked_then_the_parent_is_asked_and_linked(services: VoiceServices) -> None:
    call = Call(services)
    await call.say("Bonjour, je voudrais un rendez-vous pour ma fille avec le docteur Morel "
                   "vendredi matin.")
    await call.say("Oui, d'accord.")
    reply = await call.say("Elle s'appelle Zoé Benali, née le 1er mars 2019.")
    assert "C'est noté, Zoé Benali" in reply and "relier le dossier" in reply, reply
    reply = await call.say("Nadia Benali, née le 9 septembre 1983.")
    assert "relié au vôtre" in reply, reply
    zoe, nadia = await call.patient("Zoé", "Benali"), await call.patient("Nadia", "Benali")
    assert zoe is not None and nadia is not None and zoe.guardian_id == nadia.id


# -- a misheard name with the right birth date ----------------------------------------------

async def test_misheard_name_with_the_right_birth_date_finds_the_patient(
        services: VoiceServices) -> None:
    async with services.booking.db.session() as s:
        before = len((await s.scalars(select(Patient))).all())
    call = Call(services)
    await call.say("Je voudrais un rendez-vous avec le docteur Morel mardi matin.")
    await call.say("Oui, c'est parfait.")
    reply = await call.say("Je suis Paul Girar, né le 4 juin 1978.")  # as Whisper wrote it
    assert "C'est noté" in reply, reply
    [(_appt, patient)] = await _booked(call)
    assert (patient.first_name, patient.last_name) == ("Paul", "Girard")
    async with services.booking.db.session() as s:
        assert len((await s.scalars(select(Patient))).all()) == before  # no duplicate


def test_message_kind_of_other_verb_forms() -> None:
    assert message_kind("laissez-lui un mot") == "other"
    assert message_kind("vous pouvez lui transmettre mon message") == "other"
    assert message_kind("je voudrais prendre rendez-vous") is None
