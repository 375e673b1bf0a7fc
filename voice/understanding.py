"""Deterministic understanding of what a patient said, on speech-recognition output.

Small, rule-based readers for the transactional core of a call: is this a yes, a
no, a goodbye, a booking request; which practitioner, which day, which name and
date of birth. They tolerate what Whisper makes of phone audio (no accents,
digits for numbers, misheard names) and never guess: each returns None / False
when unsure, and the LLM takes the turn instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, timedelta

__all__ = [
    "PARTICLES",
    "asks_about_someone_else",
    "booking_intent",
    "extract_identity",
    "extract_practitioner",
    "fold",
    "is_agreement",
    "is_goodbye",
    "is_refusal",
    "leaks_personal_data",
    "mentions_child",
    "message_kind",
    "opener",
    "practice_question_topics",
    "resolve_day",
    "split_name",
    "time_in",
]


def fold(text: str) -> str:
    """Lower case, no accents, apostrophes as spaces: "J'ai réservé" -> "j ai reserve"."""
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("'", " ").replace("’", " ")


_YES = re.compile(r"\b(oui|ouais|d accord|parfait|ca me va|ca m arrange|tres bien|ok|okay|c est bon|"
                  r"volontiers|entendu|exactement|c est ca|tout a fait|impeccable|ca marche|je confirme|"
                  r"yes|sure|fine)\b")
_NO = re.compile(r"\b(non|pas possible|ne m arrange pas|ca ne va pas|ne me convient pas|plutot|autre)\b")
_BYE = re.compile(r"\b(au revoir|bonne journee|bonne soiree|a bientot|bye|goodbye)\b")
_BOOK = re.compile(r"\b(rendez vous|rendez-vous|rdv|me recevoir|recevoir|voir le docteur|voir le dr|"
                   r"(?:pourrait|peut|pouvez|pourriez|pourrais) (?:me |le |la |les )?voir|voir mon|voir ma|"
                   r"consultation|de la place|disponib|creneau|prendre un|consulter)\b")
_NOT_BOOK = re.compile(r"\b(annuler|annulation|decaler|deplacer|reporter|repousser|changer mon)\b")


_QUESTION = re.compile(r"\?|\b(quel|quelle|quels|quelles|quand|ou|comment|combien|est ce que|"
                       r"pouvez vous|vous pouvez|acceptez|prenez|faites|fermez|ouvrez|faut il|"
                       r"dois je|je voudrais savoir|je voulais savoir|c est ou|c est combien)\b")
_INFO_TOPICS = ("hours", "hours_today", "address", "access", "phone", "tariffs", "payments",
                "carte_vitale", "tiers_payant", "documents", "home_visits")


def practice_question_topics(text: str) -> list[str]:
    """Topics of a question about the practice ("vous fermez à quelle heure ?" -> ["hours"]),
    at most two, in the order asked; [] if this is not such a question."""
    from knowledge.practice_info import resolve_topic

    t = fold(text)
    if not _QUESTION.search(t) and "?" not in text:
        return []
    topics: list[str] = []
    for part in re.split(r"\bet\b|,|\?|;", t):
        topic = resolve_topic(part, misheard=True) if part.strip() else None
        if topic == "out_of_hours" and re.search(r"\b(ferm|ouvr|heure|horaire)", part):
            topic = "hours"  # "vous fermez à quelle heure le soir ?" asks for the hours
        if topic in _INFO_TOPICS and topic not in topics:
            topics.append(topic)
    return topics[:2]


_REACHED = re.compile(r"\b(?:je suis|on est|c est) bien (?:au|le|a la|la) (?:cabinet|secretariat|centre|"
                      r"maison medicale)\b|\b(?:je suis|on est|c est) bien chez (?:le )?(?:docteur|dr)\b")
_ANNOUNCES = re.compile(r"\b(?:j ai|j aurais) (?:une|juste une) (?:petite )?(?:question|demande)"
                        r"|\bj aurais besoin d un renseignement\b")


def opener(text: str) -> str | None:
    """A caller's opening words that ask nothing yet: ``reached`` ("je suis bien au cabinet
    médical ?") or ``announces`` ("j'ai une petite question"); None if they ask something."""
    t = fold(text)
    if len(t.split()) > 16 or booking_intent(text) or message_kind(text) is not None:
        return None
    if _REACHED.search(t):
        return "reached"
    if _ANNOUNCES.search(t) and not practice_question_topics(text):
        return "announces"
    return None


