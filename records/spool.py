"""Fallback file for what callers said when the records database is unreachable.

One JSON object per line (``records-spool.jsonl`` in the data folder by default), appended atomically
enough for one process (``O_APPEND`` + a single ``write``). Staff read it with
``twin agenda spool``; ``twin agenda spool --import`` (``BookingService.import_spool``)
moves them into the database as staff messages once it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Spool"]

logger = logging.getLogger(__name__)


class Spool:
    def __init__(self, *, path: str | Path) -> None:
        self.path = Path(path)

    async def append(self, kind: str, payload: dict[str, Any]) -> None:
        entry = {"at": datetime.now(UTC).isoformat(), "kind": kind, **payload}
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        await asyncio.to_thread(self._write, line)
        logger.warning("records database unavailable: kept %s in %s", kind, self.path)

    def _write(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    async def archive(self) -> Path | None:
        """Rename the spool to ``<name>.imported-<UTC time>.jsonl`` (after an import)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.stem}.imported-{stamp}.jsonl")

        def move() -> Path | None:
            if not self.path.exists():
                return None
            self.path.rename(target)
            return target

        return await asyncio.to_thread(move)

    async def read(self) -> list[dict[str, Any]]:
        def load() -> list[dict[str, Any]]:
            if not self.path.exists():
                return []
            return [json.loads(x) for x in self.path.read_text("utf-8").splitlines() if x]

        return await asyncio.to_thread(load)
