"""Answers about the practice, read from the profile: never from the model's memory.

``answer_practice_question(profile, topic)`` returns one or a few short French
sentences ready for text-to-speech. ``topic`` is one of :data:`TOPICS` (the
``practice_info`` tool's enum) or a free-text question, matched against topic
keywords and then against the profile's FAQ. Anything the profile does not say
gets :data:`UNKNOWN_ANSWER_FR`: the assistant offers to pass a message instead
of inventing.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, timedelta

from knowledge.phrasing import (
    WEEKDAYS_FR,
    join_fr,
    say_date,
    say_euros,
    say_phone,
    say_practitioner,
    say_time,
    say_time_range,
    speakable,
)
from knowledge.profile import FaqEntry, OpeningHours, PracticeProfile, TimeRange

__all__ = [
    "TOPICS",
    "UNKNOWN_ANSWER_FR",
    "answer_practice_question",
    "match_faq",
    "resolve_topic",
]

logger = logging.getLogger(__name__)

UNKNOWN_ANSWER_FR = ("Je n'ai pas cette information. Je peux laisser un message au secrétariat, "
                     "qui vous rappellera.")

TOPICS: tuple[str, ...] = (
    "hours", "hours_today", "address", "access", "phone", "tariffs", "payments", "carte_vitale",
    "tiers_payant", "documents", "practitioners", "home_visits", "cancellation",
    "out_of_hours", "emergency",
)

# Free-text keywords (accent-folded, lower case) -> topic. First match wins, so the
# more specific topics come first.
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("carte_vitale", ("vitale",)),
    ("tiers_payant", ("tiers payant", "avance de frais", "avancer les frais")),
    ("home_visits", ("domicile", "a la maison", "se deplacer chez", "visite")),
    ("emergency", ("urgence", "urgent")),
    ("out_of_hours", ("hors des heures", "en dehors des heures", "le soir", "week end",
                      "weekend", "nuit", "garde", "permanence")),
    ("cancellation", ("annul", "deplacer mon", "decommander", "report")),
    ("payments", ("paiement", "payer", "carte bancaire", "carte bleue", "cheque", "espece",
                  "regler", "reglement")),
    ("tariffs", ("tarif", "prix", "combien", "coute", "cout", "honoraire", "depassement",
                 "secteur", "rembours", "conventionne")),
    ("documents", ("apporter", "document", "papiers", "amener")),
    ("access", ("acces", "parking", "garer", "stationner", "tram", "metro", "bus",
                "fauteuil", "handicap", "ascenseur", "etage", "comment venir", "pour venir",
                "venir en", "y aller", "s y rendre")),
    ("address", ("adresse", "ou se trouve", "ou etes vous", "situe", "ou est le cabinet")),
    ("phone", ("numero", "telephone")),
    ("hours_today", ("ouvert aujourd hui", "ouvert ce", "ouvert maintenant", "ouvert en ce moment",
                     "ferme aujourd hui", "ferme ce", "aujourd hui ouvert", "horaires aujourd hui",
                     "horaires d aujourd hui", "ouvrez aujourd hui", "ouvre aujourd hui")),
    ("hours", ("horaire", "heure", "ouvert", "ouvre", "ferme", "fermeture")),
    ("practitioners", ("medecin", "praticien", "docteur", "specialiste", "specialite",
                       "dermatologue", "generaliste")),
)

_STOPWORDS = frozenset(
    "a au aux avec ce ces cet cette comment de des du en est et faut il ils je la le les leur "
    "l d j m n s t qu que qui quoi quand on ou par pas peut peux pour puis se sur un une vous "
    "votre vos mon ma mes me moi y est-ce ca c fait faire bien bonjour svp plait faites fais "
    "avez avoir etes etre sont dois doit devez venir voudrais veux voulais savoir aimerais "
    "possible cabinet docteur merci alors donc aussi tout tous".split())


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _tokens(text: str) -> set[str]:
    out = set()
    for w in _fold(text).split():
        if w in _STOPWORDS or len(w) < 3:
            continue
        out.add(w[:-1] if len(w) > 4 and w.endswith(("s", "x")) else w)
    return out


def _faq_score(question: str, entry: FaqEntry) -> tuple[float, int]:
    """(score, hits): share of the question's words found in the entry's question, or
    (discounted) in its question and answer; prefix match tolerates inflections
    ("visites"/"visite", "vaccine"/"vaccins")."""
    q = _tokens(question)
    if not q:
        return 0.0, 0

    def hits_in(words: set[str]) -> int:
        return sum(1 for w in q if any(w[:6] == x[:6] for x in words))

    in_question = hits_in(_tokens(entry.question))
    in_both = hits_in(_tokens(entry.question) | _tokens(entry.answer))
    ratio = difflib.SequenceMatcher(None, _fold(question), _fold(entry.question)).ratio()
    score = max(in_question / len(q), 0.8 * in_both / len(q), ratio if ratio >= 0.75 else 0.0)
    return score, max(in_question, in_both)


def match_faq(profile: PracticeProfile, question: str, *, threshold: float = 0.5,
              min_hits: int = 1) -> FaqEntry | None:
    """The FAQ entry a free-text question is about, or None if none is close enough."""
    best: tuple[float, FaqEntry] | None = None
    for entry in profile.faq:
        score, hits = _faq_score(question, entry)
        if hits < min_hits or score < threshold:
            continue
        if best is None or score > best[0]:
            best = (score, entry)
    return best[1] if best else None


def resolve_topic(topic: str, *, misheard: bool = False) -> str | None:
    """Map a tool argument or a free-text question to one of :data:`TOPICS`; ``misheard``:
    also a long keyword heard one letter off ("la dreste cabine"), for a caller's words."""
    t = _fold(topic)
    key = t.replace(" ", "_")
    if key in TOPICS:
        return key
    aliases = {"opening_hours": "hours", "horaires": "hours", "tarifs": "tariffs",
               "prices": "tariffs", "adresse": "address", "acces": "access",
               "paiement": "payments", "payment": "payments", "visites_a_domicile": "home_visits",
               "home_visit": "home_visits", "doctors": "practitioners", "medecins": "practitioners",
               "telephone": "phone", "tarif": "tariffs", "cancel": "cancellation"}
    if key in aliases:
        return aliases[key]
    padded = f" {t} "
    for name, words in _KEYWORDS:
        if any(f" {w}" in padded for w in words):
            return name
    if misheard:  # "la dreste cabine": l'adresse
        for name, words in _KEYWORDS:
            if any(" " not in w and len(w) >= 7 and _sounds_like(t, w) for w in words):
                return name
    return None


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def _sounds_like(folded: str, word: str) -> bool:
    """Whether ``word`` (a long topic keyword) is said in ``folded`` one letter off, words
    run together as speech recognition cuts them: a word start, or just after an elided
    "l'"/"d'" fused with the next word ("la dreste" -> "ladreste" ~ "l'adresse")."""
    words = folded.split()
    joined = "".join(words)
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        if w[0] in "ld" and len(w) > 1:
            starts.append(pos + 1)
        pos += len(w)
    return any(_within_one_edit(joined[p:p + n], word)
               for p in starts for n in (len(word) - 1, len(word), len(word) + 1))


