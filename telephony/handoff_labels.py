"""What the secretaries read when a call reaches them: handoff reasons in French words.

``TWIN_HANDOFF_REASON`` stays a machine code (the dialplan routes on it, metrics
count it); ``TWIN_HANDOFF_LABEL`` is what the desk phone shows next to the number
and what the voicemail envelope and the CDR carry. The dialplan has its own
default (``assistant_unreachable`` / "Assistant indisponible") for the case where
the app could not say anything at all.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_LABEL", "HANDOFF_LABELS", "french_summary", "handoff_label"]

DEFAULT_LABEL = "Transfert"

# Short enough for a desk phone's caller-ID line (about 20 characters).
HANDOFF_LABELS: dict[str, str] = {
    "caller_request": "Demande du patient",
    "human_request": "Demande du patient",
    "emergency": "URGENCE",
    "suicide": "URGENCE détresse",
    "anger": "Patient mécontent",
    "misunderstanding": "Incompréhension",
    "medical_insistence": "Question médicale",
    "medical_advice": "Question médicale",
    "language": "Patient anglophone",
    "bot_failure": "Panne assistant",
    "assistant_ended": "Assistant interrompu",
    "service_shutdown": "Assistant arrêté",
    "assistant_starting": "Assistant démarre",
    "over_capacity": "Assistant saturé",
    "assistant_unreachable": "Assistant indisponible",
    "caller_silent": "Appelant silencieux",
}

# English prefixes the assistant puts in front of a summary ("category: « words »").
_SUMMARY_PREFIXES: dict[str, str] = {
    **HANDOFF_LABELS,
    "LLM unavailable": "Modèle de langue indisponible",
    "English-speaking caller": "Patient anglophone",
    "assistant error": "Erreur de l'assistant",
}
_PREFIX_RE = re.compile(r"^\s*(" + "|".join(sorted(map(re.escape, _SUMMARY_PREFIXES),
                                                  key=len, reverse=True)) + r")\s*:\s*")


def handoff_label(reason: str) -> str:
    """The French words for a handoff reason code (``Transfert`` for an unknown one)."""
    return HANDOFF_LABELS.get(reason.strip(), DEFAULT_LABEL)


def french_summary(summary: str) -> str:
    """Replace a leading English code (``human_request: « … »``) by its French words;
    the caller's own words that follow are kept as they are."""
    m = _PREFIX_RE.match(summary)
    if not m:
        return summary
    return f"{_SUMMARY_PREFIXES[m.group(1)]} : {summary[m.end():]}"
