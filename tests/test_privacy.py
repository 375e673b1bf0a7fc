"""What is kept and logged about callers.

- A whole call at the default levels (INFO included) logs no name, birth date, phone
  number, transcript or matched red-flag words (the logs are read back, every logger).
- A caller's objection to recording stops the recording at once and deletes it (a real
  AudioSocket call over TCP), and the call record keeps no free text (records), while
  the audit keeps that an objection happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from llm_doubles import ScriptedLLM
from sqlalchemy import select

from knowledge.privacy import PATIENT_DATA_ENV, redacted
from knowledge.profile import default_profile_path, load_profile
from knowledge.safety import SafetyRules
from records import BookingService, Database
from records.models import AuditLog, Call
from records.seed import seed_demo
from voice.call import VoiceServices, call_summary, make_agent, objected_summary
from voice.llm import TextDelta

TODAY = date(2026, 11, 30)
CALLER = "06 45 12 33 98"  # Paul Girard's number on file
PATIENT_WORDS = ("Girard", "Paul", "1978", "4 juin", "quatre juin", "06 45", "0645", "45 12",
                 "Benali", "Nadia", "poitrine", "respirer", "cholestérol", "12 34 56 78")


@pytest.fixture()
async def services(tmp_path: Path) -> AsyncIterator[VoiceServices]:
    db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await db.create_schema()
    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
    profile = load_profile(default_profile_path())
    booking = BookingService(db=db, tz=profile.practice.timezone,
                             now=lambda: datetime(2026, 11, 30, 10, 0, tzinfo=profile.practice.tzinfo))
    llm = ScriptedLLM([[TextDelta("Bien sûr, son numéro est le 06 12 34 56 78. Autre chose ?")]])
    yield VoiceServices(llm=llm, whisper=None, tts_engine=None, booking=booking, profile=profile,
                        safety=SafetyRules.load(), today=lambda: TODAY)
    await db.dispose()


async def _call(services: VoiceServices, call_id: str, turns: list[str]) -> Any:
    agent, tools = make_agent(services, call_id=call_id, caller_number=CALLER)
    await services.booking.start_call(call_id=call_id, caller_number=CALLER)
    agent.greeting()
    for turn in turns:
        "".join([p async for p in agent.respond(turn)])
    await services.booking.end_call(call_id=call_id, outcome="completed",
                                    summary=json.dumps(call_summary(agent, tools, "completed")))
    return agent


async def test_a_full_call_logs_no_patient_data_at_default_levels(
        services: VoiceServices, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PATIENT_DATA_ENV, raising=False)
    caplog.set_level(logging.INFO)  # -v; the default (WARNING) logs less still
    await _call(services, "privacy-1", [
        "Est-ce que le docteur Morel peut me recevoir jeudi après-midi ?",
        "Oui, c'est parfait.",
        "Je suis Paul Girard, né le 4 juin 1978.",
        "Il me faudrait un renouvellement d'ordonnance pour mon traitement contre le cholestérol.",
        "Paul Girard, né le 4 juin 1978.",
        "Et vous connaissez bien Nadia Benali ?",  # the model's answer leaks a number: withheld
        "Je voudrais annuler mon rendez-vous.", "Paul Girard, né le quatre juin 1978.", "Non.",
        "Merci, au revoir.",
    ])
    agent = await _call(services, "privacy-2", [
        "J'ai une douleur dans la poitrine et du mal à respirer depuis ce matin."])
    assert agent.handoff is not None and agent.handoff.reason == "emergency"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert "red flag" in logged and "withheld" in logged  # the events are logged...
    for word in PATIENT_WORDS:  # ...without the caller's data
        assert word.lower() not in logged.lower(), f"{word!r} in the logs:\n{logged}"


def test_the_debug_switch_puts_the_text_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PATIENT_DATA_ENV, raising=False)
    assert redacted("Paul Girard") == "<11 chars>"
    monkeypatch.setenv(PATIENT_DATA_ENV, "1")
    assert redacted("Paul Girard") == "'Paul Girard'"


# -- objection to recording ----------------------------------------------------------------

async def test_objection_stops_and_deletes_the_recording_at_once(tmp_path: Path) -> None:
    """A real AudioSocket call over TCP: audio before the objection is recorded, then
    ``stop_recording`` deletes the file at once and nothing after it is written."""
    from telephony.audiosocket import Frame, audio_frame, encode
    from telephony.server import AudioSocketServer

    stopped = asyncio.Event()
    seen: dict[str, Any] = {}

    async def handler(session: Any) -> None:
        heard = 0
        async for event in session.events():
            heard += 1
            if heard == 20 and not stopped.is_set():  # 400 ms of audio: the objection
                seen["path"] = session.recording_path
                seen["existed"] = Path(seen["path"]).is_file()  # noqa: ASYNC240
                seen["deleted"] = session.stop_recording()
                seen["gone_at_once"] = not Path(seen["path"]).exists()  # noqa: ASYNC240
                stopped.set()
            if type(event).__name__ == "Hangup":
                break

    server = AudioSocketServer(host="127.0.0.1", port=0, handler=handler,
                               recordings_dir=tmp_path / "rec")
    await server.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode(Frame.for_uuid(str(uuid.uuid4()))))
        for i in range(60):
            writer.write(encode(audio_frame(bytes([i % 7]) * 320)))
            await writer.drain()
            await asyncio.sleep(0.02)
        await asyncio.wait_for(stopped.wait(), 30)
        writer.write(encode(Frame.hangup()))
        await writer.drain()
        for _ in range(500):
            if server.active_calls == 0:
                break
            await asyncio.sleep(0.02)
        writer.close()
    finally:
        await server.stop()
    assert seen["existed"] and seen["deleted"] and seen["gone_at_once"], seen
    assert not Path(seen["path"]).exists()  # noqa: ASYNC240 - not re-created at the end
    assert list((tmp_path / "rec").glob("*.wav")) == []


async def test_objection_keeps_no_free_text_and_is_audited(services: VoiceServices) -> None:
    agent, tools = make_agent(services, call_id="objecting", caller_number=CALLER)
    await services.booking.start_call(call_id="objecting", caller_number=CALLER)
    agent.greeting()
    for turn in ["Je ne veux pas être enregistré.",
                 "Est-ce que le docteur Morel peut me recevoir jeudi après-midi ?",
                 "Oui, c'est parfait.", "Je suis Paul Girard, né le 4 juin 1978."]:
        "".join([p async for p in agent.respond(turn)])
    assert agent.recording_objected and len(tools.booked_ids()) == 1
    kept = objected_summary(call_summary(agent, tools, "booked"))
    await services.booking.end_call(call_id="objecting", outcome="booked",
                                    summary=json.dumps(kept))
    assert await services.booking.forget_call(call_id="objecting", actor="assistant:objecting")
    text = json.dumps(kept, ensure_ascii=False)
    for word in ("Girard", "1978", "jeudi", "enregistré", "Morel"):
        assert word not in text, text
    assert kept["booked"] == tools.booked_ids() and kept["recording_objected"] is True
    async with services.booking.db.session() as s:
        call = await s.get(Call, "objecting")
        audits = (await s.scalars(select(AuditLog).where(
            AuditLog.call_id == "objecting"))).all()
    assert call is not None and call.summary is None and call.caller_number is None
    assert "call.recording_objection" in [a.action for a in audits]
    assert all("caller_number" not in (a.details or {}) for a in audits)
