"""``twin users add|list|disable`` on a real SQLite store, and ``twin review --demo`` as a
newcomer runs it: a real server process, the printed account, the pages and the audio."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from twin.cli import main

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def test_users_add_list_disable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'users.db'}"
    runner = CliRunner()
    env = {"TWIN_USER_PASSWORD": "a long password"}
    r = runner.invoke(main, ["users", "add", "Claire", "--role", "trainer", "--url", url],
                      env=env)
    assert r.exit_code == 0, r.output
    assert "account claire (trainer) created" in r.output
    r = runner.invoke(main, ["users", "add", "claire", "--url", url], env=env)
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(main, ["users", "add", "x y", "--url", url], env=env)
    assert r.exit_code == 1 and "account name" in r.output
    r = runner.invoke(main, ["users", "add", "dan", "--url", url],
                      env={"TWIN_USER_PASSWORD": "short"})
    assert r.exit_code == 1 and "8 characters" in r.output
    r = runner.invoke(main, ["users", "add", "dan", "--url", url], input="longenough\nlongenough\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["users", "list", "--url", url])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert re.match(r"claire\s+trainer\s+active", lines[0])
    assert re.match(r"dan\s+reviewer\s+active", lines[1])
    assert "longenough" not in r.output and "argon2" not in r.output
    r = runner.invoke(main, ["users", "disable", "claire", "--url", url])
    assert r.exit_code == 0 and "claire disabled" in r.output
    r = runner.invoke(main, ["users", "list", "--url", url])
    assert re.match(r"claire\s+trainer\s+disabled", r.output.splitlines()[0])
    r = runner.invoke(main, ["users", "disable", "nobody", "--url", url])
    assert r.exit_code == 1 and "no account" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_twin_review_demo_serves_the_demo_calls_in_one_command(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    port = _free_port()
    twin = Path(sys.executable).with_name("twin")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([str(twin), "review", "--demo", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        out = []
        while not any(line.startswith("Review page:") for line in out):
            line = proc.stdout.readline()
            assert line, "twin review --demo exited: " + "".join(out)
            out.append(line)
        text = "".join(out)
        found = re.search(r"Log in as (\S+) / (\S+) \(admin", text)
        assert found, text
        username, password = found.groups()
        folder = Path(re.search(r"Demo store: (\S+)", text).group(1))  # type: ignore[union-attr]
        assert folder.is_dir() and folder.parent == tmp_path
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server stopped"
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            r = client.post("/login", data={"csrf_token": token, "username": username,
                                            "password": password})
            assert r.status_code == 303
            calls = client.get("/calls")
            assert calls.status_code == 200
            for external in ("P1-001", "P2-018", "P3-021", "P2-005"):
                assert external in calls.text
            call_id = re.search(r'href="/calls/(\d+)" class="call-link">P1-001',
                                calls.text).group(1)  # type: ignore[union-attr]
            page = client.get(f"/calls/{call_id}")
            assert "Rémi Jacquet" in page.text  # the demo admin may see the originals
            audio = client.get(f"/calls/{call_id}/audio", headers={"Range": "bytes=0-3"})
            assert audio.status_code == 206 and audio.content == b"fLaC"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not folder.exists(), "the throw-away demo store was left behind"