# "vous pouvez me rappeler l'adresse / les horaires ?": remind me of, not call me back
_REMIND = re.compile(r"\bme rappeler (?:la|le|les|l|votre|vos|quel\w*|comment|combien)\b(?! (?:plus|"
                     r"matin|soir|apres midi|semaine|lendemain|moment|jour|numero|telephone|"
                     r"portable)\b)")


def message_kind(text: str) -> str | None:
    """What a caller wants passed on to the staff: records' message kinds, or None."""
    t = fold(text)
    if re.search(r"\b(ordonnance|renouvel|prescription)", t):
        return "prescription_renewal"
    if re.search(r"\b(resultat|analyse|prise de sang|radio|compte rendu|laboratoire)", t):
        return "results"
    if re.search(r"\b(rappelle[rz]?|me rappeler|laisser un message|un message pour)", t) \
            and "adresse" not in t and not _REMIND.search(t):
        return "callback"
    # "laissez-lui un mot", "vous pouvez lui transmettre", "dites-lui que…", "prévenez le docteur"
    if re.search(r"\b(laiss\w*[\s-](?:lui |leur )?(?:un )?(?:petit )?(?:mot|message)|"
                 r"transmet\w*|fai\w* passer (?:un |le )?(?:mot|message)|dites[\s-]lui|"
                 r"pourriez vous lui dire|vous pouvez lui dire|previen\w* (?:le|la) (?:docteur|"
                 r"medecin)|un mot pour)\b", t):
        return "other"
    return None


_OTHER_PERSON = re.compile(
    r"\b(voisin|voisine|mari|femme|epouse|epoux|compagn\w*|conjoint\w*|ami|amie|collegue|frere|"
    r"soeur|mere|pere|belle mere|beau pere|patron|patronne|quelqu un|une personne|un patient|"
    r"une patiente|autre patient|autres patients|tous les patients|la liste des)\b")
_PERSONAL_DATA = re.compile(
    r"\b(rendez.?vous|rdv|numero|telephone|portable|date de naissance|adresse|coordonnees|dossier|"
    r"resultats?|ordonnance|liste des patients|patients de|agenda)\b")


def asks_about_someone_else(text: str, *, caller: str | None = None) -> bool:
    """A request for another person's data ("le numéro de Nadia Benali", "le rendez-vous de ma
    voisine", "la liste des patients"). A parent asking about their own child is not one:
    children's appointments go through the verified parent."""
    t = fold(text)
    if not _PERSONAL_DATA.search(t) or not _ASKING.search(t):
        return False
    if re.search(r"\b(liste des|tous les patients|autres patients|les patients|agenda (du|de la))\b", t):
        return True
    if re.search(r"\b(mon fils|ma fille|mon enfant|mon bebe|mes enfants|au nom de|je suis|"
                 r"je m appelle|moi c est)\b", t):
        return False
    if _OTHER_PERSON.search(t):
        return True
    # "… de Nadia Benali", "Paul Girard a un rendez-vous ?" — a full name that is not the caller
    names = re.findall(r"\b([A-ZÀ-Ý][a-zà-ÿ\-]+ [A-ZÀ-Ý][a-zà-ÿ\-]+)\b", text)
    own = fold(caller or "")
    return any(fold(n) != own and not re.match(r"(?i)(bonjour|docteur|madame|monsieur|je |est)", n)
               for n in names) and not re.search(r"\b(je suis|je m appelle|moi c est)\b", t)


