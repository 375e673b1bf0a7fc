"""What a real Asterisk line does that the simulator does not (issue 8, items 6-8).

* ``app_audiosocket`` forwards only what the channel delivers: with silence
  suppression or hold, the caller's frames stop for seconds. The call must go on,
  and the handler must still hear (silence) at real time, so the end of speech is
  detected;
* ending the bot's leg must not clip its last words: every queued byte, then a tail
  of silence, is written before the hangup frame, and nothing after it;
* handoff reasons reach the secretaries in French words.

Real TCP sockets throughout (``RawCaller`` plays Asterisk).
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Mapping

from telephony_testkit import RawCaller, Recorder

from telephony.audiosocket import Frame, Kind
from telephony.handoff_labels import french_summary, handoff_label
from telephony.server import tune_socket
from telephony.session import AudioIn, CallSession, Hangup, SessionOptions

SPEECH = (b"\x10\x27" * 160)  # one 20 ms frame of a loud constant (0x2710 little-endian)


class Control:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        self.calls.append(dict(variables))
        return True


async def test_gaps_in_the_callers_frames_are_filled_with_silence_and_the_call_goes_on(
        server_factory) -> None:
    seen: list[AudioIn] = []
    gap_over = asyncio.Event()

    async def body(session: CallSession) -> None:
        async for ev in session.events():
            if isinstance(ev, AudioIn):
                seen.append(ev)
                if ev.pcm == SPEECH and len(seen) > 5:
                    gap_over.set()
            elif isinstance(ev, Hangup):
                return

    rec = Recorder(body=body)
    server = await server_factory(rec, session_options=SessionOptions(
        caller_gap_fill_ms=100, caller_idle_timeout_s=60))
    c = await RawCaller.connect(server.port)
    await c.send_audio(SPEECH * 3)  # speech, then the trunk suppresses the silence
    # 1.5 s without a single frame, as a silence-suppressing trunk does
    await asyncio.sleep(1.5)
    await c.send_audio(SPEECH)  # the caller speaks again
    await asyncio.wait_for(gap_over.wait(), 10)
    session = rec.sessions[c.call_id]
    assert not session.closed, "a gap in the caller's frames must not end the call"
    filled = seen[3:-1]
    assert filled and all(ev.pcm == bytes(320) for ev in filled)  # silence, 20 ms each
    assert len(filled) == session.frames_filled
    # the gap lasted at least 1.5 s: at least the part after the 100 ms threshold is filled
    assert session.frames_filled >= (1500 - 100) // 20, session.frames_filled
    assert session.frames_in == 4
    await c.send(Frame.hangup())
    await asyncio.wait_for(rec.done_event(c.call_id).wait(), 10)
    await c.close()


async def test_a_regular_caller_gets_no_filler(server_factory) -> None:
    rec = Recorder()
    server = await server_factory(rec, session_options=SessionOptions(caller_gap_fill_ms=200))
    c = await RawCaller.connect(server.port)
    await c.send_audio(SPEECH * 25, paced=True)  # 0.5 s, one frame every 20 ms
    await c.send(Frame.hangup())
    await asyncio.wait_for(rec.done_event(c.call_id).wait(), 10)
    audio = [e for e in rec.events[c.call_id] if isinstance(e, AudioIn)]
    assert len(audio) == 25 + rec.sessions[c.call_id].frames_filled
    # only a stall of the (shared, loaded) machine can look like a gap
    assert rec.sessions[c.call_id].frames_filled < 25
    await c.close()


def _speech_then_hangup(frames: list[Frame]) -> tuple[bytes, int]:
    """(every audio byte before the hangup frame, silent frames after the last speech)."""
    assert frames[-1].kind is Kind.HANGUP, [f.kind for f in frames[-3:]]
    audio = [f.payload for f in frames[:-1] if f.is_audio]
    last = max(i for i, p in enumerate(audio) if p != bytes(len(p)))
    return b"".join(audio), len(audio) - 1 - last


async def test_hangup_sends_every_queued_word_and_a_tail_before_the_hangup_frame(
        server_factory) -> None:
    words = bytes(range(1, 251)) * 64  # 16 000 bytes = 1 s of non-silent 8 kHz audio

    async def body(session: CallSession) -> None:
        await session.send_audio(words)  # returns with up to 100 ms still queued
        await session.hangup()

    control = Control()
    server = await server_factory(Recorder(body=body), control=control,
                                  session_options=SessionOptions(end_tail_ms=300))
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    frames = await c.read_to_eof(wait_s=20)
    audio, tail = _speech_then_hangup(frames)
    assert words in audio, "the last words were clipped"
    assert audio.index(words) + len(words) <= len(audio)
    assert tail >= math.ceil(300 / 20) - 1  # the far end's jitter buffer plays out
    assert control.calls == [{"TWIN_OUTCOME": "done"}]
    # nothing after the hangup frame: the socket is closed right behind it
    assert await asyncio.wait_for(c.reader.read(), 5) == b""
    await c.close()


async def test_handoff_plays_out_too_and_speaks_french_to_the_secretaries(server_factory
                                                                          ) -> None:
    words = bytes(range(1, 201)) * 40

    async def body(session: CallSession) -> None:
        await session.send_audio(words)
        await session.handoff(reason="caller_request",
                              summary="human_request: « je veux parler à quelqu'un »")

    control = Control()
    rec = Recorder(body=body)
    server = await server_factory(rec, control=control)
    c = await RawCaller.connect(server.port)
    await c.send_audio(bytes(320))
    audio, tail = _speech_then_hangup(await c.read_to_eof(wait_s=20))
    assert words in audio and tail >= 10
    assert control.calls == [{
        "TWIN_OUTCOME": "handoff", "TWIN_HANDOFF_REASON": "caller_request",
        "TWIN_HANDOFF_LABEL": "Demande du patient",
        "TWIN_HANDOFF_SUMMARY": "Demande du patient : « je veux parler à quelqu'un »"}]
    req = rec.sessions[c.call_id].handoff_request
    assert req is not None and req.label == "Demande du patient"
    await c.close()


def test_every_reason_the_code_gives_has_french_words() -> None:
    for reason in ("caller_request", "emergency", "suicide", "anger", "misunderstanding",
                   "medical_insistence", "language", "bot_failure", "assistant_ended",
                   "service_shutdown", "assistant_starting", "over_capacity", "caller_silent"):
        label = handoff_label(reason)
        assert label != "Transfert" and "_" not in label, reason
    assert handoff_label("something_new") == "Transfert"
    assert french_summary("LLM unavailable: timeout") == "Modèle de langue indisponible : timeout"
    assert french_summary("touche 0 (secrétariat)") == "touche 0 (secrétariat)"


def test_tcp_liveness_is_set_on_audiosocket_connections() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    try:
        tune_socket(conn, user_timeout_s=20.0)
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20000
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 10
    finally:
        conn.close()
        cli.close()
        srv.close()


async def test_a_stall_of_this_process_is_not_taken_for_a_gap(server_factory) -> None:
    """The caller simulator shares the server's event loop (``twin demo``, the e2e tests):
    when the machine starves the process, both stop; the frame the caller sends right
    after must be read, not preceded by invented silence in the middle of a word."""
    import time

    rec = Recorder()
    server = await server_factory(rec, session_options=SessionOptions(caller_gap_fill_ms=100))
    c = await RawCaller.connect(server.port)
    await c.send_audio(SPEECH * 10, paced=True)
    # while the caller waits for its next 20 ms tick, something blocks the whole process
    asyncio.get_running_loop().call_later(0.005, time.sleep, 0.4)
    await c.send_audio(SPEECH * 10, paced=True)
    await c.send(Frame.hangup())
    await asyncio.wait_for(rec.done_event(c.call_id).wait(), 10)
    session = rec.sessions[c.call_id]
    audio = [e.pcm for e in rec.events[c.call_id] if isinstance(e, AudioIn)]
    assert session.frames_filled == 0 and audio == [SPEECH] * 20
    await c.close()
