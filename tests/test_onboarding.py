"""Onboarding a practice that is not the demo: `twin practice init`, then calls on it.

The second practice (tests/fixtures/practices/centre-du-vieux-port.yaml) has other ids,
names, appointment types and caller words than the demo; nothing in the code knows it.
The calls run at text level with the real rules, tools and agenda (SQLite), and a
scripted LLM double that is never needed (asserted).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from llm_doubles import ScriptedLLM
from sqlalchemy import func, select

from knowledge.profile import load_profile
from knowledge.vocabulary import appointment_type_for, practitioner_for
from records import BookingService, Database
from records.models import Appointment, AppointmentType, Patient, Practitioner, ScheduleRange
from voice.call import VoiceServices, make_agent

ROOT = Path(__file__).resolve().parents[1]
OTHER = ROOT / "tests" / "fixtures" / "practices" / "centre-du-vieux-port.yaml"
TODAY = date(2026, 11, 30)  # a Monday: "jeudi" is 2026-12-03


def _init(url: str, *args: str) -> str:
    """The real command line, in its own process: `twin practice init PROFILE`."""
    done = subprocess.run([sys.executable, "-m", "twin.cli", "practice", "init", str(OTHER),
                           "--url", url, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _counts(url: str) -> dict[str, int]:
    db = Database(url=url)
    try:
        async with db.session() as s:
            return {m.__name__: int(await s.scalar(select(func.count()).select_from(m)) or 0)
                    for m in (Practitioner, AppointmentType, ScheduleRange, Patient, Appointment)}
    finally:
        await db.dispose()


async def test_practice_init_creates_the_practice_only_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    out = _init(url)
    assert "Centre de santé du Vieux-Port" in out and "2 practitioners" in out
    first = await _counts(url)
    _init(url)  # twice: nothing duplicated
    assert await _counts(url) == first
    assert first == {"Practitioner": 2, "AppointmentType": 4, "ScheduleRange": 10, "Patient": 0,
                     "Appointment": 0}
    db = Database(url=url)
    async with db.session() as s:
        ids = set((await s.scalars(select(Practitioner.id))).all())
    await db.dispose()
    assert ids == {"vasseur", "lefebvre"}


def test_practice_init_rejects_an_invalid_profile(tmp_path: Path) -> None:
    from twin.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(OTHER.read_text(encoding="utf-8").replace("practitioners: [vasseur]",
                                                             "practitioners: [nobody]", 1))
    result = CliRunner().invoke(main, ["practice", "init", str(bad), "--url",
                                       f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"])
    assert result.exit_code != 0 and "unknown practitioner id 'nobody'" in result.output


def test_profile_comes_from_the_settings(tmp_path: Path) -> None:
    from twin.settings import Settings

    config = tmp_path / "settings.yaml"
    config.write_text("profile: practice.yaml\n")
    (tmp_path / "practice.yaml").write_text(OTHER.read_text(encoding="utf-8"))
    assert Settings.load(config, env={}).profile_path == tmp_path / "practice.yaml"
    assert Settings.load(None, env={"TWIN_PROFILE": str(OTHER)}).profile_path == OTHER


def test_caller_words_pick_the_type_from_the_profile() -> None:
    other = load_profile(OTHER)
    assert appointment_type_for(other, "la visite du mois de mon nourrisson") == "suivi_nourrisson"
    assert appointment_type_for(other, "un fond d'oeil", "lefebvre") == "fond_oeil"
    assert appointment_type_for(other, "Lefebvre") == "ophtalmo_premiere"
    assert appointment_type_for(other, "pour des lunettes") == "ophtalmo_premiere"
    assert appointment_type_for(other, "laser") is None  # a demo word means nothing here
    assert practitioner_for(other, "le docteur Lefèvre").id == "lefebvre"  # type: ignore[union-attr]
    from knowledge.profile import default_profile_path

    demo = load_profile(default_profile_path())
    assert appointment_type_for(demo, "une séance de laser") == "laser"
    assert appointment_type_for(demo, "pour un grain de beauté") == "dermato_premiere"
    assert appointment_type_for(demo, "pour mon fils", "morel") == "consultation_enfant"


async def _services(tmp_path: Path, llm: ScriptedLLM) -> tuple[VoiceServices, Database]:
    from knowledge.safety import SafetyRules

    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    _init(url)
    profile = load_profile(OTHER)
    db = Database(url=url)
    booking = BookingService(db=db, tz=profile.practice.timezone,
                             now=lambda: datetime(2026, 11, 30, 10, 0, tzinfo=profile.practice.tzinfo))
    return VoiceServices(llm=llm, whisper=None, tts_engine=None, booking=booking, profile=profile,
                         safety=SafetyRules.load(), today=lambda: TODAY), db


async def _call(services: VoiceServices, turns: list[str]) -> tuple[Any, Any, list[str]]:
    agent, tools = make_agent(services, call_id="onboarding-call")
    said = [agent.greeting()]
    for turn in turns:
        said.append("".join([p async for p in agent.respond(turn)]))
    return agent, tools, said


async def _rows(db: Database) -> list[tuple[Appointment, Patient]]:
    async with db.session() as s:
        return list((await s.execute(select(Appointment, Patient).join(
            Patient, Patient.id == Appointment.patient_id))).tuples().all())


async def test_a_call_books_at_the_second_practice_end_to_end(tmp_path: Path) -> None:
    llm = ScriptedLLM()
    services, db = await _services(tmp_path, llm)
    try:
        agent, tools, said = await _call(services, [
            "Bonjour, je voudrais un rendez-vous avec le docteur Lefebvre jeudi après-midi pour "
            "un fond d'oeil.",
            "Oui, ça me va.",
            "Je suis Yann Le Goff, né le 5 mai 1985.",
            "Non non, c'est parfait, au revoir.",
        ])
        assert "Vieux-Port" in said[0]
        assert "jeudi 3 décembre" in said[1] and "Lefebvre" in said[1], said
        assert "C'est noté, Yann Le Goff" in said[3], said
        rows = await _rows(db)
    finally:
        await db.dispose()
    assert len(rows) == 1, said
    appt, patient = rows[0]
    start = appt.start_at.astimezone(services.profile.practice.tzinfo)
    assert appt.practitioner_id == "lefebvre" and start.date() == date(2026, 12, 3)
    assert start.hour >= 13
    # a follow-up-only type asked by a new patient: the profile's first-visit type instead
    assert appt.appointment_type == "ophtalmo_premiere"
    assert (patient.first_name, patient.last_name, patient.birth_date) == (
        "Yann", "Le Goff", date(1985, 5, 5))
    assert [a[0] for a in tools.actions] == ["find_slots", "book"]
    assert llm.requests == [] and agent.handoff is None


async def test_type_keywords_and_unknown_practitioners_at_the_second_practice(
        tmp_path: Path) -> None:
    services, db = await _services(tmp_path, ScriptedLLM())
    try:
        _agent, tools, said = await _call(services, [
            "Bonjour, je voudrais un rendez-vous pour la visite du mois de mon nourrisson.",
        ])
        assert "Vasseur" in said[1], said
        assert tools.state.proposed.appointment_type == "suivi_nourrisson"
        _agent, _tools, said = await _call(services, [
            "Je voudrais un rendez-vous avec le docteur Morel demain matin.",
        ])
    finally:
        await db.dispose()
    assert "le docteur Vasseur en pédiatrie ou le docteur Lefebvre en ophtalmologie" in said[1]
    assert "Morel" not in said[1].replace("docteur Morel", "")


def test_generic_code_holds_no_demo_names() -> None:
    """`grep -ri "morel|haddad|tilleuls"`: only the demo profile, demo data and tests."""
    allowed = (
        "knowledge/practices/demo.yaml",  # the demo practice itself
        "records/seed.py",  # its fictional patients (DEMO_PATIENTS)
        "twin/demo.py",  # the demo call's script
        "evals/", "demo_audio/", "transcripts/review/demo/",  # demo data
        "transcripts/review/review_cli.py",  # its --demo store is the demo practice's
        "tests/", "bench/",  # tests, benchmarks on the demo
        "docs/", "README.md",  # describe the demo
        "knowledge/labelled/", "knowledge/rules/",  # labelled example sentences (data sets)
    )
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if name.startswith(allowed) or not path.is_file() or path.suffix in {".wav", ".gguf"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"morel|haddad|tilleuls", line, re.IGNORECASE):
                hits.append(f"{name}:{n}: {line.strip()[:100]}")
    assert hits == [], "\n".join(hits)


@pytest.mark.parametrize("module", ["voice/tools.py", "voice/understanding.py",
                                    "voice/changes.py"])
def test_call_rules_hold_no_fixed_type_codes(module: str) -> None:
    text = (ROOT / module).read_text(encoding="utf-8")
    for code in ("laser", "consultation_enfant", "dermato_premiere", "dermato_suivi"):
        assert f'"{code}"' not in text, f"{module} names the demo's type {code!r}"


def test_eval_scenarios_takes_the_practice_from_the_settings(tmp_path: Path) -> None:
    """`twin eval scenarios --config settings.yaml`: scenarios without a fixture of their own
    run on the settings' practice (here the second one; the rules answer every turn, so the
    LLM endpoint, which nothing listens on, is never called)."""
    from twin.cli import main

    suite = tmp_path / "mine.yaml"
    suite.write_text(
        "scenarios:\n"
        "  - id: mine-book\n"
        "    category: booking\n"
        "    turns: [\"Je voudrais un rendez-vous avec le docteur Vasseur jeudi après-midi.\",\n"
        "            \"Oui, ça me va.\", \"Je suis Inès Durieux, née le 3 mars 1992.\"]\n"
        "    expect:\n"
        "      db: {outcome: booked, practitioner: vasseur, weekday: thursday,"
        " patient: Inès Durieux}\n"
        "      tools: [find_slots, book]\n", encoding="utf-8")
    config = tmp_path / "settings.yaml"
    config.write_text(f"profile: {OTHER}\n", encoding="utf-8")
    args = ["eval", "scenarios", "--dir", str(suite), "--llm-url", "http://127.0.0.1:9/v1"]
    result = CliRunner().invoke(main, [*args, "--config", str(config)])
    assert result.exit_code == 0 and "PASS" in result.output, result.output
    result = CliRunner().invoke(main, args)  # the demo practice: no Dr Vasseur there
    assert "FAIL" in result.output, result.output


async def test_db_seed_with_another_practice_writes_no_demo_data(tmp_path: Path) -> None:
    """`twin db seed --profile other.yaml` used to write the demo patients (and fail on the
    demo's practitioner ids): now the other practice is seeded alone."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "twin.cli", "db", "seed", "--profile", str(OTHER),
                         "--url", url], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    counts = await _counts(url)
    assert counts["Practitioner"] == 2 and counts["Patient"] == 0 and counts["Appointment"] == 0
