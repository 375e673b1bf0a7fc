"""Shared fixtures of the twin tests: the fixture corpus, the real Qwen tokenizer from the
embedded GGUF, and one tiny randomly initialised model trained and exported once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knowledge.profile import PracticeProfile, default_profile_path, load_profile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twin"
CALLS = FIXTURES / "calls.jsonl"
BASE = "qwen2.5-coder-0.5b-instruct-q4_k_m"
# Small and fast: with the split below (by hash, not stratified) P3-007 (an emergency) and
# P2-012 train, P3-009 validates, P1-001 is the test call, P1-005 is not reviewed (left out).
TINY_CALLS = ("P3-007", "P2-012", "P3-009", "P1-001", "P1-005")


@pytest.fixture(scope="session")
def profile() -> PracticeProfile:
    return load_profile(default_profile_path())


@pytest.fixture(scope="session")
def corpus() -> list[dict[str, Any]]:
    from twin_training.dataset import read_calls

    return read_calls(CALLS)


@pytest.fixture(scope="session")
def base_gguf() -> Path:
    from twin.models import ModelMissingError, require

    try:
        return require(BASE) / "model.gguf"
    except ModelMissingError as exc:
        pytest.fail(f"{exc} (scripts/test.sh installs the models)")


@pytest.fixture(scope="session")
def tokenizer(base_gguf: Path) -> Any:
    from twin_training.base import load_tokenizer, resolve_base

    return load_tokenizer(resolve_base(str(base_gguf)))


def tiny_overrides(out: Path, calls: Path, **extra: Any) -> list[str]:
    sets = {
        "data.calls": str(calls), "model.base": BASE, "model.tiny_random": "true",
        "train.output_dir": str(out), "train.max_steps": "4", "train.grad_accum": "1",
        "train.learning_rate": "0.01", "train.warmup_steps": "0", "train.eval_every": "2",
        "train.save_every": "2", "train.patience": "0", "train.progress": "false",
        "lora.r": "8", "lora.alpha": "16", "lora.dropout": "0",
        "data.split": "[0.5, 0.1, 0.4]", "data.stratify": "false",
    }
    sets.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in sets.items()]


@pytest.fixture(scope="session")
def overrides() -> Any:
    """``tiny_overrides(out, calls, **extra)``: the tiny run's config overrides."""
    return tiny_overrides


@pytest.fixture(scope="session")
def tiny_calls(tmp_path_factory: pytest.TempPathFactory, corpus: list[dict[str, Any]]) -> Path:
    import json

    path = tmp_path_factory.mktemp("twin-data") / "calls.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for call in corpus:
            if call["call_id"] in TINY_CALLS:
                f.write(json.dumps(call, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_calls: Path,
             tokenizer: Any) -> Iterator[Path]:
    """A tiny model trained 4 steps and exported (adapter.gguf + base.gguf)."""
    from twin_training.config import load_config
    from twin_training.data import prepare_data
    from twin_training.export import export_run
    from twin_training.train import run_training

    out = tmp_path_factory.mktemp("twin-run") / "run"
    config = load_config(None, tiny_overrides(out, tiny_calls))
    run_training(config, prepared=prepare_data(config, out, tokenizer=tokenizer))
    export_run(out)
    yield out
    shutil.rmtree(out, ignore_errors=True)


class OllamaReplay:
    """A local HTTP server answering Ollama's API from the recorded exchanges
    (tests/fixtures/twin/ollama_api.json), with the state a real server keeps: uploaded
    blobs (checked against their digest) and created models."""

    def __init__(self) -> None:
        import json

        self.exchanges = json.loads((FIXTURES / "ollama_api.json").read_text())["exchanges"]
        self.blobs: dict[str, int] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, name: str, **fill: str) -> None:
                import json

                ex = replay.exchanges[name]
                body = ex.get("body")
                self.send_response(ex["status"])
                if body is None:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                text = json.dumps(body)
                for key, value in fill.items():
                    text = text.replace("{" + key + "}", json.dumps(value)[1:-1])
                data = text.encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self) -> None:
                digest = self.path.rsplit("/", 1)[-1]
                replay.requests.append(("HEAD", self.path, None))
                self._answer("blob_head_present" if digest in replay.blobs
                             else "blob_head_missing")

            def do_GET(self) -> None:
                replay.requests.append(("GET", self.path, None))
                name = next(iter(replay.models), "none")
                self._answer("tags", name=name, digest="sha256:0")

            def do_POST(self) -> None:
                import hashlib
                import json

                body = self._body()
                if self.path.startswith("/api/blobs/"):
                    digest = self.path.rsplit("/", 1)[-1]
                    actual = "sha256:" + hashlib.sha256(body).hexdigest()
                    replay.requests.append(("POST", self.path, len(body)))
                    if actual != digest:
                        self._answer("blob_push_bad_digest", digest=digest, actual=actual)
                        return
                    replay.blobs[digest] = len(body)
                    self._answer("blob_push")
                    return
                request = json.loads(body or b"{}")
                replay.requests.append(("POST", self.path, request))
                if self.path == "/api/create":
                    digests = [*request.get("files", {}).values(),
                               *(request.get("adapters") or {}).values()]
                    if not request.get("files") or any(d not in replay.blobs for d in digests):
                        self._answer("create_missing_blob")
                        return
                    replay.models[request["model"]] = request
                    self._answer("create")
                elif self.path == "/api/show":
                    model = replay.models.get(request.get("model", ""))
                    if model is None:
                        self._answer("show_missing", name=request.get("model", ""))
                        return
                    params = "\n".join(f"{k} {v}" for k, v in model.get("parameters", {}).items())
                    self._answer("show", template=model.get("template", ""),
                                 parameters=params, modelfile="# replay")
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def ollama_replay() -> Iterator[OllamaReplay]:
    server = OllamaReplay()
    server.start()
    yield server
    server.stop()
