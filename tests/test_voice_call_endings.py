"""How a real call with the assistant ends (issue 8, items 7 and 8), on a real socket.

* DTMF 0 cuts the speech already queued;
* a call handed off by the server stopping is stored as a handoff with its reason.

The real per-call pipeline (Silero VAD, eSpeak NG, the call agent with the demo
practice on a real SQLite agenda) answers a raw AudioSocket caller. In the first
test the caller presses 0 early in the greeting: what the caller hears after the
key must be the handoff sentence only, not the rest of the greeting first. The LLM is a scripted
double (never reached here); Whisper is never asked (the caller says nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from llm_doubles import ScriptedLLM

from knowledge.profile import default_profile_path, load_profile
from records import BookingService, Database
from records.seed import seed_demo
from telephony.audiosocket import Frame, Kind, audio_kind_for, encode, read_frame
from telephony.server import AudioSocketServer

pytestmark = [pytest.mark.slow]

TODAY = date(2026, 11, 30)
HANDOFF_FR = "Je vous passe une secrétaire, ne quittez pas."


def _speech_ms(pcm: bytes) -> float:
    """Milliseconds of 20 ms frames that are not silent."""
    x = np.frombuffer(pcm, dtype="<i2")
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    return float((np.abs(frames).max(axis=1) > 200).sum() * 20)


async def test_dtmf_0_cuts_the_greeting_and_hands_off(tmp_path: Path) -> None:
    from knowledge.safety import SafetyRules
    from voice.call import VoiceServices, build_call_handler, greeting_for
    from voice.stt import WhisperEngine
    from voice.tts import ESpeakTTS

    profile = load_profile(default_profile_path())
    db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await db.create_schema()
    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
    tts = ESpeakTTS(language="fr")
    await asyncio.to_thread(tts.load)
    services = VoiceServices(
        llm=ScriptedLLM(), whisper=WhisperEngine(model_dir=Path("whisper-base")), tts_engine=tts,
        booking=BookingService(db=db, now=lambda: datetime(2026, 11, 30, 10, 0).astimezone()),
        profile=profile, safety=SafetyRules.load(), today=lambda: TODAY)

    def spoken_ms(text: str) -> float:
        samples = np.asarray(tts.synthesize(text), dtype=np.int16)
        from telephony.audio import resample

        return _speech_ms(resample(samples.tobytes(), tts.sample_rate, 8000))

    greeting_ms = await asyncio.to_thread(spoken_ms, greeting_for(profile))
    handoff_ms = await asyncio.to_thread(spoken_ms, HANDOFF_FR)
    assert greeting_ms > handoff_ms + 3000  # otherwise the test could not tell

    server = AudioSocketServer(host="127.0.0.1", port=0, handler=build_call_handler(services))
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    before, after = bytearray(), bytearray()
    pressed = asyncio.Event()

    async def talk() -> None:  # the line: a silent caller, a frame every 20 ms
        writer.write(encode(Frame.for_uuid("5f0c8a52-6c2f-4a55-9d4b-0d7f3a1c2b9e")))
        while True:
            writer.write(encode(Frame(audio_kind_for(8000), bytes(320))))
            await writer.drain()
            await asyncio.sleep(0.02)

    async def listen() -> Frame:
        while (f := await read_frame(reader)) is not None:
            if f.kind in (Kind.HANGUP, Kind.ERROR):
                return f
            (after if pressed.is_set() else before).extend(f.payload)
            if not pressed.is_set() and _speech_ms(bytes(before)) >= 500:
                writer.write(encode(Frame.dtmf("0")))  # half a second into the greeting
                await writer.drain()
                pressed.set()
        raise EOFError("closed without a hangup frame")

    talker = asyncio.create_task(talk())
    try:
        last = await asyncio.wait_for(listen(), 120)
    finally:
        talker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talker
        writer.close()
        await server.stop()
        await db.dispose()
    assert last.kind is Kind.HANGUP  # handed off: the dialplan goes on to the queue
    heard_after = _speech_ms(bytes(after))
    assert heard_after > handoff_ms / 2, "the handoff sentence was not spoken"
    # the rest of the greeting (seconds of it) must not be played before the handoff
    assert heard_after < handoff_ms + 1000, (heard_after, handoff_ms, greeting_ms)


async def test_a_call_handed_off_by_a_shutdown_is_stored_as_a_handoff(tmp_path: Path) -> None:
    """``twin serve`` stopping mid-call hands the caller to a human (service_shutdown):
    the agenda's call row says so, not ``caller_hangup`` with no reason."""
    from sqlalchemy import select

    from knowledge.safety import SafetyRules
    from records.models import Call
    from voice.call import VoiceServices, build_call_handler
    from voice.stt import WhisperEngine
    from voice.tts import ESpeakTTS

    profile = load_profile(default_profile_path())
    db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}")
    await db.create_schema()
    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
    tts = ESpeakTTS(language="fr")
    await asyncio.to_thread(tts.load)
    services = VoiceServices(
        llm=ScriptedLLM(), whisper=WhisperEngine(model_dir=Path("whisper-base")), tts_engine=tts,
        booking=BookingService(db=db, now=lambda: datetime(2026, 11, 30, 10, 0).astimezone()),
        profile=profile, safety=SafetyRules.load(), today=lambda: TODAY)
    reports: list[object] = []
    server = AudioSocketServer(host="127.0.0.1", port=0,
                               handler=build_call_handler(services, on_report=reports.append))
    await server.start()
    call_id = "9a1f3c0e-2b4d-4e6f-8a0b-1c2d3e4f5a6b"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode(Frame.for_uuid(call_id)))
    heard = bytearray()
    try:
        while _speech_ms(bytes(heard)) < 300:  # the assistant is greeting the caller
            writer.write(encode(Frame(audio_kind_for(8000), bytes(320))))
            await writer.drain()
            f = await asyncio.wait_for(read_frame(reader), 60)
            assert f is not None and f.is_audio
            heard.extend(f.payload)
        await server.stop()  # SIGTERM mid-call
        for _ in range(600):
            if reports:
                break
            await asyncio.sleep(0.05)
        async with db.session() as s:
            row = (await s.scalars(select(Call).where(Call.id == call_id))).one()
    finally:
        writer.close()
        await db.dispose()
    assert (row.outcome, row.handoff_reason) == ("handoff", "service_shutdown")
