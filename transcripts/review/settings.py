"""Settings of the review app (a plain dataclass; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReviewSettings"]


@dataclass(frozen=True, kw_only=True)
class ReviewSettings:
    """How the review app behaves.

    ``second_review``: the practice wants a second person to approve a call after the one
    who corrected it. ``secure_cookies``: set the cookie ``Secure`` flag (serve over https;
    also turned on per request when the request itself came over https).
    ``audio_root``: where relative ``audio_path`` values of calls are resolved.
    ``twin_model_dir``: the twin's model folder, where each released model leaves a
    contribution ledger (``contributions.json``) read by the dashboard.
    """

    practice_name: str = "Cabinet médical"
    second_review: bool = False
    secure_cookies: bool = False
    session_ttl_s: int = 8 * 3600
    max_body_bytes: int = 256 * 1024
    max_text_chars: int = 4000
    login_max_failures: int = 5
    login_window_s: float = 300.0
    page_size: int = 25
    audio_root: Path | None = None
    twin_model_dir: Path | None = None
