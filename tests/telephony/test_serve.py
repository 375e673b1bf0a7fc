"""``twin serve``: config validation, wiring (AudioSocket + AMI + health/metrics), CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ami_replay import AmiReplayServer, load_script
from telephony_testkit import RawCaller

from telephony.audiosocket import Frame, Kind
from twin.serve import ServeState, run_serve
from twin.serve_config import ServeConfig, ServeConfigError, load_serve_config

HERE = Path(__file__).parent
CALL = "0b3e6a4c-2f1d-4c59-9a7e-1d2c3b4a5f60"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_toml_and_yaml_configs_load(tmp_path: Path) -> None:
    cfg = load_serve_config(write(tmp_path, "s.toml", """
[audiosocket]
port = 9093
max_calls = 8
uuid_timeout_s = 2
[ami]
enabled = true
host = "asterisk"
secret_env = "TWIN_AMI_SECRET"
[handoff]
mode = "redirect"
[llm]
base_url = "http://ollama:11434/v1"
model = "qwen2.5:7b-instruct"
[database]
url = "postgresql+asyncpg://twin@db/twin"
[voice]
data_dir = "/data"
"""))
    assert cfg.audiosocket.port == 9093 and cfg.audiosocket.uuid_timeout_s == 2.0
    assert cfg.ami.enabled and cfg.handoff.mode == "redirect"
    assert cfg.voice_settings_dict() == {
        "data_dir": "/data", "llm": {"base_url": "http://ollama:11434/v1",
                                     "model": "qwen2.5:7b-instruct"},
        "database_url": "postgresql+asyncpg://twin@db/twin"}
    assert cfg.ami_secret({"TWIN_AMI_SECRET": "x"}) == "x"
    with pytest.raises(ServeConfigError, match="TWIN_AMI_SECRET is not set"):
        cfg.ami_secret({})
    y = load_serve_config(write(tmp_path, "s.yaml", "audiosocket:\n  port: 9000\nmetrics:\n  enabled: false\n"))
    assert y.audiosocket.port == 9000 and not y.metrics.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[audiosokcet]\nport = 1\n", r"unknown section\(s\) audiosokcet"),
        ("[audiosocket]\nport = \"9092\"\n", r"\[audiosocket\]\.port: expected int, got str"),
        ("[audiosocket]\nport = 70000\n", r"70000 is not a TCP port"),
        ("[audiosocket]\nmax_calls = 0\n", "max_calls must be at least 1"),
        ("[audiosocket]\nprot = 1\n", r"unknown key\(s\) prot"),
        ("[audiosocket]\nhandler = \"nocolon\"\n", "'voice' or 'module:factory'"),
        ("[ami]\nenabled = \"yes\"\n", r"\[ami\]\.enabled: expected bool"),
        ("[ami]\nenabled = true\n", "set secret_env"),
        ("[handoff]\nmode = \"redirect\"\n", "needs \\[ami\\] enabled"),
        ("[handoff]\nmode = \"transfer\"\n", "'dialplan' or 'redirect'"),
        ("[llm]\n", None),
        ("audiosocket = 3\n", "must be a table"),
        ("[audiosocket\n", "not valid TOML"),
    ],
)
def test_bad_configs_give_clear_errors(tmp_path: Path, text: str, message: str | None) -> None:
    p = write(tmp_path, "bad.toml", text)
    if message is None:
        load_serve_config(p)
        return
    with pytest.raises(ServeConfigError, match=message) as info:
        load_serve_config(p)
    assert "bad.toml" in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ServeConfigError, match="cannot read serve config"):
        load_serve_config(tmp_path / "nope.toml")


async def http_get(port: int, path: str) -> tuple[int, str]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await w.drain()
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for t in tasks:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


async def start(cfg: ServeConfig, tasks: list[asyncio.Task[None]]) -> tuple[ServeState, asyncio.Event]:
    stop = asyncio.Event()
    ready: asyncio.Future[ServeState] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_serve(cfg, stop=stop, on_ready=ready.set_result))
    tasks.append(task)
    state = await asyncio.wait_for(asyncio.shield(ready), 10)
    return state, stop


async def test_serve_wires_audiosocket_ami_health_and_metrics(running, tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    ami_srv = AmiReplayServer(scripts=[load_script("incoming_call_handoff.yaml")])
    await ami_srv.start()
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:echo",
                        "recordings_dir": str(tmp_path / "rec")},
        "ami": {"enabled": True, "host": "127.0.0.1", "port": ami_srv.port, "secret": "s3cret",
                "ping_interval_s": 0},
        "metrics": {"host": "127.0.0.1", "port": 0},
    }, source="test")
    state, stop = await start(cfg, running)
    assert state.health is not None
    for _ in range(100):
        if state.ami.connected:
            break
        await asyncio.sleep(0.02)
    code, body = await http_get(state.health.port, "/health")
    assert code == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["ami"] == "connected"

    # one call that echoes and completes, one that hands off through AMI
    c1 = await RawCaller.connect(state.server.port)
    await c1.send_audio(b"\x22\x00" * 160)
    await c1.read_until(lambda f: f.payload == b"\x22\x00" * 160)
    code, body = await http_get(state.health.port, "/metrics")
    assert "twin_calls_in_progress 1.0" in body
    await c1.send(Frame.dtmf("#"))
    assert (await c1.read_to_eof())[-1].kind is Kind.HANGUP
    c2 = await RawCaller.connect(state.server.port, call_id=CALL)
    await c2.send_audio(bytes(320))
    await c2.send(Frame.dtmf("0"))
    assert (await c2.read_to_eof())[-1].kind is Kind.HANGUP
    for _ in range(100):
        if state.server.active_calls == 0:
            break
        await asyncio.sleep(0.02)
    code, body = await http_get(state.health.port, "/metrics")
    assert 'twin_calls_total{outcome="completed"} 1.0' in body
    assert 'twin_calls_total{outcome="handoff"} 1.0' in body
    assert 'twin_handoffs_total{reason="caller_request"} 1.0' in body
    assert "twin_calls_in_progress 0.0" in body
    assert "twin_ami_connected 1.0" in body
    assert "Variable: TWIN_HANDOFF_REASON\r\nValue: caller_request" in ami_srv.received[0].decode()
    assert (await http_get(state.health.port, "/nope"))[0] == 404
    assert len(list((tmp_path / "rec").iterdir())) == 2
    stop.set()
    await asyncio.wait_for(running[0], 10)
    await ami_srv.stop()


async def test_serve_without_an_assistant_hands_every_call_off(running) -> None:
    sys.path.insert(0, str(HERE))
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0, "handler": "serve_handlers:unavailable"},
        "metrics": {"host": "127.0.0.1", "port": 0}}, source="test")
    state, stop = await start(cfg, running)
    c = await RawCaller.connect(state.server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP
    code, body = await http_get(state.health.port, "/health")
    status = json.loads(body)
    assert code == 200 and status["status"] == "degraded" and status["problems"]
    code, body = await http_get(state.health.port, "/metrics")
    assert 'twin_handoffs_total{reason="bot_failure"} 1.0' in body
    stop.set()


async def test_voice_runtime_failure_degrades_to_handoff(running, tmp_path: Path) -> None:
    cfg = ServeConfig.from_dict({
        "audiosocket": {"host": "127.0.0.1", "port": 0},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "voice": {"profile": str(tmp_path / "missing-profile.yaml"), "data_dir": str(tmp_path)},
    }, source="test")
    state, stop = await start(cfg, running)
    assert any("assistant unavailable" in p for p in state.degraded)
    c = await RawCaller.connect(state.server.port)
    await c.send_audio(bytes(320))
    assert (await c.read_to_eof())[-1].kind is Kind.HANGUP  # to the queue, not silence
    stop.set()


async def test_twin_serve_cli_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = write(tmp_path, "serve.toml", """
[audiosocket]
host = "127.0.0.1"
port = 0
handler = "serve_handlers:echo"
[metrics]
host = "127.0.0.1"
port = 0
""")
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    twin = Path(sys.executable).parent / "twin"
    proc = await asyncio.create_subprocess_exec(
        str(twin), "serve", "--config", str(cfg), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = ""
        while "AudioSocket listening on" not in line:
            raw = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert raw, "twin serve exited early"
            line = raw.decode()
        port = int(line.split("listening on 127.0.0.1:")[1].split(",")[0])
        health = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        c = await RawCaller.connect(port)
        await c.send_audio(b"\x44\x00" * 160)
        await c.read_until(lambda f: f.payload == b"\x44\x00" * 160)
        await c.send(Frame.dtmf("#"))
        await c.read_to_eof()
        assert (await http_get(health, "/health"))[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
    assert rc == 0


async def test_twin_serve_check_reports_config_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.toml", "[audiosocket]\nport = \"x\"\n")
    good = write(tmp_path, "good.toml", "[audiosocket]\nport = 9092\n")
    twin = Path(sys.executable).parent / "twin"
    bad_voice = write(tmp_path, "bad_voice.toml", "[voice]\ntts = { engine = \"festival\" }\n")
    for path, want_rc, want in ((bad, 1, "port: expected int"), (good, 0, "OK"),
                                (bad_voice, 1, "tts.engine: must be 'espeak' or 'piper'")):
        proc = await asyncio.create_subprocess_exec(
            str(twin), "serve", "--config", str(path), "--check",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == want_rc and want in out.decode()


def test_metrics_take_per_stage_latency_from_call_reports() -> None:
    from types import SimpleNamespace

    from twin.serve import ServeMetrics

    m = ServeMetrics()
    m.observe_report(SimpleNamespace(turns=[
        {"text": "bonjour", "stt_s": 0.4, "llm_first_token_s": 0.3, "tts_first_audio_s": 0.05,
         "voice_to_voice_s": 0.8},
        {"text": "…", "stt_s": None, "llm_first_token_s": None, "tts_first_audio_s": None,
         "voice_to_voice_s": None, "started_at_s": 1.7e9}]))
    text = m.render().decode()
    assert 'twin_stage_latency_seconds_count{stage="voice_to_voice"} 1.0' in text
    assert 'twin_stage_latency_seconds_bucket{le="1.0",stage="voice_to_voice"} 1.0' in text
    assert 'twin_stage_latency_seconds_bucket{le="0.75",stage="voice_to_voice"} 0.0' in text
    assert "started_at" not in text
