"""How long ``twin serve`` takes to be ready to answer, the first time and after a restart.

Launches the real ``twin serve`` (embedded llama.cpp, Whisper, eSpeak NG; AMI off) on
loopback with a fresh data folder, times its "listening" line (AudioSocket and /health up:
calls go to the secretaries) and its "assistant ready" line (the assistant answers), stops
it, and starts it again on the same folder: the second start loads the LLM's saved prompt
state (``<data>/llm-state``, ``voice/llm_warm_state.py``) instead of evaluating the prompt.
``--hog N`` keeps N cores busy meanwhile.

    .venv/bin/python bench/serve_ready.py [--runs 2] [--hog 1] [--model NAME]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hog(stop: Any) -> None:  # pragma: no cover - a busy core
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def _config(folder: Path, model: str | None) -> Path:
    llm = f'model = "{model}"\n' if model else ""
    path = folder / "serve.toml"
    path.write_text(
        "[audiosocket]\n"
        f'host = "127.0.0.1"\nport = {_free_port()}\nhandler = "voice"\n'
        f'recordings_dir = "{folder / "recordings"}"\n'
        "[ami]\nenabled = false\n"
        f'[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {_free_port()}\n'
        f'[voice]\ndata_dir = "{folder / "data"}"\n'
        f"[llm]\n{llm}", encoding="utf-8")
    return path


def one_start(config: Path, timeout_s: float) -> dict[str, float | None]:
    """Start ``twin serve``; seconds to its listening and ready lines; stop it."""
    twin = Path(sys.executable).with_name("twin")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(twin), "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ,
                                                                    "PYTHONUNBUFFERED": "1"})
    out: dict[str, float | None] = {"listening_s": None, "ready_s": None}
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            now = time.monotonic() - t0
            if "AudioSocket listening" in line and out["listening_s"] is None:
                out["listening_s"] = now
            elif "assistant ready" in line:
                out["ready_s"] = now
                break
            elif "LLM prompt cache warmed" in line or "LLM ready" in line:
                print(f"    {now:6.1f}s {line.strip()}", file=sys.stderr)
            if now > timeout_s:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="Starts on the same data folder.")
    p.add_argument("--hog", type=int, default=0, help="Cores kept busy by other processes.")
    p.add_argument("--model", help="Embedded LLM (default: the settings' llm.model).")
    p.add_argument("--timeout", type=float, default=900.0, help="Longest wait for one start (s).")
    args = p.parse_args()
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(args.hog)]
    for h in hogs:
        h.start()
    try:
        with tempfile.TemporaryDirectory(prefix="serve-ready-") as tmp:
            config = _config(Path(tmp), args.model)
            print(f"| start | listening | assistant ready | saved LLM state |  (hog {args.hog})")
            print("|---|---|---|---|")
            for i in range(args.runs):
                had_state = any((Path(tmp) / "data" / "llm-state").glob("*"))
                r = one_start(config, args.timeout)
                fmt = {k: "-" if v is None else f"{v:.1f} s" for k, v in r.items()}
                print(f"| {i + 1} | {fmt['listening_s']} | {fmt['ready_s']} | "
                      f"{'loaded' if had_state else 'none (evaluated, then saved)'} |", flush=True)
    finally:
        stop.set()
        for h in hogs:
            h.join(5)


if __name__ == "__main__":
    main()
