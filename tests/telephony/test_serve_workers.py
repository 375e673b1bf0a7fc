"""Several ``twin serve`` workers behind one Asterisk: the dialplan's round robin and failover.

``docker/asterisk/extensions.conf`` itself is run (``mini_pbx``: its ``[twin-inbound]`` and
``[twin-workers]`` contexts, an AMI the workers log into, channel variables set over AMI)
against real ``twin serve`` workers on real sockets:

* fast: in-process workers with small handlers - calls alternate between them, a worker
  that is stopped (what SIGTERM does), still starting or at capacity is skipped, and with
  every worker gone the caller reaches the secretaries' queue with a French reason;
* slow (models, PostgreSQL): two ``twin serve`` processes with Whisper each and one shared
  llama.cpp server (``llm.base_url``, the production shape with Ollama/vLLM), one fresh
  PostgreSQL database; two callers at once ask for the same slot (booked once), then one
  worker gets SIGTERM and its calls go to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mini_pbx import AmiServer, CallerHangup, Dialplan

from telephony.simulator import CallerSimulator, PatientTurn
from twin.serve import ServeState, run_serve
from twin.serve_config import ServeConfig

ROOT = Path(__file__).resolve().parents[2]
EXTENSIONS = ROOT / "docker" / "asterisk" / "extensions.conf"
DEMO = ROOT / "demo_audio"
SECRET = "workers-test-secret"
TONE = b"\x00\x20\x00\xe0" * 800  # 0.4 s at 8 kHz, loud enough to count as speech

HOLD: dict[str, asyncio.Event] = {}  # handler "hold": keeps the call until the test sets it


def done(config: Any) -> Any:
    """The assistant answers and ends the call itself (TWIN_OUTCOME=done)."""

    async def handle(session: Any) -> None:
        await session.send_audio(TONE)  # the caller hears a greeting
        await session.hangup()

    return handle


def hold(config: Any) -> Any:
    """Takes the call and keeps it until ``HOLD["release"]`` is set, then speaks and ends it."""

    async def handle(session: Any) -> None:
        await HOLD["release"].wait()
        await session.send_audio(TONE)
        await session.hangup()

    return handle


async def never_ready(config: Any) -> Any:
    """An assistant that is still warming up when the calls come."""
    await asyncio.Event().wait()


def _worker_config(handler: str, ami_port: int, **audiosocket: Any) -> ServeConfig:
    return ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": f"test_serve_workers:{handler}",
                        **audiosocket},
        "ami": {"enabled": True, "host": "127.0.0.1", "port": ami_port, "secret": SECRET},
        "metrics": {"host": "127.0.0.1", "port": 0}}, source="test")


class Workers:
    """In-process ``twin serve`` workers (tasks) sharing one stand-in PBX."""

    def __init__(self, ami: AmiServer) -> None:
        self.ami = ami
        self.running: list[tuple[asyncio.Event, asyncio.Task[None], ServeState]] = []

    async def start(self, handler: str, *, ready: bool = True, **audiosocket: Any) -> ServeState:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        up: asyncio.Future[ServeState] = loop.create_future()
        cb = "on_ready" if ready else "on_listening"
        task = asyncio.create_task(run_serve(_worker_config(handler, self.ami.port, **audiosocket),
                                             stop=stop, **{cb: up.set_result}))
        state = await asyncio.wait_for(asyncio.shield(up), 120)
        await asyncio.wait_for(state.ami.wait_connected(), 60)
        self.running.append((stop, task, state))
        return state

    async def stop(self, state: ServeState) -> None:
        for stop, task, s in self.running:
            if s is state:
                stop.set()
                await asyncio.wait_for(task, 60)

    async def close(self) -> None:
        for stop, task, _ in self.running:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)


def target(state: ServeState) -> str:
    return f"127.0.0.1:{state.server.port}"


def simulator_app(tmp_path: Path, turns: list[PatientTurn] | None = None,
                  answered: list[str] | None = None) -> Any:
    """``AudioSocket(uuid,host:port)`` as the caller simulator (False: could not connect)."""

    async def audiosocket(call_uuid: str, where: str) -> bool:
        host, port = where.rsplit(":", 1)
        sim = CallerSimulator(host=host, port=int(port), call_id=call_uuid, final_timeout_s=120,
                              connect_timeout_s=2.0)  # app_audiosocket's connect timeout
        try:
            rec = await sim.run(list(turns or []), record_to=tmp_path / f"{call_uuid}.wav")
        except OSError:
            return False
        if rec.ended_by == "simulator":
            raise CallerHangup(where)  # the bot never ended the call
        if answered is not None and rec.greeting_s is not None:
            answered.append(where)
        return True

    return audiosocket


@pytest.fixture
async def pbx() -> AsyncIterator[AmiServer]:
    ami = AmiServer(secret=SECRET)
    await ami.start()
    yield ami
    await ami.stop()


@pytest.fixture
async def workers(pbx: AmiServer) -> AsyncIterator[Workers]:
    w = Workers(pbx)
    yield w
    await w.close()


async def test_single_worker_path_is_unchanged(tmp_path: Path, pbx: AmiServer,
                                               workers: Workers) -> None:
    a = await workers.start("done")
    plan = Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path), ami=pbx, env={})
    plan.globals["TWIN_AUDIOSOCKET"] = target(a)  # twin:9092 in compose
    result = await plan.call()
    assert result.attempts == [(target(a), True)]
    assert result.ended == "hangup" and result.variables["TWIN_OUTCOME"] == "done"


async def test_calls_alternate_and_skip_a_stopped_worker(tmp_path: Path, pbx: AmiServer,
                                                         workers: Workers) -> None:
    a, b = await workers.start("done"), await workers.start("done")
    answered: list[str] = []
    plan = Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path, answered=answered),
                    ami=pbx, env={"TWIN_WORKERS": f"{target(a)}&{target(b)}"})
    results = [await plan.call() for _ in range(4)]
    firsts = [r.attempts[0][0] for r in results]
    assert firsts[0] != firsts[1] and firsts[::2] == [firsts[0]] * 2  # round robin
    assert sorted(answered) == sorted([target(a), target(b)] * 2)
    assert all(r.ended == "hangup" and len(r.attempts) == 1 for r in results)

    gone = target(a)
    await workers.stop(a)  # what SIGTERM does: the listener closes, connections are refused
    results = [await plan.call() for _ in range(2)]
    for r in results:
        assert r.ended == "hangup" and r.attempts[-1] == (target(b), True)
        assert all(t == target(b) or (t == gone and not ok) for t, ok in r.attempts)
    assert any(r.attempts[0] == (gone, False) for r in results)  # its turn came, it was skipped

    await workers.stop(b)  # nobody left: the secretaries, with a French reason
    r = await plan.call()
    assert r.ended == "queue" and [ok for _, ok in r.attempts] == [False, False]
    assert r.variables["TWIN_HANDOFF_REASON"] == "assistant_unreachable"
    assert r.variables["TWIN_HANDOFF_LABEL"] == "Assistant indisponible"


async def test_a_starting_or_full_worker_passes_the_call_on(tmp_path: Path, pbx: AmiServer,
                                                            workers: Workers) -> None:
    starting = await workers.start("never_ready", ready=False)
    HOLD["release"] = asyncio.Event()
    full = await workers.start("hold", capacity=1)
    spare = await workers.start("done")
    plan = Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path), ami=pbx,
                    env={"TWIN_WORKERS": "&".join(map(target, (starting, full, spare)))})
    held = asyncio.create_task(
        Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path), ami=pbx,
                 env={"TWIN_WORKERS": target(full)}).call())
    try:
        for _ in range(600):  # the held call is in progress on `full`
            if full.gate is not None and full.gate.active == 1:
                break
            await asyncio.sleep(0.1)
        assert full.gate is not None and full.gate.active == 1
        results = [await plan.call() for _ in range(3)]  # each worker's turn to start once
        for r in results:
            assert r.ended == "hangup" and r.attempts[-1] == (target(spare), True)
            assert all(ok for _, ok in r.attempts)  # they all took the connection...
        tried = [t for r in results for t, _ in r.attempts]
        # round robin: the three calls start at three different workers
        assert {r.attempts[0][0] for r in results} == set(map(target, (starting, full, spare)))
        assert tried.count(target(starting)) >= 1 and tried.count(target(full)) >= 1
        # ...and the two declined each call at once, saying why (over AMI)
        assert starting.gate is not None
        assert starting.gate.refused_starting == tried.count(target(starting))
        assert full.gate.refused_busy == tried.count(target(full))
    finally:
        HOLD["release"].set()
        first = await asyncio.wait_for(held, 60)
    assert first.ended == "hangup" and first.attempts == [(target(full), True)]

    # every worker declines: the last one's reason reaches the secretaries' phones
    HOLD["release"] = asyncio.Event()
    held = asyncio.create_task(
        Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path), ami=pbx,
                 env={"TWIN_WORKERS": target(full)}).call())
    try:
        for _ in range(600):
            if full.gate.active == 1:
                break
            await asyncio.sleep(0.1)
        r = await Dialplan(path=EXTENSIONS, audiosocket=simulator_app(tmp_path), ami=pbx,
                           env={"TWIN_WORKERS": f"{target(starting)}&{target(full)}"}).call()
    finally:
        HOLD["release"].set()
        await asyncio.wait_for(held, 60)
    assert r.ended == "queue" and len(r.attempts) == 2
    last = r.attempts[-1][0]
    reason, label = (("assistant_starting", "Assistant démarre") if last == target(starting)
                     else ("over_capacity", "Assistant saturé"))
    assert r.variables["TWIN_HANDOFF_REASON"] == reason
    assert r.variables["TWIN_HANDOFF_LABEL"] == label
