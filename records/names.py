"""Name matching tolerant of speech recognition: accents, case, titles, spelling.

``name_key("Léa  LAURENT")`` -> ``"lea laurent"``; ``sound_key("Haddad")`` ==
``sound_key("Adad")`` (silent h and doubled letters dropped, a few French spellings
folded). Used to match a spoken practitioner name and a caller's own name.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

__all__ = ["TITLE_WORDS", "name_key", "similarity", "sound_key", "strip_titles"]

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
    """Drop titles and articles: 'le docteur morel' -> 'morel'."""
    return " ".join(w for w in key.split() if w not in TITLE_WORDS)


def sound_key(text: str) -> str:
    """A rough French phonetic key of one name ('Haddad', 'Adad' -> 'adad')."""
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


def similarity(a: str, b: str) -> float:
    """0..1 similarity of two names, on their keys and on their sound keys."""
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return 0.0
    if ka == kb:
        return 1.0
    plain = difflib.SequenceMatcher(None, ka, kb).ratio()
    sa = " ".join(sound_key(w) for w in ka.split())
    sb = " ".join(sound_key(w) for w in kb.split())
    sound = 1.0 if sa == sb else difflib.SequenceMatcher(None, sa, sb).ratio() * 0.95
    return max(plain, sound)
