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
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
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


def booked_in(db_url: str) -> Callable[[str], Callable[[], bool]]:
    """For a call id, whether that call has booked yet (read from the shared database)."""

    def for_call(call_id: str) -> Callable[[], bool]:
        def booked() -> bool:
            import psycopg

            with psycopg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://")) as c:
                return c.execute("SELECT 1 FROM appointments WHERE call_id = %s AND status = "
                                 "'booked'", (call_id,)).fetchone() is not None
        return booked

    return for_call


def simulator_app(tmp_path: Path, turns: list[PatientTurn] | None = None,
                  answered: list[str] | None = None, end_of_turn_silence_s: float = 1.0,
                  booked: Callable[[str], Callable[[], bool]] | None = None) -> Any:
    """``AudioSocket(uuid,host:port)`` as the caller simulator (False: could not connect).
    ``booked``: the caller gives their identity again while their call has not booked (the
    bot asks again when Whisper mishears the birth date: "14 juin" for "4 juin")."""

    async def audiosocket(call_uuid: str, where: str) -> bool:
        host, port = where.rsplit(":", 1)
        script = list(turns or [])
        if booked is not None:
            done = booked(call_uuid)
            script = [replace(t, repeat_if=lambda done=done: not done()) if t.wav is not None
                      and "identity" in t.wav.name else t for t in script]
        sim = CallerSimulator(host=host, port=int(port), call_id=call_uuid, final_timeout_s=300,
                              end_of_turn_silence_s=end_of_turn_silence_s,
                              connect_timeout_s=2.0)  # app_audiosocket's connect timeout
        try:
            rec = await sim.run(script, record_to=tmp_path / f"{call_uuid}.wav")
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


