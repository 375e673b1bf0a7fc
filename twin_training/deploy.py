"""``twin deploy``: switch the assistant to a new twin only if it is at least as safe.

The gate compares the new model's safety figures (from ``twin eval twin``'s report) with
the current deployment's (or, when nothing is deployed, with the base model measured in
the same report): emergency recall and medical-advice refusals must not drop, false alarms
and personal data emitted must not rise. A figure the new report did not measure while the
current one did is a refusal. Then, before the registry is switched:

- embedded: llama.cpp loads the base GGUF with the GGUF adapter;
- production: the model is created on the Ollama server with the ``ollama`` client
  (blobs uploaded unless the server has them, ``/api/create`` with the base file, the
  adapter, the identity template and stop tokens, then ``/api/show`` to check it).

The previous entry is kept; ``rollback_deployment`` returns to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_training.registry import read_registry, registry_path, write_registry

__all__ = [
    "SAFETY_FIGURES",
    "DeployError",
    "check_llama_cpp",
    "compare_safety",
    "create_ollama_model",
    "deploy_export",
    "rollback_deployment",
]

logger = logging.getLogger(__name__)

# figure -> True when higher is better
SAFETY_FIGURES: dict[str, bool] = {
    "emergency_recall": True,
    "medical_advice_refusal": True,
    "false_alarm_rate": False,
    "pii_emitted": False,
}


class DeployError(RuntimeError):
    """The new model may not be deployed (or the deployment failed)."""


def compare_safety(new: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The safety figures on which ``new`` is worse than ``current`` (empty: deployable)."""
    problems = []
    for name, higher_better in SAFETY_FIGURES.items():
        a, b = new.get(name), current.get(name)
        if b is None:
            continue
        if a is None:
            problems.append(f"{name}: not measured (current {b})")
        elif (higher_better and a < b - 1e-9) or (not higher_better and a > b + 1e-9):
            problems.append(f"{name}: {a} vs current {b}")
    return problems


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


_CHECK = """
import sys
from twin_training.evaluate import open_llama
llm = open_llama(sys.argv[1], lora_path=sys.argv[2] or None, n_ctx=64, n_threads=1)
out = llm.create_completion(llm.tokenize(b"<|im_start|>user\\nAllo<|im_end|>\\n", special=True),
                            max_tokens=2, temperature=0.0)
print("ok", len(out["choices"]))
"""


def check_llama_cpp(base_gguf: str | Path, adapter_gguf: str | Path | None, *,
                    timeout_s: float = 600.0) -> None:
    """Load the base with the adapter in llama.cpp and generate two tokens, in a child
    process: a malformed file can crash llama.cpp, and must not take the caller with it."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _CHECK, str(base_gguf),
                               str(adapter_gguf or "")], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"llama.cpp did not load {base_gguf} with {adapter_gguf} in "
                          f"{timeout_s:.0f} s") from exc
    if proc.returncode != 0 or not proc.stdout.startswith("ok"):
        detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DeployError(f"llama.cpp cannot load {base_gguf} with {adapter_gguf}: {detail}")


def create_ollama_model(url: str, name: str, *, base_gguf: Path, adapter_gguf: Path | None,
                        num_ctx: int = 4096) -> dict[str, Any]:
    """Create ``name`` on the Ollama server at ``url`` (base + adapter, identity template);
    returns ``/api/show``'s answer."""
    import httpx
    import ollama

    client = ollama.Client(host=url)
    files: dict[str, str] = {}
    adapters: dict[str, str] = {}
    for path, target in ((base_gguf, files), (adapter_gguf, adapters)):
        if path is None:
            continue
        digest = _sha256(path)
        head = httpx.head(f"{url.rstrip('/')}/api/blobs/{digest}", timeout=30)
        if head.status_code != 200:
            uploaded = client.create_blob(path)
            if uploaded != digest:  # pragma: no cover - the client hashes the same bytes
                raise DeployError(f"blob digest mismatch for {path}")
        target[path.name] = digest
    try:
        response = client.create(
            model=name, files=files, adapters=adapters or None, template="{{ .Prompt }}",
            parameters={"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0,
                        "num_ctx": num_ctx}, stream=False)
        status = getattr(response, "status", None)
        if status != "success":
            raise DeployError(f"Ollama create {name}: status {status!r}")
        shown = client.show(name)
    except ollama.ResponseError as exc:
        raise DeployError(f"Ollama create {name}: {exc}") from exc
    info: dict[str, Any] = shown.model_dump() if hasattr(shown, "model_dump") else dict(shown)
    if (info.get("template") or "").strip() != "{{ .Prompt }}":
        raise DeployError(f"Ollama model {name}: unexpected template {info.get('template')!r}")
    return info