def answer_practice_question(profile: PracticeProfile, topic: str, *,
                             now: datetime | None = None) -> str:
    """A short spoken French answer about the practice, from the profile only."""
    if now is None:
        now = datetime.now(profile.practice.tzinfo)
    elif now.tzinfo is not None:
        now = now.astimezone(profile.practice.tzinfo)
    now = now.replace(tzinfo=None)
    key = _fold(topic or "").replace(" ", "_")
    if key not in TOPICS:
        # A free-text question that clearly matches an FAQ entry beats topic keywords
        # ("est-ce que je dois venir à jeun" is not about access).
        strong = match_faq(profile, topic or "", threshold=0.75, min_hits=2)
        if strong is not None:
            return speakable(strong.answer)
    resolved = resolve_topic(topic or "")
    if resolved is None or resolved == "home_visits":
        entry = match_faq(profile, topic or "") if resolved is None else (
            match_faq(profile, topic) or match_faq(profile, "visites à domicile"))
        if entry is not None:
            return speakable(entry.answer)
        logger.info("practice question without an answer in the profile: %r", topic)
        return UNKNOWN_ANSWER_FR
    answer = _HANDLERS[resolved](profile, topic, now)
    return speakable(answer) if answer else UNKNOWN_ANSWER_FR


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


def _ranges(ranges: tuple[TimeRange, ...]) -> str:
    return join_fr([say_time_range(r.start, r.end) for r in ranges])


