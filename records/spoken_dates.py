"""Dates as callers say them, in French (and a little English).

``parse_spoken_date("douze mars quatre-vingt-cinq")`` -> ``date(1985, 3, 12)``. Accepted:
spelled-out numbers ("vingt-deux", "mille neuf cent quatre-vingt-onze", "dix-neuf cent
quatre-vingt-cinq", "deux mille"), digits ("12/03/1985", "12.03.85", "1985-03-12",
"4 juin 1978"), ordinals ("1er", "premier"), fillers ("né le", "c'est le"), and two-digit
years (``85`` -> 1985, ``18`` -> 2018: the most recent past year with those digits).

``parse_spoken_date`` returns ``None`` when it cannot read a date; ``parse_spoken_date_strict``
raises :class:`SpokenDateError` with a plain reason ("31 February 1990 does not exist").
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

__all__ = ["SpokenDateError", "parse_spoken_date", "parse_spoken_date_strict"]


class SpokenDateError(ValueError):
    """The text is not a (possible) date; ``str()`` says why, in English."""


_MONTHS = {
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
    "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "janv": 1, "fev": 2, "fevr": 2, "avr": 4, "juil": 7, "oct": 10, "nov": 11,
    "dec": 12,
}
_UNITS = {
    "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6,
    "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
    "quatorze": 14, "quinze": 15, "seize": 16,
}
_TENS = {"vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50,
         "soixante": 60, "septante": 70, "huitante": 80, "octante": 80, "nonante": 90}
_ORDINALS = {"premier": 1, "1er": 1, "1re": 1, "first": 1}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | {"cent", "cents", "mille", "mil", "et"}
_MONTH_NAMES = sorted(_MONTHS, key=len, reverse=True)
_NAMES_FOR_ERRORS = ("January", "February", "March", "April", "May", "June", "July",
                     "August", "September", "October", "November", "December")


def parse_spoken_date(text: str, *, today: date | None = None) -> date | None:
    """The date in ``text``, or ``None`` if there is none or it does not exist."""
    try:
        return parse_spoken_date_strict(text, today=today)
    except SpokenDateError:
        return None


def parse_spoken_date_strict(text: str, *, today: date | None = None) -> date:
    """The date in ``text``; raises :class:`SpokenDateError` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SpokenDateError("no date given")
    today = today or date.today()
    norm = _normalize(text)

    iso = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", norm)
    if iso:
        return _build(int(iso[3]), int(iso[2]), int(iso[1]), today, two_digit=False)
    numeric = re.search(r"\b(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{2}|\d{4})\b", norm)
    if numeric:
        return _build(int(numeric[1]), int(numeric[2]), int(numeric[3]), today,
                      two_digit=len(numeric[3]) == 2)

    tokens = _tokens(norm)
    month_at = next((i for i, t in enumerate(tokens) if t in _MONTHS), None)
    if month_at is None:
        spaced = re.fullmatch(r"\D*?(\d{1,2}) (\d{1,2}) (\d{2}|\d{4})\D*", norm)
        if spaced:
            return _build(int(spaced[1]), int(spaced[2]), int(spaced[3]), today,
                          two_digit=len(spaced[3]) == 2)
        raise SpokenDateError(f"no month found in {text!r}")
    month = _MONTHS[tokens[month_at]]

    before: list[str] = []
    for tok in reversed(tokens[:month_at]):
        if _is_number_token(tok) or tok in _ORDINALS:
            before.insert(0, tok)
        elif before:
            break
    if not before:
        raise SpokenDateError(f"no day found before the month in {text!r}")
    day = _number(before)

    after: list[str] = []
    for tok in tokens[month_at + 1:]:
        if _is_number_token(tok):
            after.append(tok)
        elif after:
            break
    if not after:
        raise SpokenDateError(f"no year found in {text!r}")
    year, two_digit = _year(after)
    return _build(day, month, year, today, two_digit=two_digit)


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("'", " ")
    return re.sub(r"\s+", " ", text).strip()


def _tokens(norm: str) -> list[str]:
    out = []
    for raw in re.split(r"[\s,;:!?()\-]+", norm):
        tok = raw.strip(".")
        if not tok:
            continue
        # "1er", "12eme", "22nd": keep the ordinal marker for "1er", drop the others.
        m = re.fullmatch(r"(\d{1,2})(?:er|re|e|eme|st|nd|rd|th)", tok)
        if m and tok not in _ORDINALS:
            tok = m[1]
        out.append(tok)
    return out


def _is_number_token(tok: str) -> bool:
    return tok.isdigit() or tok in _NUMBER_WORDS or tok in _ORDINALS


def _number(tokens: list[str]) -> int:
    """French number words (or digits) to an integer: 'quatre vingt dix neuf' -> 99."""
    if len(tokens) == 1 and tokens[0] in _ORDINALS:
        return _ORDINALS[tokens[0]]
    if all(t.isdigit() for t in tokens):
        return int("".join(tokens)) if len(tokens) > 1 and all(len(t) == 1 for t in tokens) \
            else int(tokens[-1])
    total = current = 0
    for tok in tokens:
        if tok == "et":
            continue
        if tok.isdigit():
            current += int(tok)
        elif tok in _ORDINALS:
            current += _ORDINALS[tok]
        elif tok in _UNITS:
            current += _UNITS[tok]
        elif tok in _TENS:
            if tok.startswith("vingt") and current % 100 == 4:
                current += 80 - 4  # quatre-vingt
            else:
                current += _TENS[tok]
        elif tok in ("cent", "cents"):
            current = (current or 1) * 100
        elif tok in ("mille", "mil"):
            total += (current or 1) * 1000
            current = 0
        else:
            raise SpokenDateError(f"{tok!r} is not a number")
    return total + current


def _year(tokens: list[str]) -> tuple[int, bool]:
    """A year and whether it was given with two digits only."""
    if len(tokens) == 1 and tokens[0].isdigit():
        return int(tokens[0]), len(tokens[0]) <= 2
    # "dix-neuf quatre-vingt-cinq" (19 85) and "vingt dix-huit" (20 18)
    words = [t for t in tokens if t != "et"]
    for prefix, century in ((["dix", "neuf"], 1900), (["vingt"], 2000)):
        n = len(prefix)
        if words[:n] == prefix and len(words) > n and words[n] not in ("cent", "cents", "mille"):
            if century == 2000 and words[n] in _UNITS and _UNITS[words[n]] < 10:
                break  # "vingt deux" is 22, not 2002
            rest = _number(words[n:])
            if rest < 100:
                return century + rest, False
    value = _number(tokens)
    return value, value < 100


def _build(day: int, month: int, year: int, today: date, *, two_digit: bool) -> date:
    if two_digit:
        year = 2000 + year if 2000 + year <= today.year else 1900 + year
    if not 1 <= month <= 12:
        raise SpokenDateError(f"there is no month number {month}")
    if year < 1880 or year > today.year + 5:
        raise SpokenDateError(f"year {year} is not plausible")
    try:
        return date(year, month, day)
    except ValueError:
        raise SpokenDateError(
            f"{day} {_NAMES_FOR_ERRORS[month - 1]} {year} does not exist") from None
