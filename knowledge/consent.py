"""Recording consent: the greeting that announces it, and detecting a caller's objection.

The profile's ``recording_consent`` sentence tells callers they may object "at
any time"; :func:`objects_to_recording` is the deterministic check, run on every
patient turn, that tells the call to stop recording (and to delete what was
recorded, per the practice's policy).
"""

from __future__ import annotations

import re
from datetime import datetime

from knowledge.profile import PracticeProfile
from knowledge.safety import normalize

__all__ = ["build_greeting", "objects_to_recording"]

_OBJECTION = re.compile(
    r"(?<![a-z0-9])(?:"
    r"(?:ne )?(?:veux|voudrais|souhaite|souhaiterais|desire) (?:pas|plus) (?:\S+ ){0,3}(?:etre )?enregistre\w*"
    r"|(?:n |ne )?enregistrez (?:pas|plus|rien)|(?:ne )?m enregistrez pas|pas d enregistrement"
    r"|(?:refuse|m oppose|opposition|oppose) (?:\S+ ){0,4}enregistre\w*"
    r"|enregistre\w* (?:\S+ ){0,4}(?:je refuse|je m y oppose|non merci|pas d accord)"
    r"|(?:arretez|arreter|coupez|couper|stoppez|supprimez|effacez) (?:\S+ ){0,2}enregistre\w*"
    r"|je m y oppose"
    r"|(?:do not|don t|dont) record|(?:stop|no) recording|object to (?:the |being )?record\w*"
    r")(?![a-z0-9])")


def objects_to_recording(text: str) -> bool:
    """Whether the caller objects to the call being recorded ("je ne veux pas être enregistré")."""
    return bool(_OBJECTION.search(normalize(text or "")))


def build_greeting(profile: PracticeProfile, *, now: datetime | None = None) -> str:
    """The first sentence of every call: practice name, recording notice, open question.

    Out of opening hours (``now`` in practice time, default: now) it says so and
    what the assistant can still do, from ``policies.out_of_hours``' spirit.
    """
    if now is None:
        now = datetime.now(profile.practice.tzinfo)
    elif now.tzinfo is not None:
        now = now.astimezone(profile.practice.tzinfo)
    parts = [f"{profile.practice.name}, bonjour.", profile.recording_consent]
    if not profile.is_open_at(now.replace(tzinfo=None)):
        parts.append("Le cabinet est fermé en ce moment, mais je peux prendre un rendez-vous "
                     "ou un message.")
    parts.append("Que puis-je faire pour vous ?")
    return " ".join(parts)