def _week(hours: OpeningHours) -> list[str]:
    """Group consecutive weekdays with the same ranges: "du lundi au jeudi de ..."."""
    parts: list[str] = []
    i = 0
    while i < 7:
        ranges = hours.ranges(i)
        j = i
        while j + 1 < 7 and hours.ranges(j + 1) == ranges:
            j += 1
        if ranges:
            if j == i:
                days = f"le {WEEKDAYS_FR[i]}"
            elif j == i + 1:
                days = f"le {WEEKDAYS_FR[i]} et le {WEEKDAYS_FR[j]}"
            else:
                days = f"du {WEEKDAYS_FR[i]} au {WEEKDAYS_FR[j]}"
            parts.append(f"{days} {_ranges(ranges)}")
        i = j + 1
    return parts


def _next_opening(profile: PracticeProfile, now: datetime) -> datetime | None:
    for offset in range(0, 60):
        day = now.date() + timedelta(days=offset)
        if profile.closure_on(day):
            continue
        for r in profile.hours.ranges(day):
            start = datetime.combine(day, r.start)
            if start > now:
                return start
    return None


def _hours(profile: PracticeProfile, topic: str, now: datetime) -> str:
    week = _week(profile.hours)
    if not week:
        return ""
    closed_days = [WEEKDAYS_FR[i] for i in range(7) if not profile.hours.is_open_on(i)]
    text = f"Le cabinet est ouvert {join_fr(week)}."
    if closed_days:
        text += f" Il est fermé le {join_fr(closed_days)}."
    today = now.date()
    closure = profile.closure_on(today)
    if closure:
        text += " Aujourd'hui, le cabinet est fermé" + (f" : {closure.reason}." if closure.reason
                                                      else ".")
    else:
        current = next((r for r in profile.hours.ranges(today) if r.contains(now.time())), None)
        if current:
            text += f" En ce moment, le cabinet est ouvert jusqu'à {say_time(current.end)}."
        else:
            text += " En ce moment, le cabinet est fermé."
    if not profile.is_open_at(now):
        nxt = _next_opening(profile, now)
        if nxt is not None:
            if nxt.date() == today:
                when = "aujourd'hui"
            elif nxt.date() == today + timedelta(days=1):
                when = f"demain, {say_date(nxt.date())},"
            else:
                when = say_date(nxt.date(), today=today)
            text += f" Il rouvre {when} à {say_time(nxt)}."
    upcoming = [c for c in profile.closures
                if c.end >= today and c.start <= today + timedelta(days=21)
                and not c.covers(today)]
    for c in upcoming[:1]:
        text += " " + _closure_sentence(c.start, c.end, c.reason, today)
    return text


def _hours_today(profile: PracticeProfile, topic: str, now: datetime) -> str:
    today = now.date()
    closure = profile.closure_on(today)
    ranges = profile.hours.ranges(today)
    if closure or not ranges:
        text = "Aujourd'hui, le cabinet est fermé" + (f" : {closure.reason}." if closure and
                                                      closure.reason else ".")
    else:
        text = f"Aujourd'hui, le cabinet est ouvert {_ranges(ranges)}."
        current = next((r for r in ranges if r.contains(now.time())), None)
        text += (f" En ce moment, il est ouvert jusqu'à {say_time(current.end)}." if current
                 else " En ce moment, il est fermé.")
    if not profile.is_open_at(now):
        nxt = _next_opening(profile, now)
        if nxt is not None:
            when = ("aujourd'hui" if nxt.date() == today else
                    f"demain, {say_date(nxt.date())}," if nxt.date() == today + timedelta(days=1)
                    else say_date(nxt.date(), today=today))
            text += f" Il rouvre {when} à {say_time(nxt)}."
    return text


def _closure_sentence(start: date, end: date, reason: str, today: date) -> str:
    if start == end:
        when = f"le {say_date(start, today=today)}"
    else:
        when = f"du {say_date(start, today=today)} au {say_date(end, today=today)}"
    why = f", {reason[0].lower() + reason[1:]}" if reason else ""
    return f"Attention, le cabinet sera fermé {when}{why}."


