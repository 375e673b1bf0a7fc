"""The embedded LLM: a llama.cpp server (llama-cpp-python) started on loopback.

It speaks the same OpenAI-compatible API as Ollama, so the call path is the same
in the demo and in production; only the URL changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["EmbeddedLLMError", "EmbeddedLLMServer"]

logger = logging.getLogger(__name__)


class EmbeddedLLMError(RuntimeError):
    """The embedded llama.cpp server could not be started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedLLMServer:
    """Runs ``python -m llama_cpp.server`` for one GGUF model; ``start()``/``stop()``."""

    def __init__(self, *, model_path: Path, port: int = 0, n_ctx: int = 4096,
                 n_threads: int | None = None, log_path: Path | None = None,
                 startup_timeout_s: float = 180.0, state_dir: Path | None = None,
                 lora_path: Path | None = None, alias: str | None = None) -> None:
        self._state_dir = state_dir  # the warm prompt state, kept across restarts (voice.llm_warm_state)
        self.model_path = model_path
        self.lora_path = lora_path  # a GGUF LoRA adapter applied to the model (the deployed twin)
        self._alias = alias
        self._port = port
        self._n_ctx = n_ctx
        self._n_threads = n_threads or max(1, os.cpu_count() or 1)
        self._log_path = log_path
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: object = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def model_name(self) -> str:
        return self._alias or self.model_path.parent.name

    async def start(self) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ModuleNotFoundError as exc:
            raise EmbeddedLLMError(
                "llama-cpp-python is not installed: pip install -e '.[embedded]' "
                "(the first install compiles llama.cpp, ~11 min on 2 cores)") from exc
        if not self.model_path.is_file():
            raise EmbeddedLLMError(f"model file {self.model_path} is missing: run 'twin models install'")
        if self.lora_path is not None and not self.lora_path.is_file():
            raise EmbeddedLLMError(f"LoRA adapter {self.lora_path} is missing (twin export, then twin deploy)")
        if not self._port:
            self._port = _free_port()
        # llama_cpp.server, with AMX weight repacking off where it crashes (voice.llama_server)
        cmd = [sys.executable, "-m", "voice.llama_server", "--model", str(self.model_path),
               "--model_alias", self.model_name, "--host", "127.0.0.1", "--port", str(self._port),
               "--n_ctx", str(self._n_ctx), "--n_threads", str(self._n_threads),
               "--n_threads_batch", str(self._n_threads), "--n_batch", "256"]
        if self._state_dir is not None:
            cmd += ["--state_dir", str(self._state_dir)]
        if self.lora_path is not None:
            cmd += ["--lora_path", str(self.lora_path)]
        logger.info("starting embedded LLM: %s", " ".join(cmd))
        self._proc = await asyncio.to_thread(self._spawn, cmd)
        deadline = time.monotonic() + self._startup_timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise EmbeddedLLMError(
                        f"llama.cpp server exited with code {self._proc.returncode}"
                        + (f"; see {self._log_path}" if self._log_path else ""))
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(self.base_url + "/models", timeout=2.0)
                    if r.status_code == 200:
                        logger.info("embedded LLM ready at %s", self.base_url)
                        return
                await asyncio.sleep(0.3)
        await self.stop()
        raise EmbeddedLLMError(f"llama.cpp server did not answer within {self._startup_timeout_s:.0f} s")

    def _spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if self._log_path:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = out = open(self._log_path, "ab")  # closed in stop()
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._log_fh:
            self._log_fh.close()  # type: ignore[attr-defined]
            self._log_fh = None
