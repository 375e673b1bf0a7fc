"""Person names in French call transcripts: spaCy's entities, French cues ("je suis",
"madame X", "c'est pour X", an answer to "votre nom ?"), the practice's patient list, and
the names already found elsewhere in the same call.

spaCy's small French model labels spoken names unevenly (a surname alone is often LOC or
MISC; "Euh" and "Merci" come out as entities), so an entity only counts when its words look
like names: capitalized, not a French stop word, interjection, title or month, not the
practice's staff or name. An entity that is also an ordinary French word ("Brun", "Rose")
needs stronger evidence: the PER label, a cue, or the patient list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from records.names import similarity, sound_key
from transcripts.redaction_rules import MONTHS, Found
from transcripts.redaction_tokens import fold

__all__ = ["NameFinder", "NameLexicon", "asked_for_name", "name_words"]

_INTERJECTIONS = frozenset({
    "euh", "heu", "hum", "hmm", "mhm", "ah", "oh", "eh", "ben", "bah", "bon", "hein", "allo",
    "oui", "ouais", "non", "ok", "okay", "merci", "bonjour", "bonsoir", "salut", "voila",
    "alors", "enfin", "bref", "super", "parfait", "exactement", "absolument", "attendez",
    "ecoutez", "pardon", "desole", "desolee", "excusez", "d'accord", "daccord", "tres",
    "tout", "bien", "entendu", "certes", "donc", "puis", "aussi", "sinon", "mais", "dites",
    "yes", "no", "hello", "thanks", "thank", "sorry", "well", "right", "please",
    "good", "morning", "afternoon", "bye", "goodbye", "ouh", "oula", "ouf", "mince", "zut",
    "ca", "c'est", "voici", "tenez", "bravo", "courage", "rebonjour", "allez", "pff",
    "pfff", "pfft", "bof", "ouille", "aie", "ne", "nee", "nes", "nees", "genre", "carrement",
})
_DOCTOR_TITLES = frozenset({"docteur", "dr", "doctor", "doc", "professeur", "pr"})
# words before a place: "à Villefranche", "sur Lyon" are not people
_PLACE_WORDS = frozenset({"a", "en", "sur", "vers", "pres", "dans", "depuis", "from", "in"})
_TITLES = frozenset({
    "docteur", "dr", "doctor", "madame", "monsieur", "mademoiselle", "mme", "mlle", "m", "mr",
    "mrs", "ms", "miss", "mister", "professeur", "pr", "maitre", "sir", "infirmiere",
})
_WEEKDAYS = frozenset({"lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
                       "dimanche", "monday", "tuesday", "wednesday", "thursday", "friday",
                       "saturday", "sunday"})
_COMMON_CAPS = frozenset({
    "vitale", "secu", "samu", "sos", "urgences", "cpam", "ameli", "doctolib", "mutuelle",
    "pharmacie", "hopital", "clinique", "cabinet", "noel", "paques", "toussaint", "covid",
    "france", "english", "french", "francais", "anglais", "internet", "mail", "email", "sms", "ps",
    "rdv", "cmu", "ame", "tram", "metro", "bus", "gare", "parking",
})
# name particles: part of a name when a name follows ("Da Silva", "Le Goff", "N'Diaye")
_PARTICLES = frozenset({"da", "de", "di", "du", "des", "le", "la", "van", "von", "der",
                        "del", "dos", "n'", "d'", "mac", "mc", "el", "ben", "ibn", "abou"})

# cue words after which capitalized words are a person's name
_CUE = re.compile(
    r"(?i:\b(?:je suis|je m'appelle|je m’appelle|moi c'est|moi, c'est|c'est|c'était|"
    r"madame|monsieur|mademoiselle|mme|mlle|m\.|c'est pour|pour|mon fils|ma fille|mon mari|"
    r"ma femme|mon époux|mon epoux|mon épouse|ma mère|ma mere|mon père|mon pere|mon frère|"
    r"ma sœur|ma soeur|mon compagnon|ma compagne|ma grand-mère|mon grand-père|mon petit-fils|"
    r"ma petite-fille|il s'appelle|elle s'appelle|il s’appelle|elle s’appelle|de la part de|"
    r"au nom de|prénom|nom|i'm|i am|my name is|this is|mister|mrs|ms|mr|miss)\b)"
    r"[\s,:]+")
_NAME_QUESTION = (
    "votre nom", "vos nom", "nom et", "nom de famille", "votre prenom", "son prenom",
    "son nom", "vous appelez", "il s'appelle comment", "elle s'appelle comment",
    "de la part", "a quel nom", "au nom de qui", "qui est a l'appareil", "c'est qui",
    "your name", "who is calling", "vous etes monsieur", "vous etes madame", "epeler",
    "qui est-ce",
)


def name_words(text: str) -> list[str]:
    """The folded words of a name: "Dupont-Moreau, Sandrine" -> dupont, moreau, sandrine."""
    return [w for w in re.findall(r"[a-z]+", fold(text)) if len(w) >= 2]


@dataclass
class NameLexicon:
    """Words that are not names: stop words (French and English), common French words
    (``common_words``: folded lemmas; ``inflected``: anything answering ``word in x`` for
    a lower-case inflected form, e.g. spaCy's lemma lookup table)."""

    stop_words: frozenset[str]
    common_words: frozenset[str]
    inflected: Any = None

    def is_excluded(self, key: str) -> bool:
        return (key in self.stop_words or key in _INTERJECTIONS or key in _TITLES
                or key in MONTHS or key == "mai" or key in _WEEKDAYS or key in _COMMON_CAPS)

    def is_common(self, word: str) -> bool:
        lower = word.lower().replace("\u2019", "'")
        if fold(lower) in self.common_words:
            return True
        return self.inflected is not None and lower in self.inflected


class NameFinder:
    """Finds person names in one turn, given its spaCy ``Doc``."""

    def __init__(self, *, lexicon: NameLexicon) -> None:
        self._lex = lexicon
        self._sound_cache: dict[frozenset[str], frozenset[str]] = {}
        self._near_cache: dict[tuple[str, frozenset[str]], bool] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _candidate(self, tok: Any, blocked: frozenset[str]) -> bool:
        text = tok.text
        if len(text) < 2 or not text[:1].isupper() or not any(c.isalpha() for c in text):
            return False
        if text.isupper() and len(text) <= 2:
            return False  # a spelled letter or "OK"
        key = fold(text).strip("'")
        if self._lex.is_excluded(key) or key in blocked:
            return False
        if any(part in blocked for part in key.split("-") if part):
            return False
        # the staff's and practice's names as speech recognition may write them ("Durant",
        # "Amelie", "Kabinets")
        if len(key) < 4:
            return True
        if sound_key(key) in self._sounds(blocked):
            return False
        near = self._near_cache.get((key, blocked))
        if near is None:
            near = any(similarity(key, w) >= 0.85 for w in blocked if len(w) >= 5)
            if len(self._near_cache) > 50_000:
                self._near_cache.clear()
            self._near_cache[(key, blocked)] = near
        return not near

    def _sounds(self, blocked: frozenset[str]) -> frozenset[str]:
        found = self._sound_cache.get(blocked)
        if found is None:
            found = frozenset(sound_key(w) for w in blocked if len(w) >= 5)
            self._sound_cache[blocked] = found
        return found

    @staticmethod
    def _practitioner(doc: Any, tok: Any, blocked: frozenset[str]) -> bool:
        """A word after "docteur" that sounds like one of the practice's own names
        ("le docteur Durant" for Durand): the practitioner, misheard."""
        if tok.i == 0 or fold(doc[tok.i - 1].text).rstrip(".") not in _DOCTOR_TITLES:
            return False
        key = fold(tok.text)
        return any(similarity(key, w) >= 0.8 for w in blocked if len(w) >= 4)

    def _runs(self, doc: Any, ok: Sequence[bool]) -> list[tuple[int, int]]:
        """Token ranges of consecutive name tokens, joined by '-' / "'" and particles."""
        runs: list[tuple[int, int]] = []
        i = 0
        n = len(doc)
        while i < n:
            if not ok[i]:
                # a particle starts a name when a name follows ("Da Silva", "Le Goff")
                if (fold(doc[i].text) in _PARTICLES and doc[i].text[:1].isupper()
                        and i + 1 < n and ok[i + 1] and doc[i + 1].idx <= doc[i].idx
                        + len(doc[i].text) + 1 and doc[i].i > 0 and not doc[i - 1].is_punct):
                    pass
                else:
                    i += 1
                    continue
            j = i
            while j + 1 < n:
                nxt = doc[j + 1]
                if ok[j + 1]:
                    j += 1
                elif nxt.text in ("-", "'", "\u2019") and j + 2 < n and ok[j + 2] and \
                        nxt.idx == doc[j].idx + len(doc[j].text):
                    j += 2
                elif fold(nxt.text) in _PARTICLES and j + 2 < n and ok[j + 2]:
                    j += 2
                else:
                    break
            if any(ok[k] for k in range(i, j + 1)):
                runs.append((i, j))
            i = j + 1
        return runs

    # -- main ------------------------------------------------------------------------------------
    def find(self, text: str, doc: Any, *, blocked: frozenset[str], known: Iterable[str] = (),
             asked_name: bool = False) -> list[Found]:
        """Names in one turn. ``blocked``: folded words that are never a person here (staff,
        the practice's name and street); ``known``: folded name words already known (the
        patient list, names said earlier in the call)."""
        known_set = set(known)
        n = len(doc)
        cand = [self._candidate(t, blocked) and not (
            t.i > 0 and fold(doc[t.i - 1].text) in _PLACE_WORDS)
            and not self._practitioner(doc, t, blocked) for t in doc]
        strong = [False] * n
        source = ["ner"] * n
        # spaCy entities
        for ent in doc.ents:
            for t in ent:
                k = t.i
                if not cand[k]:
                    continue
                common = self._lex.is_common(t.text)
                if ent.label_ == "PER" and (t.pos_ in ("PROPN", "X") or (
                        not common and t.pos_ in ("NOUN", "ADJ", "VERB"))):
                    strong[k] = True
                elif not common and not t.text.isupper() and \
                        t.pos_ in ("PROPN", "NOUN", "X", "VERB", "ADJ"):
                    strong[k] = True
        # cues: capitalized words right after "je suis", "madame", "c'est pour"...
        for m in _CUE.finditer(text):
            k = _token_at(doc, m.end())
            taken = 0
            while k is not None and k < n and taken < 3 and cand[k]:
                strong[k] = True
                source[k] = "rule"
                taken += 1
                k += 1
                while k < n and doc[k].text in ("-", "'", ","):
                    k += 1
        # answer to "votre nom ?": capitalized proper nouns
        if asked_name:
            for t in doc:
                if cand[t.i] and t.pos_ in ("PROPN", "NOUN", "X") and (
                        not self._lex.is_common(t.text) or t.pos_ == "PROPN"):
                    strong[t.i] = True
                    source[t.i] = "rule"
        # capitalized proper nouns inside a sentence that are no French word
        for t in doc:
            if cand[t.i] and not strong[t.i] and t.pos_ == "PROPN" and not t.is_sent_start \
                    and t.i > 0 and not doc[t.i - 1].is_punct \
                    and not t.text.isupper() and not self._lex.is_common(t.text):
                strong[t.i] = True
        # the patient list and the call's names
        for t in doc:
            if cand[t.i] and not strong[t.i] and fold(t.text) in known_set:
                strong[t.i] = True
                source[t.i] = "patient_list"
        # a capitalized word right next to a name is part of it ("Olivier Renaud")
        for k in [k for k in range(n) if strong[k]]:
            for o in (k - 1, k + 1):
                if not (0 <= o < n and cand[o] and not strong[o] and not doc[o].is_sent_start):
                    continue
                left, right = doc[min(k, o)], doc[max(k, o)]
                if right.idx - (left.idx + len(left.text)) <= 1:
                    strong[o] = True
        out: list[Found] = []
        for a, b in self._runs(doc, strong):
            start, end = doc[a].idx, doc[b].idx + len(doc[b].text)
            src = "rule" if any(source[k] == "rule" for k in range(a, b + 1)) else source[a]
            out.append(Found(start, end, "person", src, " ".join(name_words(text[start:end]))))
        return out

    def propagate(self, text: str, doc: Any, *, names: set[str], blocked: frozenset[str],
                  source: str = "rule") -> list[Found]:
        """Every capitalized mention of a name already found in the call."""
        ok = [self._candidate(t, blocked) and fold(t.text) in names
              and not self._practitioner(doc, t, blocked) for t in doc]
        out: list[Found] = []
        for a, b in self._runs(doc, ok):
            start, end = doc[a].idx, doc[b].idx + len(doc[b].text)
            out.append(Found(start, end, "person", source, " ".join(name_words(text[start:end]))))
        return out


def _token_at(doc: Any, offset: int) -> int | None:
    for t in doc:
        if t.idx >= offset:
            return int(t.i)
    return None


def asked_for_name(previous: str) -> bool:
    """Whether the turn before asked the caller for a name."""
    p = fold(previous)
    return any(q in p for q in _NAME_QUESTION)
