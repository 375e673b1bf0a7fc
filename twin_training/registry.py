"""Which twin the assistant runs: a small JSON registry under the data folder.

Stdlib only, so the settings and ``twin serve`` can read it without the training extra:
``current_deployment()`` returns the deployed entry (``base_gguf``, ``adapter_gguf``,
``ollama_model``...) or ``None`` (no twin: the rules policy and the base model).
``twin deploy`` writes it; the previous entry is kept for ``twin deploy --rollback``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["current_deployment", "read_registry", "registry_path", "write_registry"]


def registry_path(data_dir: str | Path | None = None) -> Path:
    """``<data folder>/twin/registry.json`` (``$TWIN_HOME`` or ~/.local/share/twin)."""
    if data_dir is None:
        env = os.environ.get("TWIN_HOME")
        if env:
            data_dir = Path(env).expanduser()
        else:
            xdg = os.environ.get("XDG_DATA_HOME")
            data_dir = (Path(xdg) if xdg else Path.home() / ".local" / "share") / "twin"
    return Path(data_dir) / "twin" / "registry.json"


def read_registry(path: Path | None = None) -> dict[str, Any]:
    path = path or registry_path()
    if not path.is_file():
        return {"current": None, "previous": [], "history": []}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("current", None)
    data.setdefault("previous", [])
    data.setdefault("history", [])
    return data


def write_registry(data: dict[str, Any], path: Path | None = None, *, action: str = "",
                   entry_id: str | None = None) -> None:
    path = path or registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if action:
        data["history"].append({"action": action, "id": entry_id,
                                "at": datetime.now(UTC).isoformat(timespec="seconds")})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def current_deployment(path: Path | None = None) -> dict[str, Any] | None:
    """The deployed twin, or ``None``."""
    current: dict[str, Any] | None = read_registry(path)["current"]
    return current