def _report_models(report: Mapping[str, Any]) -> Mapping[str, Any]:
    models = report.get("models")
    if not isinstance(models, Mapping) or "twin" not in models:
        raise DeployError("the report has no 'twin' column (run: twin eval twin ... --out DIR)")
    return models


def deploy_export(export_dir: str | Path, report_path: str | Path, *,
                  ollama_url: str | None = None, model_name: str | None = None,
                  force: bool = False, registry: Path | None = None,
                  echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Deploy ``export_dir`` (from ``twin export``) if ``report_path`` shows it safe enough."""
    export = Path(export_dir)
    manifest = json.loads((export / "export.json").read_text(encoding="utf-8"))
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    models = _report_models(report)
    new_safety = dict(models["twin"]["safety"])
    reg_path = registry or registry_path()
    reg = read_registry(reg_path)
    current = reg["current"]
    if current is not None:
        reference, against = current.get("safety") or {}, f"the current twin {current['id']}"
    elif "base" in models:
        reference, against = models["base"]["safety"], "the base model"
    else:
        reference, against = {}, "nothing"
    problems = compare_safety(new_safety, reference)
    if problems and not force:
        raise DeployError(f"not deployed: less safe than {against}: " + "; ".join(problems))
    base = Path(manifest["base_gguf"])
    adapter = Path(manifest["adapter_gguf"])
    check_llama_cpp(base, adapter)
    echo(f"llama.cpp loads {base.name} + {adapter.name}")
    digest = _sha256(adapter)
    entry_id = model_name or f"twin-{digest[7:19]}"
    entry: dict[str, Any] = {
        "id": entry_id,
        "base_gguf": str(base),
        "adapter_gguf": str(adapter),
        "adapter_sha256": digest,
        "export_dir": str(export),
        "report": str(Path(report_path).resolve()),
        "safety": new_safety,
        "action_accuracy": models["twin"].get("action_accuracy"),
        "ledger": str(export / "ledger.json") if (export / "ledger.json").is_file() else None,
        "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "forced": bool(problems),
        "ollama_url": None,
        "ollama_model": None,
    }
    if ollama_url:
        create_ollama_model(ollama_url, entry_id, base_gguf=base, adapter_gguf=adapter)
        entry["ollama_url"], entry["ollama_model"] = ollama_url, entry_id
        echo(f"created {entry_id} on {ollama_url}")
    if current is not None:
        reg["previous"].append(current)
    reg["current"] = entry
    write_registry(reg, reg_path, action="deploy", entry_id=entry_id)
    return entry


def rollback_deployment(*, registry: Path | None = None) -> dict[str, Any] | None:
    """Return to the previous deployment (``None``: no twin, the base model and rules)."""
    reg_path = registry or registry_path()
    reg = read_registry(reg_path)
    if reg["current"] is None:
        raise DeployError("nothing is deployed: nothing to roll back")
    reg["current"] = reg["previous"].pop() if reg["previous"] else None
    current = reg["current"]
    write_registry(reg, reg_path, action="rollback", entry_id=current["id"] if current else None)
    return current
