"""``twin telephony`` commands, run as real processes against real sockets."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

import numpy as np
from ami_replay import AmiReplayServer, load_script

from telephony.ami import AmiClient, AmiConfig

TWIN = str(Path(sys.executable).parent / "twin")


async def run(*args: str, env: dict[str, str] | None = None, limit_s: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        TWIN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})})
    out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_ami_record_writes_a_fixture_that_replays(tmp_path: Path) -> None:
    lab = AmiReplayServer(scripts=[load_script("lab_session.yaml")])
    await lab.start()
    out = tmp_path / "recorded.yaml"
    rc, text = await run("telephony", "ami-record", "--port", str(lab.port), "--seconds", "0.5",
                         "--out", str(out), env={"TWIN_AMI_SECRET": "s3cret"})
    await lab.stop()
    assert rc == 0, text
    assert "s3cret" not in out.read_text()
    replay = AmiReplayServer(scripts=[load_script(str(out))])
    await replay.start()
    client = AmiClient(config=AmiConfig(port=replay.port, secret="s3cret", ping_interval_s=0))
    await client.start()
    assert await client.wait_connected(3)
    assert (await client.action("Ping"))["Ping"] == "Pong"
    assert await client.action_list("CoreShowChannels") == []
    chan = await client.wait_call_channel("7d1c2b3a-0000-4000-8000-000000000001", 3)
    assert chan is not None and chan.caller_number == "0611223344"
    assert replay.failures == []
    await client.stop()
    await replay.stop()


async def test_ami_check_reports_a_refused_login(tmp_path: Path) -> None:
    srv = AmiReplayServer(scripts=[load_script("login_failed.yaml")] * 20)
    await srv.start()
    rc, text = await run("telephony", "ami-check", "--port", str(srv.port),
                         env={"TWIN_AMI_SECRET": "wrong"}, limit_s=30)
    await srv.stop()
    assert rc == 1 and "Authentication failed" in text


async def test_telephony_call_against_the_echo_server(tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    t = np.arange(8000) / 8000
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes())
    echo = await asyncio.create_subprocess_exec(
        TWIN, "telephony", "echo", "--host", "127.0.0.1", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert echo.stdout is not None
        line = (await asyncio.wait_for(echo.stdout.readline(), 20)).decode()
        port = line.rsplit(":", 1)[1].strip()
        rec = tmp_path / "call.wav"
        rc, text = await run("telephony", "call", "--port", port, "--wav", str(wav),
                             "--timeout", "1", "--eot", "0.3", "--record-to", str(rec))
        assert rc == 0, text
        # the echo "bot" says nothing first (turn timeout), then repeats the patient at once
        assert "(bot turn timed out)" in text and "voice-to-voice 0." in text
        with wave.open(str(rec)) as w:
            assert w.getnchannels() == 2 and w.getnframes() > 8000
        rc, text = await run("telephony", "call", "--port", port, "--wav",
                             str(tmp_path / "missing.wav"))
        assert rc == 1 and "missing.wav: file not found" in text
    finally:
        echo.terminate()
        await echo.wait()
