"""``twin serve`` start-up and admission control (issue 8, items 2 and 9).

* AudioSocket listens while the assistant is still starting; ``/health`` says
  ``degraded`` (not ready) and a call arriving then is handed to the secretaries at
  once, with a reason (never refused, never silence);
* a call beyond the assistant's capacity is handed off at once (``over_capacity``)
  and ``/health`` says ``degraded`` while no further call could be answered;
* speech recognition of concurrent calls really runs concurrently up to ``workers``;
* ``twin serve`` reads ``TWIN_DATABASE_URL`` like every other command.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import serve_handlers
from click.testing import CliRunner
from telephony_testkit import RawCaller
from test_serve import http_get, running  # noqa: F401 - the fixture

from telephony.audiosocket import Frame, Kind
from twin.admission import capacity_for
from twin.serve import ServeState, run_serve, serve, voice_settings
from twin.serve_config import ServeConfig

HERE = Path(__file__).parent
TONE = b"\x22\x00" * 160


async def _health(state: ServeState) -> dict:
    assert state.health is not None
    code, body = await http_get(state.health.port, "/health")
    assert code == 200, body
    return json.loads(body)


async def _metrics(state: ServeState) -> str:
    assert state.health is not None
    return (await http_get(state.health.port, "/metrics"))[1]


async def test_calls_during_the_warm_up_go_to_the_secretaries_at_once(running) -> None:  # noqa: F811
    sys.path.insert(0, str(HERE))
    serve_handlers.START["go"] = go = asyncio.Event()
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:slow_start"},
        "metrics": {"host": "127.0.0.1", "port": 0}}, source="test")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[ServeState] = loop.create_future()
    ready: asyncio.Future[ServeState] = loop.create_future()
    running.append(asyncio.create_task(run_serve(
        cfg, stop=stop, on_ready=ready.set_result, on_listening=listening.set_result)))
    state = await asyncio.wait_for(asyncio.shield(listening), 30)

    status = await _health(state)  # listening, not ready: the dialplan's callers go to humans
    assert status["status"] == "degraded" and status["ready"] is False
    assert any("starting" in p for p in status["problems"])
    c = await RawCaller.connect(state.server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof(wait_s=10))[-1].kind is Kind.HANGUP  # handed off, not refused
    await c.close()
    for _ in range(200):
        if 'twin_handoffs_total{reason="assistant_starting"} 1.0' in await _metrics(state):
            break
        await asyncio.sleep(0.05)
    assert 'twin_handoffs_total{reason="assistant_starting"} 1.0' in await _metrics(state)
    assert not ready.done()

    go.set()  # the warm-up ends
    await asyncio.wait_for(asyncio.shield(ready), 30)
    status = await _health(state)
    assert status["status"] == "ok" and status["ready"] is True, status
    c = await RawCaller.connect(state.server.port)
    await c.send_audio(TONE)
    await c.read_until(lambda f: f.payload == TONE, wait_s=10)  # the assistant answers now
    await c.send(Frame.dtmf("#"))
    assert (await c.read_to_eof(wait_s=10))[-1].kind is Kind.HANGUP
    await c.close()
    stop.set()
    await asyncio.wait_for(running[0], 30)


async def test_a_stop_during_the_warm_up_ends_cleanly(running) -> None:  # noqa: F811
    sys.path.insert(0, str(HERE))
    serve_handlers.START["go"] = asyncio.Event()  # never set: the warm-up never ends
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:slow_start"},
        "metrics": {"host": "127.0.0.1", "port": 0}}, source="test")
    stop = asyncio.Event()
    listening: asyncio.Future[ServeState] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_serve(cfg, stop=stop, on_listening=listening.set_result))
    running.append(task)
    await asyncio.wait_for(asyncio.shield(listening), 30)
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_call_beyond_capacity_is_handed_off_and_health_says_degraded(running  # noqa: F811
                                                                            ) -> None:
    sys.path.insert(0, str(HERE))
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:echo",
                        "capacity": 1, "max_calls": 8},
        "metrics": {"host": "127.0.0.1", "port": 0}}, source="test")
    stop = asyncio.Event()
    ready: asyncio.Future[ServeState] = asyncio.get_running_loop().create_future()
    running.append(asyncio.create_task(run_serve(cfg, stop=stop, on_ready=ready.set_result)))
    state = await asyncio.wait_for(asyncio.shield(ready), 30)
    status = await _health(state)
    assert status["status"] == "ok" and status["capacity"] == 1

    first = await RawCaller.connect(state.server.port)
    await first.send_audio(TONE)
    await first.read_until(lambda f: f.payload == TONE, wait_s=10)  # answered by the assistant
    status = await _health(state)
    assert status["status"] == "degraded" and any("capacity" in p for p in status["problems"])

    second = await RawCaller.connect(state.server.port)
    await second.send_audio(bytes(320))
    assert (await second.read_to_eof(wait_s=10))[-1].kind is Kind.HANGUP
    for _ in range(200):
        if 'twin_handoffs_total{reason="over_capacity"} 1.0' in await _metrics(state):
            break
        await asyncio.sleep(0.05)
    assert 'twin_handoffs_total{reason="over_capacity"} 1.0' in await _metrics(state)

    await first.send(Frame.dtmf("#"))
    assert (await first.read_to_eof(wait_s=10))[-1].kind is Kind.HANGUP
    for _ in range(200):
        if (await _health(state))["status"] == "ok":
            break
        await asyncio.sleep(0.05)
    assert (await _health(state))["status"] == "ok"
    for c in (first, second):
        await c.close()
    stop.set()
    await asyncio.wait_for(running[0], 30)


def test_capacity_follows_the_measured_recognition_pace() -> None:
    # Whisper base on the 2-core dev machine: ~1.2 s per utterance, one decoder
    assert capacity_for(decode_s=1.2, workers=1) == 2
    assert capacity_for(decode_s=1.2, workers=2) == 4
    assert capacity_for(decode_s=0.3, workers=1) == 8
    assert capacity_for(decode_s=10.0, workers=1) == 1  # never zero: then it hands off
    with pytest.raises(ValueError):
        capacity_for(decode_s=0)


class _BarrierModel:
    """CTranslate2 stand-in: each decode waits until ``parties`` decodes run at once."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=30)

    def transcribe(self, audio: np.ndarray, **_kw: object) -> tuple[list[object], object]:
        self.barrier.wait()  # BrokenBarrierError if the decodes were serialised
        return [], SimpleNamespace(language="fr")