def _address(profile: PracticeProfile, topic: str, now: datetime) -> str:
    return f"Le cabinet se trouve au {profile.practice.address}."


def _access(profile: PracticeProfile, topic: str, now: datetime) -> str:
    return f"{profile.practice.access} L'adresse est {profile.practice.address}."


def _phone(profile: PracticeProfile, topic: str, now: datetime) -> str:
    return f"Le numéro du cabinet est le {say_phone(profile.practice.phone)}."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _tariffs(profile: PracticeProfile, topic: str, now: datetime) -> str:
    types = list(profile.appointment_types)
    t = _fold(topic)
    if resolve_topic(topic) == "tariffs" and t not in ("tariffs", "tarifs"):
        wanted = [a for a in types if _tokens(a.label) & _tokens(topic)
                  or any(_fold(profile.practitioner(p).last_name) in t for p in a.practitioners)]
        if wanted:
            types = wanted
    sentences = []
    for a in types:
        refund = ("remboursable par l'Assurance maladie" if a.reimbursed
                  else "non remboursable par l'Assurance maladie")
        sentences.append(f"{_cap(_lower_first(a.label))} : {say_euros(a.tariff_eur)}, {refund}.")
    involved = {p for a in types for p in a.practitioners}
    sectors = [f"{say_practitioner(p.display_name)} est en {p.sector}"
               for p in profile.practitioners if p.id in involved and p.sector]
    if sectors:
        sentences.append(_cap(join_fr(sectors)) + ".")
    return " ".join(sentences)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _payments(profile: PracticeProfile, topic: str, now: datetime) -> str:
    if not profile.payments:
        return ""
    return f"Vous pouvez régler par {join_fr(list(profile.payments), last='ou')}."


def _carte_vitale(profile: PracticeProfile, topic: str, now: datetime) -> str:
    if profile.carte_vitale:
        return "Oui, le cabinet lit la carte Vitale. Pensez à l'apporter."
    return "Le cabinet ne lit pas la carte Vitale."


def _tiers_payant(profile: PracticeProfile, topic: str, now: datetime) -> str:
    return profile.tiers_payant


def _documents(profile: PracticeProfile, topic: str, now: datetime) -> str:
    if not profile.documents_to_bring:
        return ""
    return f"Pensez à apporter : {join_fr(list(profile.documents_to_bring))}."


def _practitioners(profile: PracticeProfile, topic: str, now: datetime) -> str:
    people = []
    for p in profile.practitioners:
        days = [WEEKDAYS_FR[i] for i in range(7) if p.schedule.is_open_on(i)]
        text = f"{say_practitioner(p.display_name)}, en {p.specialty}"
        if days:
            text += f", qui consulte le {join_fr(days)}"
        people.append(text)
    return f"Au cabinet consultent {join_fr(people)}."


def _cancellation(profile: PracticeProfile, topic: str, now: datetime) -> str:
    hours = profile.policies.cancellation_notice_hours
    return (f"Pour annuler ou déplacer un rendez-vous, merci de prévenir au moins {hours} heures "
            "à l'avance.")


def _out_of_hours(profile: PracticeProfile, topic: str, now: datetime) -> str:
    return profile.policies.out_of_hours


def _emergency(profile: PracticeProfile, topic: str, now: datetime) -> str:
    n = profile.policies.emergency_numbers
    return (f"Pour une urgence, raccrochez et appelez le {n.samu}, ou le {n.europe}. "
            f"En cas de détresse ou d'idées suicidaires, appelez le {n.suicide}.")


_HANDLERS: dict[str, Callable[[PracticeProfile, str, datetime], str]] = {
    "hours": _hours,
    "hours_today": _hours_today,
    "address": _address,
    "access": _access,
    "phone": _phone,
    "tariffs": _tariffs,
    "payments": _payments,
    "carte_vitale": _carte_vitale,
    "tiers_payant": _tiers_payant,
    "documents": _documents,
    "practitioners": _practitioners,
    "cancellation": _cancellation,
    "out_of_hours": _out_of_hours,
    "emergency": _emergency,
}
