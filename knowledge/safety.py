"""The deterministic safety layer, run on every patient turn before the language model.

``SafetyRules.load()`` reads the rules (``knowledge/rules/safety.yaml``: regular
expressions over a normalised transcript, see ``docs/SAFETY.md``);
``rules.assess(text)`` returns a :class:`SafetyVerdict` whose ``category`` is one
of :data:`CATEGORIES`. Red flags (``emergency``, ``suicide``) come with a fixed
script telling the caller to hang up and dial 15/112 (3114 for suicide risk);
the call is also handed to a human. ``medical_advice`` is declined in fixed words.
No model is involved: the same input always gives the same verdict.

:class:`EscalationTracker` follows a call turn by turn and says when to hand it
to a human (two failed understandings in a row, a request for a human, anger,
a red flag).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from knowledge.privacy import redacted

__all__ = [
    "CATEGORIES",
    "HANDOFF_CATEGORIES",
    "RED_FLAG_CATEGORIES",
    "EscalationDecision",
    "EscalationTracker",
    "Rule",
    "RulesError",
    "SafetyRules",
    "SafetyVerdict",
    "TurnOutcome",
    "assess_many",
    "classify_transcript",
    "default_rules_path",
    "detect_language",
    "normalize",
    "split_elisions",
]

logger = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = (
    "emergency", "suicide", "medical_advice", "human_request", "anger", "none",
)
RED_FLAG_CATEGORIES = frozenset({"emergency", "suicide"})
HANDOFF_CATEGORIES = frozenset({"emergency", "suicide", "human_request", "anger"})

_DEFAULT_NUMBERS = {"samu": "15", "europe": "112", "suicide": "3114"}


class RulesError(ValueError):
    """The rules file is invalid (message names the file and the rule)."""


def default_rules_path() -> Path:
    return Path(__file__).resolve().parent / "rules" / "safety.yaml"


# --------------------------------------------------------------------------------------------
# Normalisation: what speech recognition gives -> what rules are written against
# --------------------------------------------------------------------------------------------

# Contractions Whisper and typists write without the apostrophe, and a few
# spellings of speech. Token -> replacement.
_TOKEN_FIXES: dict[str, str] = {
    "jai": "j ai", "cest": "c est", "sest": "s est", "nest": "n est", "jsuis": "je suis",
    "chui": "je suis", "chuis": "je suis", "jsui": "je suis", "jme": "je me", "jte": "je te",
    "jpeux": "je peux", "jpense": "je pense", "jveux": "je veux", "jvais": "je vais",
    "jsais": "je sais", "jarrive": "j arrive", "narrive": "n arrive",
    "quil": "qu il", "quon": "qu on", "quelquun": "quelqu un",
    "jen": "j en", "nai": "n ai", "lai": "l ai", "davoir": "d avoir", "detre": "d etre",
    "ya": "il y a", "yen": "il y en", "ptit": "petit", "ptite": "petite", "ptits": "petits",
    "jy": "j y", "sarrete": "s arrete", "narrete": "n arrete", "mevanouir": "m evanouir",
    "setouffe": "s etouffe", "metouffe": "m etouffe", "jetouffe": "j etouffe",
    "sil": "s il", "taime": "t aime", "daccord": "d accord", "aujourdhui": "aujourd hui",
    "dun": "d un", "dune": "d une", "lun": "l un", "lune": "l une", "quun": "qu un",
    "quune": "qu une", "ny": "n y", "sy": "s y", "sen": "s en", "nen": "n en", "lon": "l on",
    "jvoudrais": "je voudrais", "nouveaune": "nouveau ne", "nouveaunee": "nouveau nee",
    "nouveaunes": "nouveau nes", "voudrai": "voudrais", "rdv": "rendez vous",
}
_APOSTROPHES = str.maketrans({"’": "'", "`": "'", "´": "'", "œ": "oe", "Œ": "oe", "æ": "ae",
                              "Æ": "ae", "ß": "ss"})


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces, contractions split.

    ``"J'ai MAL à la poitrine!!"`` -> ``"j ai mal a la poitrine"``;
    ``"jai mal"`` -> ``"j ai mal"``.
    """
    text = text.translate(_APOSTROPHES)
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9]+", " ", text)
    tokens = [_TOKEN_FIXES.get(t, t) for t in text.split()]
    return " ".join(tokens)


