"""Tokens with character offsets, and numbers as French callers say and write them.

``tokenize("zéro six, quarante-cinq")`` gives two number tokens whose ``digits`` are ``"0"``
and ``"6"`` then one, ``"45"``: spoken phone pairs, NIR groups, years and street numbers all
become digit strings while every token keeps its offsets into the original text, so a
detector can return spans of the text as it was said.

Number words are read greedily into one number while French grammar allows it
("trois cent quatre-vingt-sept" -> 387, "dix-neuf cent quatre-vingt-cinq" -> 1985,
"deux mille un" -> 2001); "zéro" is always a number of its own ("zéro zéro" -> "0", "0"),
and a comma or a full stop ends a number. English digit words ("four one two", "oh") are
read when asked for (calls in English).

Bracketed placeholders of an already redacted text ("[NOM_1]") are one ``placeholder``
token, so nothing detects inside them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Token", "fold", "tokenize"]

_UNITS = {
    "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6,
    "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
    "quatorze": 14, "quinze": 15, "seize": 16,
}
_TENS = {"vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50,
         "soixante": 60, "septante": 70, "huitante": 80, "octante": 80, "nonante": 90}
_BIG = {"cent": 100, "cents": 100, "mille": 1000, "mil": 1000}
_ENGLISH_DIGITS = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                   "six": 6, "seven": 7, "eight": 8, "nine": 9}
_RAW = re.compile(r"\[[A-Z_]+_\d+\]|\+?\d+|[^\W\d_]+|\S")


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is "num", "word", "punct" or "placeholder"."""

    kind: str
    text: str
    start: int
    end: int
    key: str = ""
    digits: str = ""
    value: int = -1

    @property
    def is_num(self) -> bool:
        return self.kind == "num"


def fold(text: str) -> str:
    """Lower case without accents; apostrophes unified."""
    text = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    return "".join(c for c in text if not unicodedata.combining(c))


@dataclass
class _Raw:
    text: str
    start: int
    end: int
    key: str


def _raw_tokens(text: str) -> list[_Raw]:
    return [_Raw(m.group(), m.start(), m.end(), fold(m.group())) for m in _RAW.finditer(text)]


def _word_value(key: str, english: bool) -> int | None:
    if english and key in _ENGLISH_DIGITS:
        return None  # handled apart: each English digit word is one digit
    if key in _UNITS:
        return _UNITS[key]
    if key in _TENS:
        return _TENS[key]
    return _BIG.get(key)


def _fits(cur: int, total: int, last: str, value: int, key: str) -> tuple[bool, int, int]:
    """Whether ``key`` (worth ``value``) continues the number; the new (cur, total)."""
    rest = cur % 100
    if value == 0:
        return False, cur, total
    if value == 1000:
        if total == 0 and cur < 1000:
            return True, 0, max(cur, 1) * 1000
        return False, cur, total
    if value == 100:
        # "trois cent", "dix-neuf cent" (a year), "mille cent"; not "soixante-dix-sept cent"
        return (True, max(cur, 1) * 100, total) if cur < 20 else (False, cur, total)
    if key.startswith("vingt") and rest == 4 and last == "quatre":
        return True, cur + 76, total
    if value >= 20:  # tens
        return (True, cur + value, total) if rest == 0 else (False, cur, total)
    if value >= 10:  # dix .. seize
        return (True, cur + value, total) if rest in (0, 60, 80) else (False, cur, total)
    return (True, cur + value, total) if cur % 10 == 0 else (False, cur, total)


def tokenize(text: str, *, english: bool = False) -> list[Token]:
    """``text`` as tokens; number words and digits fused into "num" tokens."""
    raws = _raw_tokens(text)
    out: list[Token] = []
    i = 0
    n = len(raws)
    while i < n:
        r = raws[i]
        if r.text.startswith("[") and len(r.text) > 1:
            out.append(Token("placeholder", r.text, r.start, r.end, r.key))
            i += 1
            continue
        if r.text.lstrip("+").isdigit():
            out.append(Token("num", r.text, r.start, r.end, r.key, digits=r.text,
                             value=int(r.text.lstrip("+"))))
            i += 1
            continue
        if english and r.key in _ENGLISH_DIGITS:
            out.append(Token("num", r.text, r.start, r.end, r.key,
                             digits=str(_ENGLISH_DIGITS[r.key]), value=_ENGLISH_DIGITS[r.key]))
            i += 1
            continue
        value = _word_value(r.key, english)
        if value is None:
            kind = "word" if r.key[:1].isalpha() else "punct"
            out.append(Token(kind, r.text, r.start, r.end, r.key))
            i += 1
            continue
        if value == 0:
            out.append(Token("num", r.text, r.start, r.end, r.key, digits="0", value=0))
            i += 1
            continue
        cur, total = (0, 1000) if value == 1000 else (value, 0)
        if value == 100:
            cur = 100
        last = r.key
        end_i = i
        j = i + 1
        while j < n:
            t = raws[j]
            # joiners: a hyphen, or "et" before "un"/"une"/"onze"
            if t.text in ("-", "\u2011") or (t.key == "et" and j + 1 < n
                                             and raws[j + 1].key in ("un", "une", "onze")
                                             and cur % 10 == 0 and cur % 100 >= 20):
                if j + 1 < n and _word_value(raws[j + 1].key, english) not in (None, 0):
                    j += 1
                    continue
                break
            v = _word_value(t.key, english)
            if v is None:
                break
            ok, cur2, total2 = _fits(cur, total, last, v, t.key)
            if not ok:
                break
            cur, total, last = cur2, total2, t.key
            end_i = j
            j += 1
        number = total + cur
        out.append(Token("num", text[r.start:raws[end_i].end], r.start, raws[end_i].end,
                         fold(text[r.start:raws[end_i].end]), digits=str(number), value=number))
        i = end_i + 1
    return out
