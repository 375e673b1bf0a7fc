"""French phrasing for speech: dates, times, slots, phone numbers, amounts.

Everything here returns plain text meant for text-to-speech: no markdown, no
abbreviations the synthesiser would spell ("Dr" becomes "le docteur"), times as
"14 heures 30", phone numbers as pairs of spoken numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time

__all__ = [
    "MONTHS_FR",
    "WEEKDAYS_FR",
    "join_fr",
    "number_words",
    "relative_day",
    "say_date",
    "say_day",
    "say_euros",
    "say_phone",
    "say_practitioner",
    "say_slot",
    "say_time",
    "say_time_range",
    "speakable",
]

WEEKDAYS_FR: tuple[str, ...] = (
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
)
MONTHS_FR: tuple[str, ...] = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)

_UNITS = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
          "onze", "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit",
          "dix-neuf")
_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def number_words(n: int) -> str:
    """French words for 0..999 ("soixante-dix-huit", "quatre-vingts", "cent douze")."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words handles 0..999, got {n}")
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        if tens in _TENS:
            if unit == 0:
                return _TENS[tens]
            if unit == 1:
                return f"{_TENS[tens]} et un"
            return f"{_TENS[tens]}-{_UNITS[unit]}"
        if tens == 7:  # 70..79
            return "soixante et onze" if n == 71 else f"soixante-{_UNITS[n - 60]}"
        # 80..99
        return "quatre-vingts" if n == 80 else f"quatre-vingt-{_UNITS[n - 80]}"
    hundreds, rest = divmod(n, 100)
    head = "cent" if hundreds == 1 else f"{_UNITS[hundreds]} cent"
    if rest == 0:
        return head + ("s" if hundreds > 1 else "")
    return f"{head} {number_words(rest)}"


def relative_day(d: date, today: date) -> str | None:
    """"aujourd'hui", "demain", "après-demain", "hier", or None for other days."""
    delta = (d - today).days
    return {0: "aujourd'hui", 1: "demain", 2: "après-demain", -1: "hier"}.get(delta)


def say_date(d: date, *, today: date | None = None, with_weekday: bool = True) -> str:
    """``jeudi 3 décembre`` (``lundi 1er mars``); the year is added when it is not ``today``'s."""
    day = "1er" if d.day == 1 else str(d.day)
    text = f"{day} {MONTHS_FR[d.month - 1]}"
    if with_weekday:
        text = f"{WEEKDAYS_FR[d.weekday()]} {text}"
    if today is not None and d.year != today.year:
        text += f" {d.year}"
    return text


def say_day(d: date, *, today: date) -> str:
    """A date with its relative name when close: ``demain, jeudi 3 décembre``."""
    rel = relative_day(d, today)
    full = say_date(d, today=today)
    return f"{rel}, {full}" if rel else full


def say_time(t: time | datetime) -> str:
    """``14 heures 30``, ``9 heures``, ``12 heures 05`` -> ``12 heures 5``."""
    hour = t.hour
    word = "heure" if hour in (0, 1) else "heures"
    if t.minute == 0:
        return f"{hour} {word}"
    return f"{hour} {word} {t.minute}"


def say_time_range(start: time, end: time) -> str:
    """``de 8 heures 30 à 12 heures 30``."""
    return f"de {say_time(start)} à {say_time(end)}"


_TITLE_RE = re.compile(r"^(dr|docteur|doctor|pr|professeur)\.?\s+", re.IGNORECASE)


def say_practitioner(name: str) -> str:
    """Expand a written name for speech: ``Dr Anne Durand`` -> ``le docteur Anne Durand``."""
    name = " ".join(name.split())
    m = _TITLE_RE.match(name)
    if not m:
        return name
    title = m.group(1).lower()
    spoken = "le professeur" if title.startswith(("pr", "professeur")) else "le docteur"
    return f"{spoken} {name[m.end():]}"


def say_slot(start: datetime, practitioner_name: str | None = None, *,
             today: date | None = None) -> str:
    """``jeudi 3 décembre à 14 heures 30 avec le docteur Anne Durand``.

    With ``today``, close days get their relative name (``demain, jeudi 3 décembre ...``).
    """
    day = say_day(start.date(), today=today) if today is not None else say_date(start.date())
    text = f"{day} à {say_time(start)}"
    if practitioner_name:
        text += f" avec {say_practitioner(practitioner_name)}"
    return text


def say_phone(number: str) -> str:
    """Phone numbers the French way, in spoken pairs.

    ``04 78 12 34 56`` -> ``zéro quatre, soixante-dix-huit, douze, trente-quatre,
    cinquante-six``; ``+33 4 78 ...`` is said as the national number; short numbers
    are said whole (``15`` -> ``quinze``, ``112`` -> ``cent douze``) except 4-digit
    ones, said in pairs (``3114`` -> ``trente et un, quatorze``).
    """
    digits = re.sub(r"\D", "", number)
    if not digits:
        raise ValueError(f"no digits in phone number {number!r}")
    if number.strip().startswith("+33") and len(digits) == 11:
        digits = "0" + digits[2:]
    elif digits.startswith("0033") and len(digits) == 13:
        digits = "0" + digits[4:]
    if len(digits) <= 3:
        return number_words(int(digits))
    pairs = [digits[i:i + 2] for i in range(0, len(digits), 2)]
    words = []
    for pair in pairs:
        if len(pair) == 2 and pair[0] == "0":
            words.append(f"zéro {number_words(int(pair[1]))}")
        else:
            words.append(number_words(int(pair)))
    return ", ".join(words)


def say_euros(amount: float) -> str:
    """``30 euros``, ``25 euros 50``, ``1 euro``."""
    cents_total = round(amount * 100)
    euros, cents = divmod(cents_total, 100)
    word = "euro" if euros in (0, 1) else "euros"
    if cents == 0:
        return f"{euros} {word}"
    return f"{euros} {word} {cents}"


def join_fr(items: Sequence[str], *, last: str = "et") -> str:
    """``a, b et c`` (no bullets: this is read aloud)."""
    items = [i for i in items if i]
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


_SPEECH_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bDr\.?(?=\s)"), "docteur"),
    (re.compile(r"\bPr\.?(?=\s)"), "professeur"),
    (re.compile(r"\bMme\.?(?=\s)"), "madame"),
    (re.compile(r"\s*\(([^)]*)\)"), r", \1"),
    (re.compile(r"(\d)\s*€"), r"\1 euros"),
    (re.compile(r"[*_#`]+"), ""),
    (re.compile(r"\s+"), " "),
)


def speakable(text: str) -> str:
    """Clean a profile sentence for TTS: expand ``Dr``, drop parentheses and markdown."""
    for pattern, repl in _SPEECH_SUBS:
        text = pattern.sub(repl, text)
    # A semicolon is a sentence break when spoken.
    text = re.sub(r"\s*;\s*(\w)", lambda m: ". " + m.group(1).upper(), text)
    return text.strip()