_ELISION_RE = re.compile(r"^(qu|[ldjnmtsc])([aeiouhy][a-z]*)$")


def _vocabulary(patterns: Iterable[str]) -> frozenset[str]:
    """The literal words of the rules (with and without a final s), for :func:`split_elisions`."""
    words: set[str] = set()
    for pattern in patterns:
        for w in re.findall(r"[a-z]{3,}", re.sub(r"\\[a-zA-Z]", " ", pattern)):
            words.update({w, w.rstrip("s"), w + "s"})
    return frozenset(words)


# Short words an elision is glued to ("leau", "lair", "dun"); longer ones come from the rules.
_SHORT_AFTER_ELISION = frozenset({"eau", "air", "oeil", "aie", "ont", "est", "ete", "os"})
# Real words that look like a glued elision of a rule word.
_NOT_ELISIONS = frozenset({"savoir", "savez", "savait", "sentir", "sont", "maux", "mais", "moins",
                           "celui", "celle", "cette", "cela", "leur", "leurs", "lequel", "laquelle",
                           "tenir", "tenez", "tout", "toute", "tous", "sauf", "soit"})


def _known(word: str, vocabulary: frozenset[str]) -> bool:
    """A rule word of 5+ letters (or a stem of one: ``affaisse``), or a known short word."""
    if len(word) < 5:
        return word in _SHORT_AFTER_ELISION
    return word in vocabulary or any(word[:k] in vocabulary for k in range(len(word) - 1, 4, -1))


def split_elisions(normalized: str, vocabulary: frozenset[str]) -> str:
    """Split elisions transcribed without the apostrophe: ``dasthme`` -> ``d asthme``.

    Only when the glued token is not itself a rule word and the rest is one, so
    ordinary words are left alone.
    """
    if not vocabulary:
        return normalized
    out = []
    for token in normalized.split():
        m = _ELISION_RE.match(token)
        if (m and token not in vocabulary and token not in _NOT_ELISIONS
                and _known(m.group(2), vocabulary)):
            out.append(f"{m.group(1)} {m.group(2)}")
        else:
            out.append(token)
    return " ".join(out)


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

_MACRO_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_GAP_LONG = r"\s+(?:\S+\s+){0,12}"
_GAP = r"\s+(?:\S+\s+){0,5}"