# --- two real `twin serve` processes, one LLM server, one PostgreSQL database ---------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_admin_url() -> str:
    url = os.environ.get("TWIN_TEST_PG_URL")
    if not url and (ROOT / "var" / "test-pg-url").exists():
        url = (ROOT / "var" / "test-pg-url").read_text().strip()
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("TWIN_TEST_PG_URL is not set (run: source scripts/services.sh)")
        pytest.skip("TWIN_TEST_PG_URL is not set (run: source scripts/services.sh)")
    return url


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for the workers, dropped afterwards."""
    import asyncpg

    admin = _pg_admin_url()
    plain = admin.replace("postgresql+asyncpg://", "postgresql://")
    name = f"twin_workers_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield admin.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class WorkerProcess:
    """``twin serve --config`` in its own process; ready when its /health says so."""

    def __init__(self, *, name: str, tmp: Path, ami_port: int, llm_url: str, llm_model: str,
                 db_url: str) -> None:
        self.name = name
        self.port, self.health_port = _free_port(), _free_port()
        self.dir = tmp / name
        self.dir.mkdir()
        self.config = self.dir / "serve.toml"
        self.config.write_text(
            f'[audiosocket]\nhost = "127.0.0.1"\nport = {self.port}\n'
            f'recordings_dir = "{self.dir / "recordings"}"\n'
            f'[ami]\nenabled = true\nhost = "127.0.0.1"\nport = {ami_port}\n'
            'secret_env = "TWIN_AMI_SECRET"\n'
            f'[metrics]\nhost = "127.0.0.1"\nport = {self.health_port}\n'
            f'[voice]\ndata_dir = "{self.dir}"\nstt = {{ beam_size = 1, workers = 1 }}\n'
            f'[llm]\nbase_url = "{llm_url}"\nmodel = "{llm_model}"\ntimeout_s = 90.0\n')
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("TWIN_LLM_URL", "TWIN_LLM_MODEL", "TWIN_PROFILE")}
        self.env.update(TWIN_AMI_SECRET=SECRET, TWIN_DATABASE_URL=db_url)
        self.log = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-c", "from twin.cli import main; main()", "-v", "serve",
               "--config", str(self.config)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=ROOT)

    async def health(self) -> dict[str, Any] | None:
        from test_serve import http_get

        try:
            _, body = await http_get(self.health_port, "/health")
            return dict(json.loads(body))
        except (OSError, ValueError):
            return None

    async def wait_ready(self, ceiling_s: float = 900) -> dict[str, Any]:
        """Until /health says ready (the real signal); the ceiling only catches a hang."""
        assert self.proc is not None
        for _ in range(int(ceiling_s / 2)):
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            status = await self.health()
            if status and status.get("ready"):
                return status
            await asyncio.sleep(2)
        raise AssertionError(f"{self.name} not ready within {ceiling_s:.0f} s:\n{self.tail()}")

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 120)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.postgres
@pytest.mark.timeout(3600)
async def test_two_serve_processes_share_one_database_and_one_llm(
        tmp_path: Path, pbx: AmiServer, pg_database: str) -> None:
    import asyncpg

    from records import Database
    from records.seed import seed_demo
    from twin.models import ModelMissingError, require
    from twin.settings import Settings
    from voice.embedded_llm import EmbeddedLLMServer

    model = Settings().llm.model
    for name in ("whisper-base", model):
        try:
            require(name)
        except ModelMissingError as exc:
            pytest.fail(f"{exc} (scripts/test.sh installs the models)")
    # The demo practice and its fictional patients (Paul Girard among them), once, before
    # any worker starts: as in compose, the database is prepared by one process only.
    db = Database(url=pg_database)
    await db.create_schema()
    await seed_demo(db)
    await db.dispose()
    # One LLM server for both workers (Ollama/vLLM in production): 1 thread, modest CPU.
    llm = EmbeddedLLMServer(model_path=require(model) / "model.gguf", n_threads=1,
                            log_path=tmp_path / "llm.log", startup_timeout_s=900)
    await llm.start()
    workers = [WorkerProcess(name=n, tmp=tmp_path, ami_port=pbx.port, llm_url=llm.base_url,
                             llm_model=llm.model_name, db_url=pg_database) for n in ("a", "b")]
    a, b = workers
    try:
        for w in workers:  # the second starts once the first is ready (compose does the same)
            w.start()
            status = await w.wait_ready()
            assert status["status"] in ("ok", "degraded") and status["ami"] == "connected"
        # ceilings only (a busy 2-core machine answers a turn in seconds to minutes); the
        # patient speaks once the assistant has been silent 2.5 s (gaps between sentences)
        script = [PatientTurn(wav=DEMO / f, timeout_s=600) for f in (
            "03_book_morel_thursday_pm.wav", "11_confirm_slot.wav",
            "07_identity_paul_girard.wav", "24_goodbye.wav")]
        plan = Dialplan(path=EXTENSIONS, audiosocket=simulator_app(
            tmp_path, script, end_of_turn_silence_s=2.5, booked=booked_in(pg_database)),
            ami=pbx, env={"TWIN_WORKERS": f"{a.target}&{b.target}"})
        # two callers at once, both asking the docteur for the same Thursday afternoon
        first, second = await asyncio.gather(plan.call(), plan.call())
        answered_by = {r.attempts[-1][0] for r in (first, second)}
        assert answered_by == {a.target, b.target}, (first.attempts, second.attempts)
        call_ids = [r.variables["CALL_UUID"] for r in (first, second)]
        conn = await asyncpg.connect(pg_database.replace("postgresql+asyncpg://",
                                                         "postgresql://"))
        try:
            calls = await conn.fetch("SELECT id, outcome FROM calls WHERE id = ANY($1)", call_ids)
            assert sorted(r["id"] for r in calls) == sorted(call_ids)  # both in the one database
            booked = await conn.fetch(
                "SELECT practitioner_id, start_at, call_id FROM appointments "
                "WHERE status = 'booked' AND call_id = ANY($1)", call_ids)
            if not booked:  # what was said (fictional demo data), to see where it went
                said = await conn.fetch("SELECT call_id, speaker, text FROM tr_turns "
                                        "ORDER BY call_id, idx")
                pytest.fail("no booking: " + "; ".join(
                    f"{r['call_id']} {r['speaker']}: {r['text']}" for r in said))
            clash = await conn.fetch(
                "SELECT practitioner_id, start_at, count(*) FROM appointments "
                "WHERE status = 'booked' GROUP BY 1, 2 HAVING count(*) > 1")
            assert clash == []  # never the same slot twice
        finally:
            await conn.close()

        # worker a is taken down: the calls whose turn it was go to b
        assert await a.terminate() == 0, a.tail()
        plan.audiosocket = simulator_app(
            tmp_path, [PatientTurn(wav=DEMO / "24_goodbye.wav", timeout_s=600)],
            end_of_turn_silence_s=2.5)
        after = [await plan.call() for _ in range(2)]
        for r in after:
            assert r.attempts[-1] == (b.target, True) and r.ended in ("hangup", "queue")
            assert all(t == b.target or (t == a.target and not ok) for t, ok in r.attempts)
        assert any(r.attempts[0] == (a.target, False) for r in after)
        status = await b.health()
        assert status is not None and status["ready"]
    finally:
        for w in workers:
            w.kill()
        await llm.stop()
