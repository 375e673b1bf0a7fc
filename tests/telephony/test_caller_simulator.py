"""The caller simulator against the real AudioSocket server and a scripted bot."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from telephony_testkit import Recorder

from telephony.audio import AudioFileError, load_wav, rms_dbfs
from telephony.session import AudioIn, CallSession, Dtmf, Hangup
from telephony.simulator import CallerSimulator, PatientTurn, SimEvent


def tone(rate: int, ms: int, freq: float = 440.0, amp: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def write_wav(path: Path, pcm: bytes, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


class ToneBot:
    """Greets with a tone, then answers every patient utterance (energy then
    ``reply_after_s`` of silence) with a tone; DTMF 0 hands off."""

    def __init__(self, *, reply_delay_s: float = 0.3, reply_ms: int = 400) -> None:
        self.reply_delay_s = reply_delay_s
        self.reply_ms = reply_ms
        self.heard_utterances = 0
        self.digits: list[str] = []

    async def __call__(self, session: CallSession) -> None:
        rate = session.sample_rate
        await session.send_audio(tone(rate, self.reply_ms))
        speaking = False
        quiet = 0
        async for ev in session.events():
            if isinstance(ev, AudioIn):
                loud = rms_dbfs(ev.pcm) > -40
                if loud:
                    speaking, quiet = True, 0
                elif speaking:
                    quiet += 1
                    if quiet * 0.02 >= 0.2:  # end of the patient's utterance
                        speaking = False
                        self.heard_utterances += 1
                        await asyncio.sleep(self.reply_delay_s)
                        await session.send_audio(tone(rate, self.reply_ms, 660))
            elif isinstance(ev, Dtmf):
                self.digits.append(ev.digit)
                if ev.digit == "0":
                    await session.handoff(reason="caller_request", summary="pressed 0")
            elif isinstance(ev, Hangup):
                break


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_two_turn_call_measures_latency_and_records(server_factory, tmp_path: Path,
                                                          rate: int) -> None:
    bot = ToneBot(reply_delay_s=0.3)
    server = await server_factory(Recorder(body=bot))
    wav = write_wav(tmp_path / "hello.wav", tone(16000, 500, 300), 16000)  # resampled as needed
    events: list[SimEvent] = []
    sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=rate,
                          end_of_turn_silence_s=0.4, final_timeout_s=5, on_event=events.append)
    out = tmp_path / "call.wav"
    rec = await sim.run([PatientTurn(wav=wav), PatientTurn(pcm=tone(rate, 300, 350))],
                        record_to=out)
    assert rec.ended_by == "simulator"
    assert bot.heard_utterances == 2
    assert rec.greeting_s is not None
    for t in rec.turns:
        assert t.bot_turn_ended
        assert t.latency_s is not None and t.latency_s >= 0.3  # the bot's deliberate delay
        assert t.bot_speech_s is not None and 0.3 <= t.bot_speech_s <= 1.5
    assert rec.max_bot_gap_s < 1.0
    kinds = [e.kind for e in events]
    assert kinds.count("patient_start") == 2 and "bot_speech_start" in kinds
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, rate)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.abs(data[:, 0]).max() > 4000 and np.abs(data[:, 1]).max() > 4000
    # the patient's first turn sits after the greeting on the shared timeline
    first_patient = int(np.argmax(np.abs(data[:, 0]) > 2000))
    first_bot = int(np.argmax(np.abs(data[:, 1]) > 2000))
    assert first_bot < first_patient


async def test_dtmf_turn_and_handoff_ends_the_call(server_factory, tmp_path: Path) -> None:
    bot = ToneBot()
    rec_handler = Recorder(body=bot)
    server = await server_factory(rec_handler)
    sim = CallerSimulator(host="127.0.0.1", port=server.port, end_of_turn_silence_s=0.3)
    rec = await sim.run([PatientTurn(dtmf="0")], record_to=tmp_path / "c.wav")
    assert bot.digits == ["0"]
    assert rec.ended_by == "bot"
    session = rec_handler.sessions[rec.call_id]
    assert session.handoff_request is not None
    assert session.handoff_request.reason == "caller_request"


async def test_barge_in_starts_while_the_bot_talks(server_factory, tmp_path: Path) -> None:
    async def long_talker(session: CallSession) -> None:
        await session.send_audio(tone(8000, 3000))
        async for ev in session.events():
            if isinstance(ev, AudioIn) and rms_dbfs(ev.pcm) > -40:
                session.clear_audio()
            if isinstance(ev, Hangup):
                break

    server = await server_factory(Recorder(body=long_talker))
    sim = CallerSimulator(host="127.0.0.1", port=server.port, end_of_turn_silence_s=0.3,
                          final_timeout_s=1.0)
    rec = await sim.run([PatientTurn(pcm=tone(8000, 200), barge_in_after_s=0.3)],
                        record_to=tmp_path / "b.wav")
    t = rec.turns[0]
    assert t.barged_in
    assert t.patient_start_s is not None and rec.greeting_s is not None
    assert t.patient_start_s - rec.greeting_s < 2.5  # spoke long before the 3 s greeting ended


def test_bad_wav_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not a RIFF file at all")
    with pytest.raises(AudioFileError, match=r"not-audio\.wav"):
        load_wav(bad, 8000)
    with pytest.raises(AudioFileError, match=r"missing\.wav: file not found"):
        load_wav(tmp_path / "missing.wav", 8000)


async def test_simulator_reports_a_bad_wav_before_dialing(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    sim = CallerSimulator(host="127.0.0.1", port=1)  # never dialled
    with pytest.raises(AudioFileError, match=r"broken\.wav"):
        await sim.run([PatientTurn(wav=bad)], record_to=tmp_path / "x.wav")


def test_load_wav_converts_stereo_44k_to_mono_8k(tmp_path: Path) -> None:
    mono = np.frombuffer(tone(44100, 100), dtype="<i2")
    stereo = np.repeat(mono, 2).astype("<i2").tobytes()
    p = write_wav(tmp_path / "s.wav", stereo, 44100, channels=2)
    pcm = load_wav(p, 8000)
    assert len(pcm) == 2 * 800
    assert rms_dbfs(pcm) == pytest.approx(rms_dbfs(mono.tobytes()), abs=0.5)


async def test_latency_counts_from_the_end_of_speech_and_overlaps_are_seen(
        server_factory, tmp_path: Path) -> None:
    bot = ToneBot(reply_delay_s=0.1, reply_ms=300)
    server = await server_factory(Recorder(body=bot))
    pcm = tone(8000, 300) + bytes(2 * 8000) + tone(8000, 300) + bytes(2 * 8000 * 2)
    sim = CallerSimulator(host="127.0.0.1", port=server.port, end_of_turn_silence_s=0.4,
                          final_timeout_s=5)
    rec = await sim.run([PatientTurn(pcm=pcm)], record_to=tmp_path / "o.wav")
    t = rec.turns[0]
    assert t.bot_overlaps == 1  # the bot answered in the 1 s pause, the patient went on
    assert t.patient_speech_end_s is not None and t.patient_end_s is not None
    assert t.patient_end_s - t.patient_speech_end_s >= 1.9  # 2 s of trailing silence
    assert t.latency_s is not None and 0.2 <= t.latency_s < 1.9  # from the speech, not the file


async def test_a_caller_asked_again_repeats_the_turn_once(server_factory, tmp_path: Path) -> None:
    bot = ToneBot(reply_delay_s=0.2)
    server = await server_factory(Recorder(body=bot))
    asked: list[int] = []

    def asked_again() -> bool:  # the bot's answer to the first utterance asks to repeat
        asked.append(bot.heard_utterances)
        return True

    events: list[SimEvent] = []
    sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000,
                          end_of_turn_silence_s=0.4, final_timeout_s=5, on_event=events.append)
    rec = await sim.run([PatientTurn(pcm=tone(8000, 400, 300), repeat_if=asked_again),
                         PatientTurn(pcm=tone(8000, 300, 350))], record_to=tmp_path / "c.wav")
    # said twice (max_repeats=1 by default), then the next turn: three utterances heard,
    # the question asked once, after the bot had answered the first utterance
    assert bot.heard_utterances == 3
    assert asked == [1]
    assert [e.kind for e in events].count("repeat") == 1
    assert [t.source for t in rec.turns] == ["pcm 6400 bytes", "pcm 6400 bytes", "pcm 4800 bytes"]
    assert all(t.latency_s is not None for t in rec.turns)


async def test_no_repeat_when_the_bot_did_not_ask(server_factory, tmp_path: Path) -> None:
    bot = ToneBot(reply_delay_s=0.2)
    server = await server_factory(Recorder(body=bot))
    sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000,
                          end_of_turn_silence_s=0.4, final_timeout_s=5)
    rec = await sim.run([PatientTurn(pcm=tone(8000, 400, 300), repeat_if=lambda: False),
                         PatientTurn(pcm=tone(8000, 300, 350))], record_to=tmp_path / "c.wav")
    assert bot.heard_utterances == 2 and len(rec.turns) == 2


def test_demo_caller_repeats_only_when_asked() -> None:
    from twin.demo import asked_to_repeat

    assert asked_to_repeat(["Pouvez-vous me redire votre nom et votre date de naissance ?"])
    assert asked_to_repeat(["Pardon, je n'ai pas bien compris. Pouvez-vous répéter ?"])
    assert not asked_to_repeat(["Je peux vous proposer jeudi 3 décembre à 14 heures."])
    assert not asked_to_repeat([])
