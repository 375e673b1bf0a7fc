"""Name matching tolerant of speech recognition: accents, case, titles, spelling.

``name_key("Léa  LAURENT")`` -> ``"lea laurent"``; ``sound_key("Renaud")`` ==
``sound_key("Reno")`` (silent h and doubled letters dropped, a few French spellings
folded). Used to match a spoken practitioner name and a caller's own name.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

__all__ = ["TITLE_WORDS", "gender_variants", "name_key", "similarity", "sound_key", "strip_titles"]

TITLE_WORDS = frozenset({
    "dr", "docteur", "doctor", "doc", "le", "la", "les", "du", "de", "des", "pr",
    "professeur", "madame", "monsieur", "mme", "mr", "m", "mlle", "chez", "avec", "aupres",
})


def name_key(text: str) -> str:
    """Lower-case, accent-free words separated by single spaces."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", text))


def strip_titles(key: str) -> str:
    """Drop titles and articles: 'le docteur durand' -> 'durand'."""
    return " ".join(w for w in key.split() if w not in TITLE_WORDS)


def sound_key(text: str) -> str:
    """A rough French phonetic key of one name ('Renaud', 'Reno' -> 'reno')."""
    s = name_key(text).replace(" ", "")
    for a, b in (("ph", "f"), ("qu", "k"), ("ck", "k"), ("y", "i"), ("ei", "e"),
                 ("ai", "e"), ("au", "o"), ("eau", "o"), ("z", "s"), ("w", "v")):
        s = s.replace(a, b)
    s = re.sub(r"c(?=[aou])", "k", s)
    s = s.replace("h", "")
    s = re.sub(r"(.)\1+", r"\1", s)
    if len(s) > 3:
        s = re.sub(r"[estdx]$", "", s)
    return s


_FEMININE = ("e", "ne", "le", "te", "se", "tte", "lle")


def gender_variants(a: str, b: str) -> bool:
    """Two different first names, one the feminine of the other ("Jean"/"Jeanne",
    "Paul"/"Paule", "Frédéric"/"Frédérique"): never the same person, however alike."""
    ka, kb = name_key(a), name_key(b)
    if ka == kb or not ka or not kb:
        return False
    short, long_ = sorted((ka, kb), key=len)
    if long_.startswith(short) and long_[len(short):] in _FEMININE:
        return True
    return short.endswith("c") and long_ == short[:-1] + "que"


def similarity(a: str, b: str) -> float:
    """0..1 similarity of two names, on their keys and on their sound keys; 0 when a word
    of one is the other gender's form of a word of the other (Jean / Jeanne)."""
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return 0.0
    if ka == kb:
        return 1.0
    if any(gender_variants(x, y) for x in ka.split() for y in kb.split()):
        return 0.0
    plain = difflib.SequenceMatcher(None, ka, kb).ratio()
    sa = " ".join(sound_key(w) for w in ka.split())
    sb = " ".join(sound_key(w) for w in kb.split())
    sound = 1.0 if sa == sb else difflib.SequenceMatcher(None, sa, sb).ratio() * 0.95
    return max(plain, sound)