async def test_concurrent_calls_are_transcribed_concurrently() -> None:
    from voice.stt import WhisperEngine

    # the 30 s path calls model.transcribe (the fitted window drives CTranslate2 directly)
    engine = WhisperEngine(model_dir=Path("unused"), workers=2, window="full")
    engine._model = _BarrierModel(2)  # the one line that replaces load()
    pcm = bytes(16000)
    a, b = await asyncio.gather(asyncio.to_thread(engine.transcribe, pcm, 16000),
                                asyncio.to_thread(engine.transcribe, pcm, 16000))
    assert a.text == b.text == ""
    assert engine.decode_s is not None and engine.workers == 2


def test_serve_settings_read_the_environment(tmp_path: Path) -> None:
    cfg = ServeConfig.from_dict({"voice": {"data_dir": str(tmp_path)}}, source="serve.toml")
    url = "postgresql+asyncpg://twin:pw@db:5432/twin"
    settings = voice_settings(cfg, env={"TWIN_DATABASE_URL": url,
                                        "TWIN_LLM_URL": "http://ollama:11434/v1"})
    assert settings.db_url == url and settings.llm.base_url == "http://ollama:11434/v1"
    assert voice_settings(cfg, env={}).db_url.startswith("sqlite+aiosqlite:///")


def test_serve_check_shows_the_database_from_the_environment() -> None:
    toml = Path(__file__).resolve().parents[2] / "docker" / "twin" / "serve.toml"
    result = CliRunner().invoke(serve, ["--config", str(toml), "--check"], env={
        "TWIN_AMI_SECRET": "x", "TWIN_DATABASE_URL": "postgresql+asyncpg://twin:secret@db:5432/twin"})
    assert result.exit_code == 0, result.output
    assert "database postgresql+asyncpg://twin:***@db:5432/twin" in result.output
    assert "secret@" not in result.output


@pytest.mark.models
@pytest.mark.slow
async def test_the_recognition_pace_is_measured_with_the_real_models() -> None:
    from twin.models import ModelMissingError, require
    from twin.runtime import measure_stt_pace
    from voice.stt import WhisperEngine
    from voice.tts import ESpeakTTS

    try:
        model_dir = require("whisper-base")
    except ModelMissingError as exc:
        pytest.fail(f"{exc} (scripts/test.sh installs the models)")
    whisper = WhisperEngine(model_dir=model_dir, language="fr", workers=1)
    tts = ESpeakTTS(language="fr")
    await asyncio.gather(asyncio.to_thread(whisper.load), asyncio.to_thread(tts.load))
    pace = await asyncio.to_thread(measure_stt_pace, whisper, tts)
    assert pace > 0 and whisper.decode_s == pace
    assert capacity_for(decode_s=pace, workers=whisper.workers) >= 1


async def test_serve_fills_the_gaps_of_a_silence_suppressing_trunk(running) -> None:  # noqa: F811
    """``twin serve`` faces a real Asterisk: a hole in the caller's frames is heard as
    silence by the assistant (the library default leaves it off for in-process callers)."""
    sys.path.insert(0, str(HERE))
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:echo"},
        "metrics": {"enabled": False}}, source="test")
    stop = asyncio.Event()
    ready: asyncio.Future[ServeState] = asyncio.get_running_loop().create_future()
    running.append(asyncio.create_task(run_serve(cfg, stop=stop, on_ready=ready.set_result)))
    state = await asyncio.wait_for(asyncio.shield(ready), 30)
    c = await RawCaller.connect(state.server.port)
    await c.send_audio(TONE)
    await c.read_until(lambda f: f.payload == TONE, wait_s=10)
    session = state.server.session(c.call_id)
    assert session is not None
    for _ in range(400):  # the trunk sends nothing; the assistant keeps hearing time pass
        if session.frames_filled >= 10:
            break
        await asyncio.sleep(0.05)
    assert session.frames_filled >= 10 and not session.closed
    await c.send(Frame.dtmf("#"))
    assert (await c.read_to_eof(wait_s=10))[-1].kind is Kind.HANGUP
    await c.close()
    stop.set()
    await asyncio.wait_for(running[0], 30)