_ASKING = re.compile(r"\b(quel|quelle|quels|quelles|quand|a quelle heure|est ce que|donne|donnez|"
                     r"donner|dire|savoir|connaitre|verifier|confirmer|communiquer|envoyer|lire|"
                     r"liste|a bien|a t il|a t elle)\b")
_PHONE = re.compile(r"(?:\+33\s?|\b0)[1-9](?:[\s.-]?\d{2}){4}\b")


def leaks_personal_data(text: str, *, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a model-written reply contains a phone number (other than ``allowed``) or a
    full date with a year: the model has no patient data, so these can only be invented
    or leaked — never say them."""
    digits_allowed = {re.sub(r"\D", "", a) for a in allowed}
    for m in _PHONE.finditer(text):
        if re.sub(r"\D", "", m.group(0)) not in digits_allowed:
            return True
    return bool(re.search(r"\b\d{1,2}(?:er)? (?:janvier|fevrier|février|mars|avril|mai|juin|juillet|"
                          r"aout|août|septembre|octobre|novembre|decembre|décembre) (?:19|20)\d{2}\b|"
                          r"\b\d{1,2}/\d{1,2}/(?:19|20)?\d{2}\b", text))


# "pas d'autre question", "rien d'autre": nothing more wanted, not a refusal of the offer;
# "non non, c'est parfait": a reassuring "non" before a yes.
_NOTHING_ELSE = re.compile(r"\b(?:pas d autres? (?:questions?|choses?|demandes?)|rien d autre|"
                           r"non merci,? c est tout|c est tout)\b")
_NON_THEN_YES = re.compile(r"^\W*(?:non[\s,.!]+)+(?:c est |ca )?(?:parfait|tres bien|ca me va|"
                           r"me va|c est bon|impeccable|super|nickel)\b")


def _without_reassurance(t: str) -> str:
    t = _NOTHING_ELSE.sub(" ", t)
    m = _NON_THEN_YES.match(t)
    return "oui " + t[m.end():] if m else t


def is_agreement(text: str) -> bool:
    t = _without_reassurance(fold(text))
    return bool(_YES.search(t)) and not _NO.search(t)


def is_refusal(text: str) -> bool:
    return bool(_NO.search(_without_reassurance(fold(text))))


def is_goodbye(text: str) -> bool:
    return bool(_BYE.search(fold(text)))


_CHILD = re.compile(r"\b(mon fils|ma fille|mon enfant|mes enfants|mon bebe|notre fils|notre fille|"
                    r"notre enfant|mon petit|ma petite|le petit|la petite|il s appelle|"
                    r"elle s appelle)\b")


def mentions_child(text: str) -> bool:
    """The caller speaks of their child ("pour ma fille", "il s'appelle Hugo")."""
    return bool(_CHILD.search(fold(text)))


def booking_intent(text: str) -> bool:
    t = fold(text)
    return bool(_BOOK.search(t)) and not _NOT_BOOK.search(t)


def extract_practitioner(text: str, last_names: Iterable[str]) -> str | None:
    """The practitioner named in ``text``: a known last name, or the word after "docteur"."""
    t = fold(text)
    for name in last_names:
        if re.search(rf"\b{re.escape(fold(name))}\b", t):
            return name
    m = re.search(r"\b(?:docteur|docteure|dr|doctor)\.?\s+([a-z][a-z-]+)", t)
    if m and m[1] not in {"de", "du", "le", "la", "pour", "qui", "est", "a", "peut", "pourrait"}:
        return m[1]
    return None


_W = r"[A-Za-zÀ-ÿ][\w\-À-ÿ'’]*"
_NAME_INTRO = re.compile(
    r"(?:c est pour|c est|je suis|je m appelle|il s appelle|elle s appelle|s appelle|moi c est|"
    r"au nom de|nom de|de la part de|ici|pour)\s+"
    r"(?:monsieur |madame |mademoiselle |m |mme |ma fille |mon fils |la petite |le petit )?"
    rf"({_W}(?:\s+{_W}){{0,4}})", re.I)
_STOP = {"ne", "nee", "né", "née", "et", "je", "le", "la", "de", "du", "mon", "ma", "pour", "oui",
         "bien", "il", "elle", "est", "j", "nes"}
#: Surname particles: part of the name when a capitalised word follows ("Le Goff",
#: "de la Fontaine", "N'Diaye" keeps its apostrophe).
PARTICLES = frozenset({"le", "la", "les", "de", "du", "des", "d", "van", "von", "der", "den", "ben",
                       "bin", "el", "al", "di", "da", "del", "dos", "mac", "mc", "ter", "ten"})
_ELISION = re.compile(r"(?<![A-Za-zÀ-ÿ])([A-Za-z]|[Qq]u)['’](?=[a-zà-ÿ])")


def _name_words(candidate: str) -> list[str]:
    """The words of a name, particles kept when a capitalised name follows them."""
    raw = candidate.split()
    words: list[str] = []
    for i, w in enumerate(raw):
        key = fold(w).strip()
        if key in PARTICLES and words:
            rest = raw[i + 1:]
            nxt = next((x for x in rest if fold(x).strip() not in PARTICLES), "")
            if nxt[:1].isupper() and all(fold(x).strip() in PARTICLES
                                         for x in rest[:rest.index(nxt)] if nxt in rest):
                words.append(w)
                continue
            break
        if key in _STOP:
            break
        words.append(w)
    return words


def extract_identity(text: str, *, expecting: bool = False) -> tuple[str, date] | None:
    """("Paul Girard", 1978-06-04) from "Je suis Paul Girard, né le 4 juin 1978", or None.

    ``expecting``: the assistant has just asked for the name (or offered a slot), so a
    bare "Paul Girard, né le …" (no "je suis") is accepted too. Surnames with particles
    ("Yann Le Goff", "Jean de la Fontaine", "Awa N'Diaye") are kept whole."""
    from records.spoken_dates import parse_spoken_date

    dob = parse_spoken_date(text)
    if dob is None:
        return None
    src = _ELISION.sub(r"\1 ", text).replace(",", " , ").replace(".", " . ")
    # the last introduction that gives a name: a turn heard in two pieces reaches us as the
    # first piece then the whole ("C'est Paul Gichard. Je suis Paul Girard, né le …")
    named = [m for m in _NAME_INTRO.finditer(src) if len(_name_words(m[1])) >= 2]
    m = named[-1] if named else _NAME_INTRO.search(src)
    if m:
        candidate = m[1]
    elif expecting:
        bare = re.match(rf"\s*(?:(?:oui|alors|donc|euh|c est|bonjour)\s*,?\s*)*({_W}"
                        rf"(?:\s+{_W}){{1,4}})", src, re.I)
        if not bare:
            return None
        candidate = bare[1]
    else:
        return None
    words = _name_words(candidate)
    if len(words) < 2 or fold(words[0]) in {"oui", "non", "d", "accord", "ok"}:
        return None
    return " ".join(words), dob


_WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
_MONTHS = ["janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
           "octobre", "novembre", "decembre"]


def resolve_day(expr: str | None, today: date) -> tuple[date, date, str | None]:
    """Turn a spoken day ("jeudi", "demain", "le 14", "3 décembre", "semaine prochaine",
    ISO) into a date range, plus a day part if one was said with it."""
    t = fold(expr or "")
    part = None
    if re.search(r"apres[ -]?midi|\b(?:a ?)?p[ae]m[ie]d[iy]\b|\bam[ie]di\b", t):
        part = "afternoon"
    elif "matin" in t:
        part = "morning"
    elif "soir" in t or "fin de journee" in t:
        part = "evening"
    default = (today + timedelta(days=1), today + timedelta(days=21), part)
    if not t.strip():
        return default
    m = re.search(r"(\d{4})-(\d{2})-(\d{2})", t)
    if m:
        try:
            d = date(int(m[1]), int(m[2]), int(m[3]))
            return d, d, part
        except ValueError:
            return default
    if "apres-demain" in t or "apres demain" in t:
        d = today + timedelta(days=2)
        return d, d, part
    if "demain" in t:
        d = today + timedelta(days=1)
        return d, d, part
    if "aujourd" in t:
        return today, today, part
    if "semaine prochaine" in t or "la semaine pro" in t:
        start = today + timedelta(days=7 - today.weekday())
        return start, start + timedelta(days=6), part
    if "cette semaine" in t:
        return today, today + timedelta(days=6 - today.weekday()), part
    for i, name in enumerate(_MONTHS):
        m = re.search(rf"\b(\d{{1,2}})(?:er)?\s+{name}", t)
        if m:
            day = int(m[1])
            for year in (today.year, today.year + 1):
                try:
                    d = date(year, i + 1, day)
                except ValueError:
                    return default
                if d >= today:
                    return d, d, part
    m = re.search(r"\b(\d{1,2})\s*/\s*(\d{1,2})\b", t)
    if m:
        for year in (today.year, today.year + 1):
            try:
                d = date(year, int(m[2]), int(m[1]))
            except ValueError:
                return default
            if d >= today:
                return d, d, part
    for i, name in enumerate(_WEEKDAYS):
        if re.search(rf"\b{name}\b", t):
            ahead = (i - today.weekday()) % 7 or 7
            d = today + timedelta(days=ahead)
            return d, d, part
    # a day of the month, not an hour ("plutôt à 10 heures" is a time, not the 10th)
    m = re.search(r"\b(?:le\s+)?(\d{1,2})(?:er)?\b(?!\s*(?:h\b|h\d|heures?\b|:|minutes?\b))", t)
    if m and 1 <= int(m[1]) <= 31:
        day = int(m[1])
        for k in range(3):
            month = (today.month - 1 + k) % 12 + 1
            year = today.year + (today.month - 1 + k) // 12
            try:
                d = date(year, month, day)
            except ValueError:
                continue
            if d >= today:
                return d, d, part
    return default


def time_in(expr: str) -> tuple[int, int] | None:
    """(15, 0) from "15h", (14, 20) from "14 h 20", (12, 0) from "à midi" (not "après-midi")."""
    t = fold(expr)
    m = re.search(r"\b(\d{1,2})\s*(?:heures?|h|:)\s*(\d{2})?", t)  # "heures" before "h"
    if m:
        return int(m[1]), int(m[2] or 0)
    if re.search(r"(?<!apres )(?<!apres-)(?<!apres)\b(?:a|vers|pour) midi\b", t):
        return 12, 0
    return None


def _cased(word: str, *, particle: bool, first_of_last: bool) -> str:
    if any(c.isupper() for c in word):
        return word  # as said (Whisper capitalises names): "de la Fontaine", "N'Diaye"
    if particle and not (first_of_last and fold(word).strip() in {"le", "la", "les"}):
        return word  # "de la Fontaine", but "Le Goff"
    return "-".join(p[:1].upper() + p[1:] for p in word.split("-"))


def split_name(full: str) -> tuple[str, str]:
    """("Jean", "de la Fontaine") from "Jean de la Fontaine"; ("Paul", "Girard"); a single
    word is the last name. Titles and "je suis" are dropped."""
    words = [w for w in re.split(r"\s+", full.strip()) if w and fold(w) not in {
        "je", "suis", "m", "appelle", "madame", "monsieur", "mme", "m."}]
    if not words:
        return "", ""
    if len(words) == 1:
        return "", _cased(words[0], particle=False, first_of_last=True)
    cut = next((i for i in range(1, len(words) - 1)
                if fold(words[i]).strip() in PARTICLES or "'" in words[i] or "’" in words[i]),
               len(words) - 1)
    first = " ".join(_cased(w, particle=False, first_of_last=False) for w in words[:cut])
    last = " ".join(_cased(w, particle=fold(w).strip() in PARTICLES, first_of_last=i == 0)
                    for i, w in enumerate(words[cut:]))
    return first, last
