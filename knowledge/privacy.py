"""What the logs may say about callers: nothing personal, unless a developer asks.

Transcripts, names, dates of birth, phone numbers and the words that matched a red
flag are patient data: at the default levels the logs carry ids, categories and
lengths instead. On a developer's own machine, ``TWIN_LOG_PATIENT_DATA=1`` puts the
text back (never on a practice's server).
"""

from __future__ import annotations

import os

__all__ = ["PATIENT_DATA_ENV", "patient_data_logged", "redacted"]

PATIENT_DATA_ENV = "TWIN_LOG_PATIENT_DATA"


def patient_data_logged() -> bool:
    """Whether this process may log patient data (``TWIN_LOG_PATIENT_DATA=1``)."""
    return os.environ.get(PATIENT_DATA_ENV, "").strip().lower() in {"1", "true", "yes"}


def redacted(value: object) -> str:
    """``value`` itself (repr) with the debug switch on; else only its size: ``<42 chars>``."""
    if value is None:
        return "<none>"
    if patient_data_logged():
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return f"<{len(value)} items>"
    return f"<{len(str(value))} chars>"
