"""What an action gives back, and how a call is handed to a human: shared by the call agent,
the dialogue policies, the guard and the tools (``voice.agent`` re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FALLBACK_HANDOFF_FR", "MEDICAL_HANDOFF_FR", "Handoff", "ToolResult"]

MEDICAL_HANDOFF_FR = ("Je ne peux pas vous répondre sur ce point. Je vous passe une secrétaire, "
                      "qui verra avec le médecin. Ne quittez pas.")
FALLBACK_HANDOFF_FR = ("Je suis désolée, je rencontre un problème technique. "
                       "Je vous passe une secrétaire.")


@dataclass(frozen=True)
class Handoff:
    reason: str  # "caller_request" | "emergency" | "misunderstanding" | "bot_failure" | ...
    summary: str


@dataclass
class ToolResult:
    """What a tool gives back: ``content`` for the model, ``say`` for the patient, and
    ``data``: the result in the secretaries' vocabulary (``knowledge.twin_format``), for
    the twin's ``tool`` messages."""

    content: str
    say: str | None = None
    end_call: bool = False
    handoff: Handoff | None = None
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
