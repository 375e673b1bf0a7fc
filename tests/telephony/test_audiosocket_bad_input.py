"""Bad input on the AudioSocket port: each gives a clear, logged error for that
connection only; other calls go on and the server never crashes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import pytest
from telephony_testkit import RawCaller, Recorder, echo_body

from telephony.audiosocket import Frame, Kind
from telephony.session import CallSession, SessionOptions


async def _alive(port: int) -> None:
    """A fresh call still gets audio back."""
    c = await RawCaller.connect(port)
    await c.send_audio(b"\x10\x00" * 160)
    f = await c.read()
    assert f is not None and f.is_audio
    await c.send(Frame.hangup())
    await c.close()


async def test_connection_that_never_sends_its_uuid(server_factory, caplog) -> None:
    server = await server_factory(Recorder(), uuid_timeout_s=0.3)
    caplog.set_level(logging.WARNING, logger="telephony.server")
    c = await RawCaller.connect(server.port, send_uuid=False)
    frames = await c.read_to_eof()
    assert frames == [Frame(Kind.ERROR, b"\x00")]
    assert "no UUID frame within 0.3 s" in caplog.text
    await c.close()
    await _alive(server.port)


async def test_first_frame_not_a_uuid(server_factory, caplog) -> None:
    server = await server_factory(Recorder())
    c = await RawCaller.connect(server.port, send_uuid=False)
    await c.send(Frame(Kind.AUDIO, bytes(320)))
    assert (await c.read_to_eof())[-1].kind is Kind.ERROR
    assert "first frame is AUDIO (0x10), expected the UUID" in caplog.text
    await c.close()


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"\x42\x00\x00", "unknown AudioSocket kind 0x42"),
        (b"\x10\x00\x03abc", "not a whole number of 16-bit samples"),
        (b"\x03\x00\x02ab", "DTMF frame must carry 1 byte, got 2"),
        (b"\x12\x02\x80", "audio kind 0x12 (16000 Hz) in a 8000 Hz call"),
    ],
)
async def test_bad_frame_mid_call_ends_that_call_only(server_factory, caplog,
                                                      garbage: bytes, message: str) -> None:
    rec = Recorder(body=echo_body)
    server = await server_factory(rec)
    good = await RawCaller.connect(server.port)
    await good.send_audio(b"\x01\x00" * 160)
    bad = await RawCaller.connect(server.port)
    await bad.send_audio(b"\x02\x00" * 160)
    await asyncio.sleep(0.1)
    await bad.send_raw(garbage + b"\x00" * 640)
    tail = await bad.read_to_eof()
    assert tail[-1].kind is Kind.ERROR
    await asyncio.wait_for(rec.done_event(bad.call_id).wait(), 5)
    assert rec.sessions[bad.call_id].hangup_reason.startswith("protocol error")
    assert message in caplog.text and bad.call_id in caplog.text
    # the other call is still served
    await good.send_audio(b"\x33\x11" * 160)
    await good.read_until(lambda f: f.payload == b"\x33\x11" * 160)
    await good.send(Frame.hangup())
    await good.close()
    await bad.close()


async def test_length_longer_than_the_data(server_factory, caplog) -> None:
    rec = Recorder()
    server = await server_factory(rec)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    await c.send_raw(b"\x10\x01\x40" + bytes(100))  # says 320, sends 100, then EOF
    c.writer.write_eof()
    await asyncio.wait_for(rec.done_event(c.call_id).wait(), 5)
    assert "length field says 320 bytes for kind 0x10 but only 100 arrived" in caplog.text
    await c.close()
    await _alive(server.port)


async def test_flood_of_connections_beyond_max_calls(server_factory, caplog) -> None:
    server = await server_factory(Recorder(body=echo_body), max_calls=3, uuid_timeout_s=1.0)
    callers = [await RawCaller.connect(server.port) for _ in range(3)]
    for c in callers:
        await c.send_audio(bytes(320))
        assert (await c.read()) is not None
    flood = [await RawCaller.connect(server.port) for _ in range(20)]
    for f in flood:
        assert (await f.read_to_eof())[-1] == Frame(Kind.ERROR, b"\x00")
        await f.close()
    assert server.stats.rejected_busy == 20
    assert "busy (3 calls in progress)" in caplog.text
    for c in callers:  # the three calls in progress are unaffected
        await c.send_audio(b"\x05\x00" * 160)
        await c.read_until(lambda fr: fr.payload == b"\x05\x00" * 160)
        await c.send(Frame.hangup())
        await c.close()
    for _ in range(100):
        if server.active_calls == 0:
            break
        await asyncio.sleep(0.02)
    await _alive(server.port)


async def test_silent_connections_do_not_hold_slots_forever(server_factory) -> None:
    server = await server_factory(Recorder(body=echo_body), max_calls=2, uuid_timeout_s=0.2)
    idle = [await RawCaller.connect(server.port, send_uuid=False) for _ in range(2)]
    for c in idle:
        assert (await c.read_to_eof())[-1].kind is Kind.ERROR
        await c.close()
    await _alive(server.port)


class FakeControl:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.fail = fail

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        self.calls.append((call_id, dict(variables)))
        if self.fail:
            raise ConnectionError("AMI down")
        return True


async def test_handler_crash_hands_the_caller_to_a_human(server_factory, caplog) -> None:
    async def crash(session: CallSession) -> None:
        async for _ in session.events():
            raise RuntimeError("LLM unreachable")

    control = FakeControl()
    server = await server_factory(Recorder(body=crash), control=control)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP  # the dialplan continues
    assert control.calls == [(c.call_id, {"TWIN_OUTCOME": "handoff",
                                          "TWIN_HANDOFF_REASON": "bot_failure",
                                          "TWIN_HANDOFF_LABEL": "Panne assistant",
                                          "TWIN_HANDOFF_SUMMARY":
                                              "Erreur de l'assistant (RuntimeError)"})]
    assert "handler failed: RuntimeError: LLM unreachable" in caplog.text
    assert server.stats.handler_errors == 1
    await c.close()
    await _alive(server.port)


async def test_handoff_still_ends_the_leg_when_call_control_fails(server_factory, caplog) -> None:
    async def hand(session: CallSession) -> None:
        await session.handoff(reason="emergency", summary="douleur thoracique\ndepuis 1 h")

    control = FakeControl(fail=True)
    rec = Recorder(body=hand)
    server = await server_factory(rec, control=control,
                                  session_options=SessionOptions(handoff_timeout_s=1.0))
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP
    req = rec.sessions[c.call_id].handoff_request
    assert req is not None and req.reason == "emergency" and not req.variables_set
    assert req.summary == "douleur thoracique depuis 1 h"  # one line for the agent's screen
    assert "channel variables" in caplog.text and "AMI down" in caplog.text
    await c.close()


async def test_handler_that_ignores_the_hangup_is_cancelled(server_factory) -> None:
    async def stubborn(session: CallSession) -> None:
        await asyncio.sleep(60)

    server = await server_factory(Recorder(body=stubborn), handler_grace_s=0.2)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    await c.send(Frame.hangup())
    await c.close()
    for _ in range(100):
        if server.active_calls == 0:
            break
        await asyncio.sleep(0.02)
    assert server.active_calls == 0


async def test_peer_that_goes_silent_for_good_is_handed_to_a_human(server_factory, caplog
                                                                    ) -> None:
    control = FakeControl()
    rec = Recorder()
    server = await server_factory(rec, control=control,
                                  session_options=SessionOptions(caller_idle_timeout_s=0.3))
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))  # then nothing at all, socket left open
    # a line that carries nothing (hold, silence suppression) goes to a human, not cut
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP
    await asyncio.wait_for(rec.done_event(c.call_id).wait(), 5)
    req = rec.sessions[c.call_id].handoff_request
    assert req is not None and req.reason == "caller_silent"
    assert control.calls[0][1]["TWIN_HANDOFF_LABEL"] == "Appelant silencieux"
    assert "no frame from" in caplog.text
    await c.close()


async def test_stopping_the_server_hands_live_calls_to_a_human(server_factory) -> None:
    control = FakeControl()
    rec = Recorder()
    server = await server_factory(rec, control=control)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    for _ in range(100):
        if server.active_calls:
            break
        await asyncio.sleep(0.02)
    await server.stop()
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP
    assert control.calls[0][1]["TWIN_OUTCOME"] == "handoff"
    assert control.calls[0][1]["TWIN_HANDOFF_REASON"] == "service_shutdown"
    # events() after the end returns at once instead of blocking
    session = rec.sessions[c.call_id]
    assert [e async for e in session.events()] == []
    await c.close()


async def test_handler_returning_early_hands_off_instead_of_dropping(server_factory) -> None:
    async def forgetful(session: CallSession) -> None:
        return None

    control = FakeControl()
    server = await server_factory(Recorder(body=forgetful), control=control)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP
    assert control.calls[0][1]["TWIN_HANDOFF_REASON"] == "assistant_ended"
    await c.close()