def _expand(pattern: str, macros: Mapping[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise RulesError(f"{where}: unknown macro {{{name}}} (defined: {', '.join(macros)})")
        return f"(?:{macros[name]})"

    expanded = _MACRO_RE.sub(sub, pattern)
    expanded = expanded.replace(" ~~ ", _GAP_LONG).replace(" ~ ", _GAP)
    return rf"(?<![a-z0-9])(?:{expanded})(?![a-z0-9])"


@dataclass(frozen=True)
class Rule:
    """One rule: any of ``patterns`` matches, or all of ``all_of`` match; none of ``unless``."""

    id: str
    category: str
    family: str
    patterns: tuple[re.Pattern[str], ...] = ()
    all_of: tuple[re.Pattern[str], ...] = ()
    unless: tuple[re.Pattern[str], ...] = ()
    priority: int = 0
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()

    def match(self, normalized: str) -> str | None:
        """The matched text, or None."""
        if any(p.search(normalized) for p in self.unless):
            return None
        for p in self.patterns:
            m = p.search(normalized)
            if m:
                return m.group(0)
        if self.all_of:
            found = [p.search(normalized) for p in self.all_of]
            if all(found):
                return " + ".join(m.group(0) for m in found if m)
        return None


@dataclass(frozen=True)
class SafetyVerdict:
    """The outcome of :meth:`SafetyRules.assess` for one patient turn."""

    category: str  # one of CATEGORIES
    rule_id: str | None = None
    matched: str = ""
    priority: int = 0
    response_fr: str = ""  # the scripted French answer to say ("" for "none")
    response_en: str = ""
    family: str | None = None
    language: str = "fr"
    also: tuple[str, ...] = ()  # ids of other rules that matched, lower priority
    from_context: bool = False  # the red flag needed the caller's previous turns

    @property
    def is_red_flag(self) -> bool:
        return self.category in RED_FLAG_CATEGORIES

    @property
    def handoff(self) -> bool:
        """Whether the call must go to a human now."""
        return self.category in HANDOFF_CATEGORIES

    @property
    def response(self) -> str:
        """The scripted answer in the caller's language."""
        return self.response_en if self.language == "en" and self.response_en else self.response_fr


NONE_VERDICT = SafetyVerdict(category="none")


@dataclass
class SafetyRules:
    """The compiled rule set. Build it with :meth:`load` (no I/O at import)."""

    rules: tuple[Rule, ...]
    responses_fr: dict[str, str]
    responses_en: dict[str, str] = field(default_factory=dict)
    priorities: dict[str, int] = field(default_factory=dict)
    source: str | None = None
    vocabulary: frozenset[str] = frozenset()  # words the rules are written with

    @classmethod
    def load(cls, path: str | Path | None = None, *,
             emergency_numbers: Mapping[str, str] | Any | None = None) -> SafetyRules:
        """Read and compile a rules file (default: the shipped French rules).

        ``emergency_numbers``: a mapping or an object with ``samu``, ``europe`` and
        ``suicide`` attributes (``profile.policies.emergency_numbers``).
        """
        import yaml

        file = Path(path) if path is not None else default_rules_path()
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RulesError(f"{file}: cannot read rules: {exc}") from exc
        except yaml.YAMLError as exc:
            raise RulesError(f"{file}: invalid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(file), emergency_numbers=emergency_numbers)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<rules>",
                  emergency_numbers: Mapping[str, str] | Any | None = None) -> SafetyRules:
        if not isinstance(data, Mapping) or "rules" not in data or "categories" not in data:
            raise RulesError(f"{source}: expected a mapping with 'categories' and 'rules'")
        numbers = dict(_DEFAULT_NUMBERS)
        if emergency_numbers is not None:
            for key in numbers:
                value = (emergency_numbers.get(key) if isinstance(emergency_numbers, Mapping)
                         else getattr(emergency_numbers, key, None))
                if value:
                    numbers[key] = str(value)
        responses_fr: dict[str, str] = {}
        responses_en: dict[str, str] = {}
        priorities: dict[str, int] = {}
        for cat, spec in (data.get("categories") or {}).items():
            if cat not in CATEGORIES or cat == "none":
                raise RulesError(f"{source}: categories.{cat}: unknown category "
                                 f"(use: {', '.join(CATEGORIES[:-1])})")
            if not isinstance(spec, Mapping) or "response_fr" not in spec:
                raise RulesError(f"{source}: categories.{cat}: needs response_fr and priority")
            try:
                responses_fr[cat] = " ".join(str(spec["response_fr"]).split()).format(**numbers)
                responses_en[cat] = " ".join(str(spec.get("response_en", "")).split()).format(
                    **numbers)
            except (KeyError, IndexError, ValueError) as exc:
                raise RulesError(f"{source}: categories.{cat}: bad placeholder {exc} "
                                 "(use {samu}, {europe}, {suicide})") from exc
            priorities[cat] = int(spec.get("priority", 0))
        missing = [c for c in CATEGORIES[:-1] if c not in responses_fr]
        if missing:
            raise RulesError(f"{source}: categories: missing {', '.join(missing)}")
        macros = {str(k): str(v) for k, v in (data.get("macros") or {}).items()}
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(data.get("rules") or []):
            rules.append(_parse_rule(raw, i, macros, priorities, source, seen))
        logger.debug("loaded %d safety rules from %s", len(rules), source)
        texts = [*macros.values()] + [str(p) for r in data.get("rules") or []
                                      for key in ("patterns", "all", "unless")
                                      for p in (r.get(key) or [])]
        return cls(rules=tuple(rules), responses_fr=responses_fr, responses_en=responses_en,
                   priorities=priorities, source=source, vocabulary=_vocabulary(texts))

    def assess(self, text: str, *, context: Sequence[str] = ()) -> SafetyVerdict:
        """Classify one patient turn. Pure and deterministic.

        ``context``: the caller's previous turns in this call (oldest first). Red
        flags are also looked for across the last two of them plus this turn, so
        "il a de la fièvre" then "et des taches sur le ventre" is caught; a red flag
        already present in the context alone is not raised again.
        """
        verdict = self._assess_text(text)
        if verdict.is_red_flag or not context:
            return self._log(verdict)
        recent = [c for c in context[-2:] if c]
        combined = self._assess_text(" ".join([*recent, text]), red_flags_only=True)
        if combined.is_red_flag and not self._assess_text(
                " ".join(recent), red_flags_only=True).is_red_flag:
            return self._log(replace(combined, language=detect_language(text),
                                     from_context=True))
        return self._log(verdict)

    def _log(self, verdict: SafetyVerdict) -> SafetyVerdict:
        if verdict.is_red_flag:
            logger.warning("red flag %s (%s): %s", verdict.rule_id, verdict.category,
                           redacted(verdict.matched))
        elif verdict.category != "none":
            logger.info("safety %s (%s): %s", verdict.category, verdict.rule_id,
                        redacted(verdict.matched))
        return verdict

    def _assess_text(self, text: str, *, red_flags_only: bool = False) -> SafetyVerdict:
        norm = split_elisions(normalize(text or ""), self.vocabulary)
        if not norm:
            return NONE_VERDICT
        hits: list[tuple[int, int, Rule, str]] = []
        for index, rule in enumerate(self.rules):
            if red_flags_only and rule.category not in RED_FLAG_CATEGORIES:
                continue
            matched = rule.match(norm)
            if matched is not None:
                hits.append((-rule.priority, index, rule, matched))
        if not hits:
            return NONE_VERDICT
        hits.sort(key=lambda h: (h[0], h[1]))
        _, _, best, matched = hits[0]
        verdict = SafetyVerdict(
            category=best.category, rule_id=best.id, matched=matched, priority=best.priority,
            response_fr=self.responses_fr[best.category],
            response_en=self.responses_en.get(best.category, ""), family=best.family,
            language=detect_language(text), also=tuple(h[2].id for h in hits[1:]))
        return verdict

    def check_examples(self) -> list[str]:
        """Problems with the rules' own examples / counter-examples (empty = all good)."""
        problems = []
        for rule in self.rules:
            for ex in rule.examples:
                if rule.match(normalize(ex)) is None:
                    problems.append(f"{rule.id}: example not matched: {ex!r}")
            for ex in rule.counter_examples:
                if rule.match(normalize(ex)) is not None:
                    problems.append(f"{rule.id}: counter-example matched: {ex!r}")
        return problems


def _parse_rule(raw: Any, index: int, macros: Mapping[str, str], priorities: Mapping[str, int],
                source: str, seen: set[str]) -> Rule:
    where = f"{source}: rules[{index}]"
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: expected a mapping")
    allowed = {"id", "category", "family", "patterns", "all", "unless", "priority", "examples",
               "counter_examples", "description"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RulesError(f"{where}: missing id")
    where = f"{source}: rule {rid}"
    if rid in seen:
        raise RulesError(f"{where}: duplicate id")
    seen.add(rid)
    category = str(raw.get("category"))
    if category not in priorities:
        raise RulesError(f"{where}: unknown category {category!r}")

    def compile_all(key: str) -> tuple[re.Pattern[str], ...]:
        items = raw.get(key) or []
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise RulesError(f"{where}: {key} must be a list of strings")
        out = []
        for j, pat in enumerate(items):
            if pat != pat.strip():
                raise RulesError(f"{where}.{key}[{j}]: pattern starts or ends with a space "
                                 "(it could never match on a word boundary)")
            try:
                out.append(re.compile(_expand(pat, macros, f"{where}.{key}[{j}]")))
            except re.error as exc:
                raise RulesError(f"{where}.{key}[{j}]: bad regular expression: {exc}") from exc
        return tuple(out)

    patterns, all_of, unless = compile_all("patterns"), compile_all("all"), compile_all("unless")
    if not patterns and not all_of:
        raise RulesError(f"{where}: needs patterns or all")
    return Rule(id=rid, category=category, family=str(raw.get("family") or category),
                patterns=patterns, all_of=all_of, unless=unless,
                priority=int(raw.get("priority", priorities[category])),
                examples=tuple(str(x) for x in raw.get("examples") or []),
                counter_examples=tuple(str(x) for x in raw.get("counter_examples") or []))


# --------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------

_EN_WORDS = frozenset(
    "the and is are am i you my your to of have has can could would like need want what when "
    "where how please hello hi speak english appointment doctor with this that it be do does "
    "don t not thank thanks yes no help me for on in at an a book tomorrow today morning "
    "afternoon sorry hear understand is there".split())
_FR_WORDS = frozenset(
    "le la les de des du je j vous est un une et pour rendez bonjour oui non pas mon ma mes "
    "c ce a au aux avec voudrais veux suis ai il elle qu que qui docteur demain merci "
    "madame monsieur s plait d l n y en sur par matin apres midi jeudi lundi mardi".split())
# Words in both lists count for neither.
_AMBIGUOUS = _EN_WORDS & _FR_WORDS


def detect_language(text: str) -> str:
    """``"en"`` if the caller is clearly speaking English, else ``"fr"``."""
    tokens = re.findall(r"[a-z]+", text.lower().replace("’", "'"))
    en = sum(1 for t in tokens if t in _EN_WORDS and t not in _AMBIGUOUS)
    fr = sum(1 for t in tokens if t in _FR_WORDS and t not in _AMBIGUOUS)
    # Accented letters are a strong French signal.
    fr += 2 * len(re.findall(r"[éèêàùçôîâœ]", text.lower()))
    return "en" if en >= 2 and en > fr else "fr"


# --------------------------------------------------------------------------------------------
# Escalation
# --------------------------------------------------------------------------------------------


class TurnOutcome(StrEnum):
    UNDERSTOOD = "understood"
    NOT_UNDERSTOOD = "not_understood"
    SILENCE = "silence"


@dataclass(frozen=True)
class EscalationDecision:
    handoff: bool
    reason: str | None = None  # "emergency" | "suicide" | "caller_request" | "anger" | "misunderstanding" | "medical_insistence"
    say_fr: str | None = None  # what to say now (re-prompt or handoff line), if anything


REPROMPT_FR = "Pardon, je n'ai pas bien compris. Pouvez-vous répéter, s'il vous plaît ?"
SILENCE_FR = "Vous êtes toujours là ?"
HANDOFF_FR = "Je vous passe une secrétaire, ne quittez pas."


class EscalationTracker:
    """Per-call escalation state. Feed it every turn with :meth:`record`.

    Hands off on: a red flag or a request for a human or anger (the verdict's own
    script is then said, so ``say_fr`` is None); ``max_failures`` failed
    understandings in a row (silence counts as a failure); ``max_medical`` requests
    for medical advice in the same call (the caller needs a person, not a refusal).
    """

    def __init__(self, *, max_failures: int = 2, max_medical: int = 2) -> None:
        if max_failures < 1 or max_medical < 1:
            raise ValueError("max_failures and max_medical must be at least 1")
        self.max_failures = max_failures
        self.max_medical = max_medical
        self.consecutive_failures = 0
        self._failures_before = 0  # before the last turn was recorded (see reply_failed)
        self.medical_requests = 0
        self.history: list[tuple[str, str]] = []  # (outcome, category)
        self.decision: EscalationDecision | None = None

    def record(self, outcome: TurnOutcome | str = TurnOutcome.UNDERSTOOD, *,
               verdict: SafetyVerdict | None = None) -> EscalationDecision:
        out = TurnOutcome(outcome)
        category = verdict.category if verdict is not None else "none"
        self.history.append((out.value, category))
        if self.decision is not None and self.decision.handoff:
            return self.decision
        self._failures_before = self.consecutive_failures
        decision = self._decide(out, category)
        if decision.handoff:
            self.decision = decision
            logger.info("escalation: hand off (%s) after %d turns", decision.reason,
                        len(self.history))
        return decision

    def _decide(self, out: TurnOutcome, category: str) -> EscalationDecision:
        if category in HANDOFF_CATEGORIES:
            reason = "caller_request" if category == "human_request" else category
            return EscalationDecision(handoff=True, reason=reason)
        if out is TurnOutcome.UNDERSTOOD or category == "medical_advice":
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.max_failures:
                return EscalationDecision(handoff=True, reason="misunderstanding",
                                          say_fr="Je suis désolée, je vous comprends mal. "
                                                 + HANDOFF_FR)
            return EscalationDecision(handoff=False, say_fr=SILENCE_FR
                                      if out is TurnOutcome.SILENCE else REPROMPT_FR)
        if category == "medical_advice":
            self.medical_requests += 1
            if self.medical_requests >= self.max_medical:
                return EscalationDecision(handoff=True, reason="medical_insistence",
                                          say_fr="Je vais vous passer une secrétaire, qui "
                                                 "verra avec le médecin. Ne quittez pas.")
        return EscalationDecision(handoff=False)

    def reply_failed(self) -> EscalationDecision:
        """The last turn looked understood, but the assistant found nothing to do with it
        (the model could only say it cannot help): it counts as not understood after all,
        so the next misunderstanding in a row hands the call off."""
        if self.decision is not None and self.decision.handoff:
            return self.decision
        if not self.history or self.history[-1][0] != TurnOutcome.UNDERSTOOD.value:
            return EscalationDecision(handoff=False, say_fr=REPROMPT_FR)
        category = self.history[-1][1]
        self.history[-1] = (TurnOutcome.NOT_UNDERSTOOD.value, category)
        self.consecutive_failures = self._failures_before
        decision = self._decide(TurnOutcome.NOT_UNDERSTOOD, category)
        if decision.handoff:
            self.decision = decision
            logger.info("escalation: hand off (%s) after %d turns", decision.reason,
                        len(self.history))
        return decision

    @property
    def should_handoff(self) -> bool:
        return self.decision is not None and self.decision.handoff


_HALLUCINATIONS = (
    "sous titres realises par", "sous titrage", "merci d avoir regarde", "abonnez vous",
    "amara org", "merci de votre attention", "sous titres", "transcription", "musique",
)


def classify_transcript(text: str | None) -> TurnOutcome:
    """A first guess at a turn's outcome from the transcript alone.

    Empty text or a known Whisper hallucination on silence ("Sous-titres réalisés
    par...") is ``SILENCE``; text with no word of two letters or more is
    ``NOT_UNDERSTOOD``; anything else ``UNDERSTOOD`` (the model may still fail to
    understand it: the caller of the tracker decides).
    """
    norm = normalize(text or "")
    if not norm or (any(h in norm for h in _HALLUCINATIONS) and len(norm.split()) <= 12):
        return TurnOutcome.SILENCE
    words = [w for w in norm.split() if len(w) >= 2 and not w.isdigit()]
    if not words or all(w in {"euh", "hum", "hmm", "heu", "bah", "ben", "mh", "hm"} for w in words):
        return TurnOutcome.NOT_UNDERSTOOD
    return TurnOutcome.UNDERSTOOD


def assess_many(rules: SafetyRules, texts: Iterable[str]) -> list[SafetyVerdict]:
    """Convenience for evaluation: assess each text."""
    return [rules.assess(t) for t in texts]
