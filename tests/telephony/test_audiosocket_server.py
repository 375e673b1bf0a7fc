"""The AudioSocket server driven by a real TCP client speaking the protocol."""

from __future__ import annotations

import asyncio
import os
import struct
import wave
from pathlib import Path

import numpy as np
from telephony_testkit import RawCaller, Recorder, echo_body

from telephony.audiosocket import Frame, Kind
from telephony.session import AudioIn, CallSession, Dtmf, Hangup, SessionOptions


def read_stereo(path: Path, rate: int) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, rate)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def tone(rate: int, ms: int, freq: float = 440.0, amp: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def pattern(seed: int, n: int) -> bytes:
    """A recognisable, non-silent payload unique to one caller."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, n // 2, dtype=np.int16).astype("<i2").tobytes()


async def test_echo_round_trip_8k(server_factory) -> None:
    rec = Recorder(body=echo_body)
    server = await server_factory(rec)
    caller = await RawCaller.connect(server.port)
    sent = pattern(1, 320 * 10)
    await caller.send_audio(sent)
    got = bytearray()
    while sent not in bytes(got):
        f = await caller.read()
        assert f is not None and f.kind is Kind.AUDIO and len(f.payload) == 320
        got += f.payload
    await caller.send(Frame.dtmf("#"))
    tail = await caller.read_to_eof()
    assert tail[-1].kind is Kind.HANGUP
    await asyncio.wait_for(rec.done_event(caller.call_id).wait(), 5)
    assert server.stats.completed == 1 or server.active_calls <= 1
    await caller.close()


async def test_keepalive_silence_while_the_handler_thinks(server_factory) -> None:
    async def think(session: CallSession) -> None:
        await asyncio.sleep(2.5)  # longer than Asterisk's 2 s frame timeout
        await session.hangup()

    server = await server_factory(Recorder(body=think))
    caller = await RawCaller.connect(server.port)
    await caller.send_audio(bytes(320))
    loop = asyncio.get_running_loop()
    last = loop.time()
    max_gap = 0.0
    frames: list[Frame] = []
    while True:
        f = await caller.read(wait_s=3.0)
        now = loop.time()
        max_gap = max(max_gap, now - last)
        last = now
        assert f is not None
        frames.append(f)
        if f.kind is Kind.HANGUP:
            break
    audio = [f for f in frames if f.is_audio]
    assert len(audio) > 50  # frames kept flowing all along
    assert all(f.payload == bytes(320) for f in audio)  # and they were silence
    assert max_gap < 1.0  # never anywhere near Asterisk's 2 s give-up
    await caller.close()


async def test_dtmf_reaches_the_handler(server_factory) -> None:
    rec = Recorder()
    server = await server_factory(rec)
    caller = await RawCaller.connect(server.port)
    await caller.send_audio(bytes(320))
    for d in "0*#7":
        await caller.send(Frame.dtmf(d))
    await caller.send(Frame.hangup())
    await asyncio.wait_for(rec.done_event(caller.call_id).wait(), 5)
    evs = rec.events[caller.call_id]
    assert [e.digit for e in evs if isinstance(e, Dtmf)] == ["0", "*", "#", "7"]
    assert evs[-1] == Hangup("caller hangup")
    await caller.close()


async def test_abrupt_disconnect_keeps_the_recording(server_factory, tmp_path: Path) -> None:
    rec = Recorder(body=echo_body)
    server = await server_factory(rec, recordings_dir=tmp_path)
    caller = await RawCaller.connect(server.port)
    speech = tone(8000, 600)
    await caller.send_audio(speech, paced=True)
    caller.writer.transport.abort()  # mid-sentence, no hangup frame
    await asyncio.wait_for(rec.done_event(caller.call_id).wait(), 5)
    for _ in range(100):
        if server.active_calls == 0:
            break
        await asyncio.sleep(0.02)
    assert server.active_calls == 0
    session = rec.sessions[caller.call_id]
    assert session.hangup_reason == "socket closed"
    files = [n for n in os.listdir(tmp_path) if n.endswith(f"{caller.call_id}.wav")]
    assert len(files) == 1
    assert session.recording_path is not None and session.recording_path.name == files[0]
    data = read_stereo(session.recording_path, 8000)
    assert len(data) >= 0.5 * 8000  # the caller's 600 ms made it to the file
    assert np.abs(data[:, 0]).max() > 4000  # left: caller
    assert np.abs(data[:, 1]).max() > 4000  # right: the echoed bot audio
    # the server goes on taking calls
    again = await RawCaller.connect(server.port)
    await again.send_audio(pattern(2, 640))
    assert (await again.read()) is not None
    await again.close()


async def test_16k_call(server_factory) -> None:
    rec = Recorder(body=echo_body)
    server = await server_factory(rec)
    caller = await RawCaller.connect(server.port)
    sent = pattern(3, 640 * 5)
    await caller.send_audio(sent, rate=16000)
    got = bytearray()
    while sent not in bytes(got):
        f = await caller.read()
        assert f is not None and f.kind is Kind.AUDIO_16K and len(f.payload) == 640
        got += f.payload
    assert rec.sessions[caller.call_id].sample_rate == 16000
    await caller.send(Frame.hangup())
    await asyncio.wait_for(rec.done_event(caller.call_id).wait(), 5)
    await caller.close()


async def test_send_audio_backpressure_and_barge_in(server_factory) -> None:
    seen: dict[str, float] = {}

    async def body(session: CallSession) -> None:
        await session.send_audio(tone(8000, 1000))  # 1 s of audio
        seen["after_send"] = session.queued_ms()
        await session.send_audio(tone(8000, 2000))
        seen["before_clear"] = session.queued_ms()
        session.clear_audio()
        seen["after_clear"] = session.queued_ms()
        await session.wait_played()
        await session.hangup()
        await session.hangup()  # idempotent

    server = await server_factory(Recorder(body=body),
                                  session_options=SessionOptions(backpressure_ms=100))
    caller = await RawCaller.connect(server.port)
    await caller.send_audio(bytes(320))
    frames = await caller.read_to_eof(wait_s=10)
    assert frames[-1].kind is Kind.HANGUP
    assert seen["after_send"] < 100
    assert seen["before_clear"] < 100
    assert seen["after_clear"] == 0
    await caller.close()


async def test_events_end_with_one_hangup_when_the_bot_hangs_up(server_factory) -> None:
    got: list[object] = []

    async def body(session: CallSession) -> None:
        async for ev in session.events():
            got.append(ev)
            if isinstance(ev, AudioIn):
                await session.hangup()

    server = await server_factory(Recorder(body=body))
    caller = await RawCaller.connect(server.port)
    await caller.send_audio(bytes(320))
    assert (await caller.read_to_eof())[-1].kind is Kind.HANGUP
    assert isinstance(got[0], AudioIn)
    assert got[-1] == Hangup("hangup by bot")
    assert sum(isinstance(e, Hangup) for e in got) == 1
    await caller.close()


async def test_concurrent_calls_each_get_their_own_audio(server_factory) -> None:
    rec = Recorder(body=echo_body)
    server = await server_factory(rec, max_calls=16)
    n_calls = 10

    async def one(i: int) -> bytes:
        caller = await RawCaller.connect(server.port)
        sent = pattern(100 + i, 320 * 8)
        await caller.send_audio(sent, paced=True)
        got = bytearray()
        while sent not in bytes(got):
            f = await caller.read()
            assert f is not None
            got += f.payload
        await caller.send(Frame.hangup())
        await caller.close()
        return bytes(got)

    results = await asyncio.gather(*(one(i) for i in range(n_calls)))
    for i, got in enumerate(results):
        assert pattern(100 + i, 320 * 8) in got
        for j in range(n_calls):
            if j != i:
                assert pattern(100 + j, 320)[:320] not in got
    assert server.stats.accepted == n_calls


async def test_wire_bytes_of_a_frame_header(server_factory) -> None:
    server = await server_factory(Recorder(body=echo_body))
    caller = await RawCaller.connect(server.port)
    # hand-built: kind 0x10, length 0x0140, 320 bytes
    await caller.send_raw(b"\x10\x01\x40" + struct.pack("<160h", *([1000] * 160)))
    f = await caller.read_until(lambda f: f.payload != bytes(320))
    assert f.kind is Kind.AUDIO and f.payload == struct.pack("<160h", *([1000] * 160))
    await caller.close()
