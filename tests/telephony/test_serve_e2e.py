"""``twin serve`` with the real assistant (models installed): a caller who hangs up
mid-sentence ends the call cleanly, the server recording is kept, metrics count it."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest
from test_serve import http_get

from telephony.audio import load_wav
from telephony.simulator import CallerSimulator, PatientTurn
from twin.serve import ServeState, run_serve
from twin.serve_config import ServeConfig

pytestmark = [pytest.mark.slow, pytest.mark.models]
DEMO = Path(__file__).resolve().parents[2] / "demo_audio"


def _frames(path: Path) -> tuple[int, int]:
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getnframes()


async def test_caller_hangs_up_mid_sentence(tmp_path: Path) -> None:
    from twin.models import ModelMissingError, require
    from twin.settings import Settings

    for name in ("whisper-base", Settings().llm.model):
        try:
            require(name)
        except ModelMissingError as exc:
            pytest.fail(f"{exc} (scripts/test.sh installs the models)")
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "recordings_dir": str(tmp_path / "rec")},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "voice": {"data_dir": str(tmp_path / "data")}}, source="test")
    stop = asyncio.Event()
    ready: asyncio.Future[ServeState] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_serve(cfg, stop=stop, on_ready=ready.set_result))
    try:
        state = await asyncio.wait_for(asyncio.shield(ready), 600)  # a busy machine is slow
        assert not state.degraded, state.degraded
        speech = await asyncio.to_thread(load_wav, DEMO / "03_book_morel_thursday_pm.wav", 8000)
        half = speech[: len(speech) // 2 // 2 * 2]  # cut mid-sentence
        sim = CallerSimulator(host="127.0.0.1", port=state.server.port, final_timeout_s=0,
                              end_of_turn_silence_s=0.8)
        rec = await sim.run([PatientTurn(pcm=half, timeout_s=30)],
                            record_to=tmp_path / "caller.wav")
        assert rec.greeting_s is not None  # the assistant greeted before the caller spoke
        assert rec.ended_by == "simulator"
        for _ in range(300):
            if state.server.active_calls == 0 and state.server.stats.completed == 1:
                break
            await asyncio.sleep(0.1)
        assert state.server.stats.completed == 1 and state.server.stats.handler_errors == 0
        assert state.health is not None
        _, body = await http_get(state.health.port, "/metrics")
        assert 'twin_calls_total{outcome="caller_hangup"} 1.0' in body
        files = await asyncio.to_thread(lambda: list((tmp_path / "rec").glob("*.wav")))
        assert len(files) == 1
        channels, frames = await asyncio.to_thread(_frames, files[0])
        assert channels == 2 and frames >= len(half) // 2  # the caller's half sentence is in it
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # the call went into the transcripts store (twin/call_archive) with its recording
    from transcripts import CallFilter, TranscriptStore

    store = TranscriptStore(url=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'agenda.db'}")
    try:
        page = await store.list_calls(CallFilter(sources=("assistant",)))
        assert page.total == 1 and page.items[0].handled_by == "assistant"
        view = await store.get_call(page.items[0].id, can_see_pii=False)
        assert view is not None and view.status == "transcribed"
        assert view.audio_path is not None and Path(view.audio_path) == files[0]
        assert view.turns and view.turns[0].speaker == "assistant"  # the greeting
    finally:
        await store.dispose()
