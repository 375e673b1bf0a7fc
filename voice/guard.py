"""The guard: deterministic checks that hold whatever the dialogue policy proposes.

The dialogue policy (``voice.policy``: the rules, the twin model, or both) only *proposes*
actions and words; the guard decides what may happen, the same way on every call:

- :meth:`Guard.screen` runs on every patient turn before any policy: red flags get the
  fixed 15/112/3114 script and a handoff, a request for a human or anger a handoff, a
  request for medical advice a fixed decline, plus the escalation rules (misunderstood
  turns, English, objection to recording). No policy is asked on these turns.
- :meth:`Guard.check_action` checks one proposed action against what the call has
  established (:class:`CallFacts`): identity verified before an appointment is read or
  changed, a booking only for a slot the agenda offered (and with a known identity), an
  appointment changed only if it was read back to its verified owner and the caller said
  yes, practice facts only for topics the profile answers.
- :meth:`Guard.check_words` checks one sentence of the policy's own words: no personal
  data (phone numbers, dates of birth) but the caller's, no medical advice, no practice
  fact (a price, a time) that neither the profile nor the agenda gave.

A refusal is logged (action, rule id, call id: never patient data) and kept in
:attr:`Guard.refusals` as training signal (the call summary's ``guard_refusals``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from knowledge.consent import objects_to_recording
from knowledge.safety import (
    REPROMPT_FR,
    EscalationTracker,
    TurnOutcome,
    classify_transcript,
    detect_language,
)
from voice.results import Handoff
from voice.understanding import fold, is_agreement, leaks_personal_data

__all__ = [
    "CallFacts",
    "Guard",
    "GuardRefusal",
    "GuardVerdict",
    "Screen",
    "practice_fact_topic",
    "profile_facts",
    "spoken_numbers",
]

logger = logging.getLogger(__name__)

_ESCALATE = {"emergency", "suicide", "human_request", "anger"}
PERSONAL_DATA_FR = ("Je ne peux pas communiquer ce type d'information par téléphone. "
                    "Puis-je faire autre chose pour vous ?")
TIME_NOT_FROM_AGENDA_FR = "Je vérifie dans l'agenda : quel jour et quel moment vous arrangeraient ?"
MEDICAL_ADVICE_FR = ("Je ne peux pas vous donner d'avis médical. Je peux vous proposer un "
                     "rendez-vous ou laisser un message au médecin.")
FACT_NOT_IN_PROFILE_FR = ("Je n'ai pas cette information. Je peux laisser un message au "
                          "secrétariat, qui vous rappellera.")
IDENTITY_FIRST_FR = ("Pour cela, pouvez-vous me donner votre prénom, votre nom et votre date "
                     "de naissance ?")
# A model reply that only says it cannot help: the turn was not understood (say so, and
# count it, so that a second one in a row goes to a human rather than round in circles).
_CANNOT_HELP = re.compile(
    r"(?:je suis )?(?:(?:vraiment |tres )?desolee?(?: pour (?:cette|ce|la|le|l|mon|votre) "
    r"(?:confusion|erreur|malentendu|inconvenient|inconvenience|desagrement))? )?(?:mais )?(?:"
    r"je ne (?:peux|suis) pas (?:en mesure de )?(?:vous )?(?:aider|assister|repondre)"
    r"(?: (?:avec|pour|sur|a) (?:ca|cela|ceci|cette demande|cette question|votre demande|"
    r"votre question))?"
    r"|je n ai pas (?:bien )?compris(?: votre (?:demande|question))?)")
# The model's own words naming emergency services: "J'ai appelé le 15 pour vous" is a false
# claim, and what to do in an emergency is the safety rules' script, said on the caller's words.
_EMERGENCY_WORDS = re.compile(
    r"\b(?:samu|pompiers|police secours)\b|\b(?:le|au|du|composer|composez|appeler|appelez|"
    r"appele) (?P<n>\d{2,4})\b(?! ?(?:janvier|fevrier|mars|avril|mai|juin|juillet|aout|"
    r"septembre|octobre|novembre|decembre|a \d|h\b|heures?))")
SLOT_NOT_OFFERED_FR = "Je regarde les créneaux libres : quel jour vous arrangerait ?"
NOT_OWNED_FR = ("Pour des raisons de confidentialité, je ne peux agir que sur vos propres "
                "rendez-vous. Puis-je faire autre chose pour vous ?")


@dataclass(frozen=True)
class GuardVerdict:
    """``allowed``, or the rule that refused and what to say instead (None: say nothing and
    let the policy go on with the refusal as the action's result)."""

    allowed: bool
    rule: str = ""
    reason: str = ""
    say: str | None = None
    handoff: Handoff | None = None  # words refused so often that the call goes to a human


ALLOW = GuardVerdict(allowed=True)


@dataclass(frozen=True)
class GuardRefusal:
    """One refusal, as training signal: the turn, the action (or ``say``), the rule."""

    turn: int
    action: str
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {"turn": self.turn, "action": self.action, "rule": self.rule}


@dataclass(frozen=True)
class CallFacts:
    """What the call has established, as the guard sees it before an action."""

    user_text: str = ""  # the caller's latest words
    identity: tuple[str, date] | None = None  # name and date of birth the caller gave
    verified_patient: int | None = None  # records patient id, once verified
    offered: tuple[datetime, ...] = ()  # slot starts the agenda offered in this call
    proposed: datetime | None = None  # the slot currently on the table
    accepted: bool = False  # the caller said yes to ``proposed``
    listed: tuple[str, ...] = ()  # appointment ids read back to the verified caller
    confirming: str | None = None  # appointment id whose change was read back for a yes
    agenda_times: tuple[tuple[int, int], ...] = ()  # times the agenda gave (offers, readbacks)
    own_phone: str | None = None  # the caller's own number
    legacy: bool = False  # the rules policy's model tools (names of voice.tools)


@dataclass(frozen=True)
class Screen:
    """The outcome of :meth:`Guard.screen`: a script to say (and maybe a handoff), or go on."""

    category: str = "none"
    say: str | None = None
    handoff: Handoff | None = None
    recording_objected: bool = False

    @property
    def scripted(self) -> bool:
        return self.say is not None


# -- what the profile knows -------------------------------------------------------------------

_UNITS = {"zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6,
          "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
          "quatorze": 14, "quinze": 15, "seize": 16, "vingt": 20, "trente": 30, "quarante": 40,
          "cinquante": 50, "soixante": 60, "cent": 100, "cents": 100}


def _words_to_digits(text: str) -> str:
    """French number words as digits ("dix-sept heures quarante" -> "17 heures 40"), so the
    checks read a time or a price however it is written. Folded (no accents, lower case)."""
    out: list[str] = []
    value: int | None = None
    held_et = False
    for tok in re.findall(r"[a-z0-9]+|[^a-z0-9]+", fold(text)):
        if tok in _UNITS:
            n = _UNITS[tok]
            if value is None:
                value = n
            elif n == 100:
                value = max(value, 1) * 100
            elif n == 20 and value == 4:
                value = 80  # quatre-vingt
            else:
                value += n
            held_et = False
            continue
        if value is not None and tok == "et" and value >= 20 and value % 10 == 0:
            held_et = True
            continue
        if value is not None and re.fullmatch(r"[\s-]+", tok):
            continue
        if value is not None:
            out.append(f" {value} " + ("et " if held_et else ""))
            value, held_et = None, False
        out.append(tok)
    if value is not None:
        out.append(f" {value} ")
    return re.sub(r"\s+", " ", "".join(out)).strip()


def spoken_numbers(text: str) -> str:
    """``text`` folded, number words as digits (public for the tests and the executor)."""
    return _words_to_digits(text)


_AMOUNT = re.compile(r"\b(\d+)(?:[.,](\d{1,2}))?\s*(?:euros?|eur|€)")
_CLOCK = re.compile(r"\b(\d{1,2})\s*(?:h|heures?)\s*(\d{1,2})?\b|\b(\d{1,2}):(\d{2})\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def profile_facts(profile: Any) -> tuple[frozenset[float], frozenset[tuple[int, int]]]:
    """The amounts (euros) and clock times the practice profile states: the only ones the
    policy's own words may contain, besides the agenda's."""
    from knowledge.practice_info import TOPICS, answer_practice_question

    texts: list[str] = []
    for topic in TOPICS:
        try:
            texts.append(answer_practice_question(profile, topic))
        except Exception:  # a topic the profile cannot answer: nothing to allow from it
            logger.debug("no answer for topic %s", topic)
    for entry in getattr(profile, "faq", ()) or ():
        texts.append(str(getattr(entry, "answer", "")))
    amounts = {float(getattr(t, "tariff_eur", 0) or 0)
               for t in getattr(profile, "appointment_types", ())}
    times: set[tuple[int, int]] = set()
    hours = getattr(profile, "hours", None)
    for day in range(7):
        for r in (hours.ranges(day) if hours is not None else ()):
            times.update({(r.start.hour, r.start.minute), (r.end.hour, r.end.minute)})
    for text in texts:
        digits = _words_to_digits(text)
        amounts.update(float(m.replace(",", ".")) for m in _NUMBER.findall(digits))
        times.update(_clock_times(digits))
    return frozenset(amounts), frozenset(times)


def _clock_times(digits: str) -> set[tuple[int, int]]:
    out = set()
    for m in _CLOCK.finditer(digits):
        h, mi = (m[1], m[2]) if m[1] is not None else (m[3], m[4])
        if int(h) <= 23:
            out.add((int(h), int(mi or 0)))
    return out


# -- medical advice in the policy's words ----------------------------------------------------

_DRUGS = (r"doliprane|paracetamol|dafalgan|efferalgan|ibuprofene|advil|nurofen|aspirine|"
          r"amoxicilline|antibiotique|antihistaminique|cortisone|smecta|spasfon|ventoline|"
          r"sirop|pommade|creme|collyre|anti inflammatoire|somnifere|anxiolytique")
_ADVICE = (
    re.compile(rf"\b({_DRUGS})\b.*\b(prenez|prendre|donnez|donner|mettez|mettre|appliquez|"
               r"appliquer|essayez|continuez|arretez|augmentez|diminuez)\b"),
    re.compile(rf"\b(prenez|donnez lui|donnez-lui|mettez|appliquez|essayez|continuez|arretez|"
               rf"augmentez|diminuez)\b.*\b({_DRUGS}|medicament|traitement|comprime|dose)\b"),
    re.compile(r"\b\d+\s*(mg|milligrammes?|comprimes?|gelules?|cachets?|gouttes?|sachets?)\b"),
    re.compile(r"\b(\d+|deux|trois|quatre) fois par jour\b"),
    re.compile(r"\b(c est|ca ressemble a|ca doit etre|ce doit etre|sans doute|surement|"
               r"probablement) (une?|la|le|de la|du|des)? ?(angine|grippe|gastro|infection|"
               r"allergie|migraine|virus|otite|bronchite|cystite|entorse|eczema)\b"),
    re.compile(r"\b(ce n est|c est) (rien de grave|pas grave|benin)\b|\brien de grave\b"),
    re.compile(r"\b(faites le|faites la|faites-le|faites-la) (boire|manger|dormir)\b|"
               r"\bpetites gorgees\b"),
)


# Topics on which a sentence of the policy's own is a claim about the practice. Not the
# phone ("je note votre numéro"), the practitioners or cancellations (said in booking talk),
# nor out-of-hours ("bonne nuit"); hours only with words of opening or closing.
_FACT_TOPICS = frozenset({"hours", "hours_today", "address", "access", "payments",
                          "carte_vitale", "tiers_payant", "home_visits", "documents", "tariffs"})
_OPENING = re.compile(r"\b(ouvert(?:e|s|es)?|ouvre|ouvrons|ouvrent|fermee?s?|fermons|ferment|"
                      r"fermeture|horaires?)\b")
_PRICE = re.compile(r"\b(gratuite?s?|payante?s?|rembourse(?:e|s|es|ment)?)\b")
_WHERE = re.compile(r"\b(se trouve|se situe|est situe|sommes situes|rue|avenue|boulevard|"
                    r"impasse|allee|quai)\b")


def practice_fact_topic(sentence: str) -> str | None:
    """The practice topic a statement (not a question) speaks of, or None:
    "Il y a un parking juste devant." -> "access"."""
    from knowledge.practice_info import resolve_topic

    if sentence.rstrip().endswith("?"):
        return None
    topic, folded = resolve_topic(sentence), fold(sentence)
    if topic is None and _WHERE.search(folded):
        topic = "address"
    if topic is None and _PRICE.search(folded):
        topic = "tariffs"  # "une consultation gratuite": a price the model made up
    if topic in ("hours", "hours_today") and not _OPENING.search(folded):
        return None
    return topic if topic in _FACT_TOPICS else None


def gives_medical_advice(sentence: str) -> bool:
    t = re.sub(r"\s+", " ", fold(sentence).replace("-", " "))
    digits = _words_to_digits(sentence).replace("-", " ")
    return any(p.search(t) or p.search(digits) for p in _ADVICE)


# -- the guard ---------------------------------------------------------------------------------

#: the rules policy's model tools (``voice.tools``) -> the corpus action they are
_LEGACY = {"find_slots": "search_slots", "book": "book", "practice_info": "give_info",
           "leave_message": "take_message", "cancel_appointment": "cancel_flow",
           "reschedule_appointment": "move_flow", "transfer_to_human": "transfer",
           "end_call": "end_call"}


class Guard:
    """One call's guard. ``screen`` each patient turn, ``check_action`` / ``check_words``
    each proposal; ``refusals`` is the call's training signal."""

    def __init__(self, *, call_id: str, profile: Any = None, safety: Any = None,
                 allowed_numbers: Sequence[str] = (), max_failed_turns: int = 2,
                 now: Callable[[], datetime] | None = None) -> None:
        self.call_id = call_id
        self._now = now
        self.safety = safety
        self._profile = profile
        self._allowed_numbers = tuple(allowed_numbers)
        self._escalation = EscalationTracker(max_failures=max_failed_turns)
        self._facts_cache: tuple[frozenset[float], frozenset[tuple[int, int]]] | None = None
        self.refusals: list[GuardRefusal] = []
        self.turn = 0
        self._cannot_help_turn = -1
        self._facts_said: set[tuple[int, str]] = set()  # (turn, topic) answered from the profile
        self.recording_objected = False

    # -- patient turn -------------------------------------------------------------------------
    def screen(self, text: str, *, context: Sequence[str] = ()) -> Screen:
        """Safety and escalation, before any policy (same order as ever: red flags, human
        request and anger; repeated misunderstanding; not understood; English; objection to
        recording; medical advice asked)."""
        verdict = self.safety.assess(text, context=context) if self.safety else None
        category = getattr(verdict, "category", "none") if verdict else "none"
        outcome = classify_transcript(text)
        decision = self._escalation.record(outcome, verdict=verdict)
        if verdict is not None and category in _ESCALATE:
            reason = "caller_request" if category == "human_request" else category
            return Screen(category, verdict.response_fr,
                          Handoff(reason=reason, summary=f"{category}: « {text[:160]} »"))
        if decision.handoff:
            from voice.results import FALLBACK_HANDOFF_FR

            return Screen(category, decision.say_fr or FALLBACK_HANDOFF_FR, Handoff(
                reason=decision.reason or "misunderstanding",
                summary=f"{decision.reason}: « {text[:160]} »"))
        if outcome is not TurnOutcome.UNDERSTOOD:
            return Screen(category, decision.say_fr or "Pouvez-vous répéter ?")
        if detect_language(text) == "en":
            return Screen(category, "I will put you through to a secretary who can help you in "
                                    "English. Please hold the line.",
                          Handoff(reason="language",
                                  summary=f"English-speaking caller: « {text[:160]} »"))
        if objects_to_recording(text) and not self.recording_objected:
            self.recording_objected = True
            return Screen(category, "C'est noté : votre appel ne sera pas conservé. Que puis-je "
                                    "faire pour vous ?", recording_objected=True)
        if verdict is not None and category == "medical_advice":
            return Screen(category, verdict.response_fr)
        return Screen(category)

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, name: str, args: dict[str, Any], facts: CallFacts) -> GuardVerdict:
        action = _LEGACY.get(name, name) if facts.legacy else name
        verdict = self._check(action, args, facts)
        if not verdict.allowed:
            self._refuse(action, verdict.rule)
        return verdict

    def _check(self, action: str, args: dict[str, Any], f: CallFacts) -> GuardVerdict:
        from knowledge.twin_format import ACTIONS

        if not f.legacy and action not in ACTIONS:
            return GuardVerdict(False, "action.unknown", f"actions: {', '.join(ACTIONS)}")
        if action in {"list_appointments", "cancel", "move"} and f.verified_patient is None:
            return GuardVerdict(False, "identity.not_verified",
                                "no verified identity; call find_patient first", IDENTITY_FIRST_FR)
        if action in {"cancel", "move"}:
            appt = str(args.get("appointment_id", ""))
            if appt not in f.listed:
                return GuardVerdict(False, "appointment.not_owned",
                                    "not one of the verified caller's appointments read back",
                                    NOT_OWNED_FR)
            if action == "move" and _minute(args.get("new_start")) not in {
                    _minute(s) for s in f.offered}:
                return GuardVerdict(False, "move.slot_not_offered",
                                    "new_start was not offered by search_slots",
                                    SLOT_NOT_OFFERED_FR)
            if not (f.confirming == appt and _agrees(f.user_text)):
                return GuardVerdict(False, "change.not_confirmed",
                                    "read the appointment back and get an explicit yes first")
        if action == "book":
            return self._check_book(args, f)
        if action in {"find_patient", "create_patient"}:
            from records.spoken_dates import parse_spoken_date

            name = str(args.get("name", "")).split()
            born = str(args.get("birth_date", ""))
            if len(name) < 2 or (_iso_date(born) is None and parse_spoken_date(born) is None):
                return GuardVerdict(False, "identity.incomplete",
                                    "need the full name and the date of birth", IDENTITY_FIRST_FR)
        if action == "emergency":
            numbers = getattr(getattr(self._profile, "policies", None), "emergency_numbers", None)
            known = {getattr(numbers, k, d) for k, d in (("samu", "15"), ("europe", "112"),
                                                          ("suicide", "3114"))}
            if str(args.get("number", "")) not in known:
                return GuardVerdict(False, "emergency.unknown_number",
                                    f"emergency numbers: {sorted(known)}")
        return ALLOW

    def _check_book(self, args: dict[str, Any], f: CallFacts) -> GuardVerdict:
        if f.legacy:  # the rules policy's model tool: the slot on the table, if any
            if f.proposed is None:
                return GuardVerdict(False, "book.slot_not_offered",
                                    "no slot offered yet; call find_slots first")
            return ALLOW
        start = _minute(args.get("start"))
        if start is None or start not in {_minute(s) for s in f.offered}:
            return GuardVerdict(False, "book.slot_not_offered",
                                "start was not offered by search_slots", SLOT_NOT_OFFERED_FR)
        if f.identity is None and f.verified_patient is None:
            return GuardVerdict(False, "book.identity_unknown",
                                "no name and date of birth yet; call find_patient first",
                                IDENTITY_FIRST_FR)
        return ALLOW

    def accepted(self, start: Any, facts: CallFacts) -> bool:
        """Whether the caller accepted the slot starting at ``start``: a yes to it when it was
        the one on the table, or the caller naming its time."""
        when = _minute(start)
        if when is None:
            return False
        if facts.proposed is not None and _minute(facts.proposed) == when and (
                facts.accepted or _agrees(facts.user_text)):
            return True
        said = _clock_times(spoken_numbers(facts.user_text))
        return (int(when[11:13]), int(when[14:16])) in said

    # -- words --------------------------------------------------------------------------------
    def check_words(self, sentence: str, facts: CallFacts) -> GuardVerdict:
        if _CANNOT_HELP.fullmatch(" ".join(re.sub(r"[^a-z ]", " ", fold(sentence)).split())):
            return self._cannot_help()
        topic = practice_fact_topic(sentence)
        if topic == "tariffs" and _AMOUNT.search(_words_to_digits(sentence)):
            topic = None  # a price: checked against the profile's amounts below
        if topic is not None:
            return self._practice_fact(topic)
        verdict = self._check_words(sentence, facts)
        if not verdict.allowed:
            logger.warning("call %s: guard withheld a sentence (rule %s)", self.call_id,
                           verdict.rule)
            self._refuse("say", verdict.rule, log=False)
        return verdict

    def _check_words(self, sentence: str, f: CallFacts) -> GuardVerdict:
        allowed = self._allowed_numbers + ((f.own_phone,) if f.own_phone else ())
        said_emergency = self._emergency_words(sentence)
        if said_emergency is not None:
            return said_emergency
        if leaks_personal_data(sentence, allowed=allowed):
            return GuardVerdict(False, "privacy.personal_data", "", PERSONAL_DATA_FR)
        if gives_medical_advice(sentence):
            return GuardVerdict(False, "medical.advice", "", MEDICAL_ADVICE_FR)
        amounts, _times = self._profile_facts()
        digits = _words_to_digits(sentence)
        for m in _AMOUNT.finditer(digits):
            value = float(f"{m[1]}.{m[2] or 0}")
            if value not in amounts:
                return GuardVerdict(False, "practice_fact.not_in_profile", "",
                                    FACT_NOT_IN_PROFILE_FR)
        # Times only ever come from the agenda (offers, read-backs): opening hours are the
        # profile's, said by give_info in its own words, never from the model's memory.
        said_times = _clock_times(digits) | _clock_times(sentence)
        if said_times - set(f.agenda_times):
            return GuardVerdict(False, "practice_fact.time_not_from_agenda", "",
                                TIME_NOT_FROM_AGENDA_FR)
        return ALLOW

    def _emergency_words(self, sentence: str) -> GuardVerdict | None:
        """The policy named emergency services in its own words: withheld, and the emergency
        numbers said plainly once a turn instead (never a claim that a call was made)."""
        numbers = getattr(getattr(self._profile, "policies", None), "emergency_numbers", None)
        known = {str(getattr(numbers, k, d)) for k, d in (("samu", "15"), ("europe", "112"),
                                                          ("suicide", "3114"))}
        m = _EMERGENCY_WORDS.search(fold(sentence))
        if m is None or (m["n"] is not None and m["n"] not in known):
            return None
        if (self.turn, "emergency") in self._facts_said:
            return GuardVerdict(False, "emergency.words_from_rules", "", "")
        self._facts_said.add((self.turn, "emergency"))
        samu, europe = (getattr(numbers, "samu", "15"), getattr(numbers, "europe", "112"))
        return GuardVerdict(False, "emergency.words_from_rules", "",
                            f"En cas d'urgence, raccrochez et appelez le {samu} ou le {europe}.")

    def _practice_fact(self, topic: str) -> GuardVerdict:
        """The policy's own words state a fact about the practice (its days, parking,
        address, payments…): the profile's answer on that topic is said instead, once a turn,
        whether the model's words agreed with it or not."""
        from knowledge.practice_info import answer_practice_question

        self._refuse("say", "practice_fact.from_profile", log=False)
        if (self.turn, topic) in self._facts_said:
            return GuardVerdict(False, "practice_fact.from_profile", topic, "")
        self._facts_said.add((self.turn, topic))
        if self._profile is None:
            return GuardVerdict(False, "practice_fact.from_profile", topic, FACT_NOT_IN_PROFILE_FR)
        now = self._now() if self._now is not None else None
        return GuardVerdict(False, "practice_fact.from_profile", topic,
                            answer_practice_question(self._profile, topic, now=now))

    def _cannot_help(self) -> GuardVerdict:
        if self._cannot_help_turn == self.turn:  # said once this turn already
            return GuardVerdict(False, "reply.cannot_help", "", "")
        self._cannot_help_turn = self.turn
        self._refuse("say", "reply.cannot_help", log=False)
        decision = self._escalation.reply_failed()
        if not decision.handoff:
            return GuardVerdict(False, "reply.cannot_help", "", decision.say_fr or REPROMPT_FR)
        from voice.results import FALLBACK_HANDOFF_FR

        return GuardVerdict(False, "reply.cannot_help", "", decision.say_fr or FALLBACK_HANDOFF_FR,
                            handoff=Handoff(reason=decision.reason or "misunderstanding",
                                            summary="misunderstanding: the assistant could not "
                                                    "help twice in a row"))

    def _profile_facts(self) -> tuple[frozenset[float], frozenset[tuple[int, int]]]:
        if self._facts_cache is None:
            self._facts_cache = (profile_facts(self._profile) if self._profile is not None
                                 else (frozenset(), frozenset()))
        return self._facts_cache

    def _refuse(self, action: str, rule: str, *, log: bool = True) -> None:
        self.refusals.append(GuardRefusal(turn=self.turn, action=action, rule=rule))
        if log:
            logger.warning("call %s: guard refused %s (rule %s)", self.call_id, action, rule)


def _agrees(text: str) -> bool:
    """A yes, or the change asked for again ("oui, je préfère annuler")."""
    from voice.changes import change_intent

    return is_agreement(text) or change_intent(text) is not None


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _minute(value: Any) -> str | None:
    """A start as local ``YYYY-MM-DDTHH:MM`` (aware datetimes keep their wall-clock time)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if not isinstance(value, str):
        return None
    m = re.match(r"\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})", value)
    return f"{m[1]}T{m[2]}:{m[3]}" if m else None

