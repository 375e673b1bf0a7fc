"""How callers name a practice's practitioners and appointment types, from its profile.

Nothing here knows any practice: the words come from the profile's ``keywords``
(per practitioner specialty and per appointment type) and from the practitioners'
names. ``appointment_type_for(profile, text, practitioner_id)`` picks the type a
request asks for ("une séance de laser" -> the type whose keywords hold "laser");
``practitioner_for(profile, text)`` the practitioner a request names or implies.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.profile import AppointmentType, PracticeProfile, Practitioner

__all__ = [
    "appointment_type_for",
    "default_type_for",
    "fold_words",
    "practitioner_for",
    "practitioners_sentence",
    "sound_key",
]


def fold_words(text: str) -> str:
    """Lower case, no accents, words separated by single spaces ("Grain de beauté")."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _has(folded: str, phrase: str) -> bool:
    key = fold_words(phrase)
    return bool(key) and re.search(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", folded) is not None


def sound_key(word: str) -> str:
    """A rough French phonetic key of one word: silent h, doubled letters and a final
    silent consonant dropped, a few spellings folded (two spellings of one name meet)."""
    s = fold_words(word).replace(" ", "")
    for a, b in (("ph", "f"), ("qu", "k"), ("ck", "k"), ("y", "i"), ("ei", "e"),
                 ("ai", "e"), ("eau", "o"), ("au", "o"), ("z", "s"), ("w", "v")):
        s = s.replace(a, b)
    s = re.sub(r"c(?=[aou])", "k", s).replace("h", "")
    s = re.sub(r"(.)\1+", r"\1", s)
    return re.sub(r"[estdx]$", "", s) if len(s) > 3 else s


def _by_name(profile: PracticeProfile, folded: str) -> Practitioner | None:
    import difflib

    words = folded.split()
    sounds = {sound_key(w) for w in words if len(w) > 2}
    for p in profile.practitioners:
        last = fold_words(p.last_name)
        if last and (_has(folded, last) or (len(last.replace(" ", "")) > 3
                                              and sound_key(last) in sounds)):
            return p
    close = [p for p in profile.practitioners for w in sounds if len(w) >= 5 and difflib
             .SequenceMatcher(None, w, sound_key(p.last_name)).ratio() >= 0.86]
    return close[0] if len({p.id for p in close}) == 1 else None


def practitioner_for(profile: PracticeProfile, text: str | None) -> Practitioner | None:
    """The practitioner named ("docteur Adad" sounds like a last name on file) or, failing
    that, the one whose specialty keywords the caller used; None if unsure."""
    folded = fold_words(text or "")
    if not folded:
        return None
    named = _by_name(profile, folded)
    if named is not None:
        return named
    matches = [p for p in profile.practitioners
               if any(_has(folded, k) for k in (*p.keywords, p.specialty))]
    return matches[0] if len(matches) == 1 else None


def default_type_for(profile: PracticeProfile, practitioner_id: str) -> AppointmentType | None:
    """The practitioner's first type (profile order) that a caller gets without asking for
    a particular one: no keywords of its own and not follow-up only, else the first."""
    own = [t for t in profile.appointment_types if practitioner_id in t.practitioners]
    plain = [t for t in own if not t.keywords and not t.follow_up_only]
    return (plain or own)[0] if own else None


def appointment_type_for(profile: PracticeProfile, text: str | None,
                         practitioner_id: str | None = None) -> str | None:
    """The appointment type code a request asks for, or None (any type of the agenda).

    A type keyword said by the caller wins (the longest one, among the named
    practitioner's types if one was named); otherwise the named or implied
    practitioner's default type."""
    folded = fold_words(text or "")
    types = [t for t in profile.appointment_types
             if practitioner_id is None or practitioner_id in t.practitioners]
    best: tuple[int, str] | None = None
    for t in types:
        for k in t.keywords:
            if _has(folded, k) and (best is None or len(fold_words(k)) > best[0]):
                best = (len(fold_words(k)), t.code)
    if best is not None:
        return best[1]
    if practitioner_id is None:
        implied = practitioner_for(profile, text)
        if implied is None:
            return None
        practitioner_id = implied.id
    default = default_type_for(profile, practitioner_id)
    return default.code if default is not None else None


def practitioners_sentence(profile: PracticeProfile) -> str:
    """"le docteur X en médecine générale ou le docteur Y en dermatologie"."""
    parts = [f"{p.spoken_name} en {p.specialty}" for p in profile.practitioners]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " ou " + parts[-1]
