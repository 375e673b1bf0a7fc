"""Rule detectors for French personal data with a fixed shape: phone numbers, NIR, other
long identifiers, dates of birth, spelled names, e-mail addresses, postal addresses.

Each detector takes the turn's text and its tokens (:func:`transcripts.redaction_tokens.tokenize`)
and returns :class:`Found` spans (char offsets into the text). Spoken and written forms go
through the same token stream: "zéro six, quarante-cinq, …" and "06 45 …" both become digit
strings. Names from a language model, the practice's patient list and health details live
in :mod:`transcripts.redaction`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from transcripts.redaction_tokens import Token, fold

__all__ = [
    "MONTHS",
    "STREET_TYPES",
    "Found",
    "find_addresses",
    "find_birth_dates",
    "find_emails",
    "find_numbers",
    "find_spelled_names",
    "phone_key",
]

MONTHS = {
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
    "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
    "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}
STREET_TYPES = frozenset({
    "rue", "avenue", "av", "boulevard", "bd", "bld", "allee", "allees", "impasse", "place",
    "chemin", "route", "quai", "cours", "square", "chaussee", "passage", "residence",
    "lotissement", "voie", "sentier", "montee", "faubourg", "cite", "hameau", "lieu-dit",
    "parvis", "promenade", "rond-point", "esplanade", "ruelle", "villa", "street", "road",
})
_NUMBER_SEPARATORS = frozenset({",", ".", "-", "\u2026", "/", ";"})
_BIRTH_CUES = frozenset({"ne", "nee", "nes", "nees", "naissance", "anniversaire", "born",
                         "birthday", "birth"})
_HOUR_WORDS = frozenset({"h", "heure", "heures", "hour", "hours", "minute", "minutes", "min",
                         "ans", "an", "euros", "euro", "jours", "jour", "semaines", "mois",
                         "fois", "kilos", "kg", "ml", "mg", "microgrammes", "milligrammes"})
_WEEKDAYS = frozenset({"lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
                       "dimanche"})
# words that may sit inside a number said aloud: the NIR's key, hesitations
_RUN_WORDS = frozenset({"cle", "key", "euh", "heu", "hum", "hmm", "hein", "um", "uh"})
_SECU_CUES = ("secu", "securite sociale", "nir", "carte vitale", "numero de ss",
              "immatriculation", "social security")


@dataclass(frozen=True)
class Found:
    """One detected span: ``value`` is a normalized form (digits, letters) when useful."""

    start: int
    end: int
    type: str
    source: str = "rule"
    value: str = ""


def phone_key(digits: str) -> str:
    """National form of a phone number's digits: '+33645…' / '0033645…' -> '0645…'."""
    d = re.sub(r"\D", "", digits)
    if digits.strip().startswith("+33") or d.startswith("0033"):
        d = "0" + d[4:] if d.startswith("0033") else "0" + d[2:]
    return d


# --------------------------------------------------------------------------------------------
# digit runs: phone numbers, NIR, other long numbers
# --------------------------------------------------------------------------------------------

def _runs(tokens: Sequence[Token], *, extra_words: frozenset[str] = frozenset()
          ) -> list[list[int]]:
    """Indexes of number tokens grouped into runs: numbers separated by nothing, or by at
    most three separator marks (", ", ". ", "…"), or by one of ``extra_words``."""
    runs: list[list[int]] = []
    cur: list[int] = []
    gap = 0
    for i, t in enumerate(tokens):
        if t.is_num:
            cur.append(i)
            gap = 0
        elif cur and ((t.kind == "punct" and t.text in _NUMBER_SEPARATORS)
                      or t.key in extra_words) and gap < 3:
            gap += 1
        else:
            if cur:
                runs.append(cur)
            cur, gap = [], 0
    if cur:
        runs.append(cur)
    return runs


def _preceded_by_plus(tokens: Sequence[Token], i: int) -> bool:
    return i > 0 and (tokens[i - 1].key in ("plus", "+"))


def find_numbers(text: str, tokens: Sequence[Token], *, ref_phone_keys: frozenset[str] = frozenset()
                 ) -> list[Found]:
    """Phone numbers (10 French digits, +33 / 0033 forms, other +NN numbers), NIR (13 or
    15 digits, key checked with python-stdnum) and other numbers of 9 or more digits."""
    from stdnum.fr import nir as stdnir  # light, pure Python

    out: list[Found] = []
    folded = fold(text)
    secu_cue = any(c in folded for c in _SECU_CUES)
    for run in _runs(tokens, extra_words=_RUN_WORDS):
        claimed: set[int] = set()
        p = 0
        while p < len(run):
            i = run[p]
            first = tokens[i]
            plus = first.digits.startswith("+") or _preceded_by_plus(tokens, i)
            acc = ""
            done = False
            for q in range(p, len(run)):
                acc += tokens[run[q]].digits.lstrip("+")
                kind = ""
                if plus:
                    if acc.startswith("33") and len(acc) == 11:
                        kind = "phone"
                    elif not acc.startswith("33") and 11 <= len(acc) <= 13 and (
                            q + 1 == len(run)):
                        kind = "phone"
                elif acc.startswith("0033") and len(acc) == 13:
                    kind = "phone"
                elif acc.startswith("0") and not acc.startswith("00") and len(acc) == 10:
                    kind = "phone"
                elif acc[:1] in "123478" and len(acc) == 15:
                    kind = "nir" if stdnir.is_valid(acc) else "other_id"
                elif acc[:1] in "1234" and len(acc) == 13 and (q + 1 == len(run)
                                                              or len(acc + tokens[run[q + 1]].digits) > 15):
                    kind = "nir" if secu_cue and _nir_prefix_ok(acc) else "other_id"
                if kind:
                    start = tokens[run[p]].start
                    if plus and not first.digits.startswith("+"):
                        start = tokens[i - 1].start
                    value = ("+" + acc if plus and not acc.startswith("33") else phone_key(
                        ("+" if plus else "") + acc)) if kind == "phone" else acc
                    if not (kind == "phone" and value in ref_phone_keys):
                        out.append(Found(start, tokens[run[q]].end, kind, "rule", value))
                    claimed.update(range(p, q + 1))
                    p = q + 1
                    done = True
                    break
                if len(acc) > 15:
                    break
            if not done:
                p += 1
        # a long number that is none of the above is still an identifier
        rest = [k for k in range(len(run)) if k not in claimed]
        if rest:
            digits = "".join(tokens[run[k]].digits.lstrip("+") for k in rest)
            contiguous = rest == list(range(rest[0], rest[-1] + 1))
            if contiguous and len(digits) >= 9:
                # a NIR said only in part ("son numéro de Sécu, c'est le deux, soixante-treize…")
                kind = "nir" if secu_cue and digits[:1] in "12" else "other_id"
                out.append(Found(tokens[run[rest[0]]].start, tokens[run[rest[-1]]].end,
                                 kind, "rule", digits))
    return out


def _nir_prefix_ok(digits: str) -> bool:
    month = int(digits[3:5])
    return digits[0] in "1234" and (1 <= month <= 12 or 20 <= month <= 42 or month >= 50)


# --------------------------------------------------------------------------------------------
# dates of birth
# --------------------------------------------------------------------------------------------

def _skip_punct(tokens: Sequence[Token], i: int, step: int, limit: int = 3) -> int:
    """The index of the next non-separator token from ``i`` in direction ``step``."""
    n = 0
    while 0 <= i < len(tokens) and tokens[i].kind == "punct" and tokens[i].text in (
            ",", ".", "\u2026") and n < limit:
        i += step
        n += 1
    return i


def _sentence_start(tokens: Sequence[Token], i: int) -> int:
    j = i
    while j > 0 and not (tokens[j - 1].kind == "punct" and tokens[j - 1].text in ".?!"
                         and not (j >= 2 and tokens[j - 2].kind == "punct")):
        j -= 1
    return j


def _year_of(tok: Token, ref_year: int) -> int | None:
    if not tok.is_num or tok.digits.startswith("+"):
        return None
    v = tok.value
    if v < 100 and (len(tok.digits) == 2 or not tok.text[:1].isdigit()):
        return 2000 + v if 2000 + v <= ref_year else 1900 + v
    if 1880 <= v <= ref_year + 1:
        return v
    return None


def _has_cue(tokens: Sequence[Token], start: int, end: int) -> bool:
    keys = [t.key for t in tokens[start:end]]
    if any(k in _BIRTH_CUES for k in keys):
        return True
    return any(a == "suis" and b in ("du", "de") for a, b in itertools.pairwise(keys))


def find_birth_dates(text: str, tokens: Sequence[Token], *, ref_year: int,
                     asked_birth_date: bool = False) -> list[Found]:
    """Dates of birth: a day, a month (word or number) and a year, told apart from an
    appointment date by a cue ("né le", "date de naissance", "je suis du"), by the
    question just asked, or by a year at least two years back."""
    out: list[Found] = []
    n = len(tokens)
    for m, t in enumerate(tokens):
        month = MONTHS.get(t.key) if t.kind == "word" else None
        if month is None and t.key == "mai":
            month = 5
        if month is None:
            continue
        d = _skip_punct(tokens, m - 1, -1)
        if d >= 1 and tokens[d].key in ("er", "premier") and tokens[d - 1].is_num and \
                tokens[d - 1].value == 1:
            d -= 1
        elif d >= 0 and tokens[d].key == "premier":
            pass
        elif not (d >= 0 and tokens[d].is_num and 1 <= tokens[d].value <= 31):
            # no day heard ("né le… juin 1978"): a month and a year long past
            y = m + 1
            if y < n and tokens[y].is_num and len(tokens[y].digits) == 4 and (
                    1880 <= tokens[y].value <= ref_year - 2) and not (
                    y + 1 < n and tokens[y + 1].key in _HOUR_WORDS):
                out.append(Found(t.start, tokens[y].end, "birth_date", "rule"))
            continue
        # "the twelfth of May" is not handled; "May" alone is an English month name
        end = t.end
        year = None
        y = _skip_punct(tokens, m + 1, 1)
        if y < n and tokens[y].is_num:
            after = tokens[y + 1] if y + 1 < n else None
            if after is None or after.key not in _HOUR_WORDS:
                year = _year_of(tokens[y], ref_year)
                if year is not None:
                    end = tokens[y].end
        s0 = _sentence_start(tokens, d)
        cue = _has_cue(tokens, s0, m)
        weekday = d >= 1 and tokens[d - 1].key in _WEEKDAYS
        cue = cue or (asked_birth_date and not weekday)
        if cue or (year is not None and year <= ref_year - 2):
            out.append(Found(tokens[d].start, end, "birth_date", "rule"))
    # numeric: "18, 11, 71", "zéro deux, zéro sept, quatre-vingt-huit", 04/06/1978, 4.6.78
    groups = _number_groups(tokens)
    for g in range(len(groups) - 2):
        (a0, a1, da, sa), (b0, b1, db, sb), (c0, c1, dc, _sc) = groups[g:g + 3]
        if not (sa == sb and sa in ",/.-" and tokens[a1 + 1].text == sa
                and tokens[b1 + 1].text == sb and b0 == a1 + 2 and c0 == b1 + 2):
            continue
        if len(da) > 2 or len(db) > 2 or (len(dc) not in (2, 4) and not (
                len(dc) <= 2 and not tokens[c0].text[:1].isdigit())):
            continue
        if not (1 <= int(da) <= 31 and 1 <= int(db) <= 12):
            continue
        if c1 + 1 < n and (tokens[c1 + 1].is_num or tokens[c1 + 1].key in _HOUR_WORDS):
            continue
        if g > 0 and groups[g - 1][1] + 2 == a0 and groups[g - 1][3] == sa:
            continue  # part of a longer run (a phone number)
        if g + 3 < len(groups) and groups[g + 3][0] == c1 + 2 and tokens[c1 + 1].text == sa:
            continue
        year = _year_of(Token("num", tokens[c0].text, 0, 0, digits=dc, value=int(dc)),
                        ref_year) if dc.isdigit() else None
        if year is None:
            continue
        written = sa in "/.-" and tokens[a0].text[:1].isdigit()
        cue = _has_cue(tokens, _sentence_start(tokens, a0), a0) or asked_birth_date
        if cue or (written and year <= ref_year - 2) or _only_thing_said(tokens, a0, c1 + 1):
            out.append(Found(tokens[a0].start, tokens[c1].end, "birth_date", "rule"))
    return out


def _number_groups(tokens: Sequence[Token]) -> list[tuple[int, int, str, str]]:
    """Adjacent number tokens as one group ("zéro deux" -> "02"): (first, last, digits,
    the separator mark right after the group or "")."""
    out: list[tuple[int, int, str, str]] = []
    i = 0
    n = len(tokens)
    while i < n:
        if not tokens[i].is_num or tokens[i].digits.startswith("+"):
            i += 1
            continue
        j = i
        digits = tokens[i].digits
        while j + 1 < n and tokens[j + 1].is_num and len(digits) < 4:
            j += 1
            digits += tokens[j].digits
        sep = tokens[j + 1].text if j + 1 < n and tokens[j + 1].kind == "punct" else ""
        out.append((i, j, digits, sep))
        i = j + 1
    return out


def _only_thing_said(tokens: Sequence[Token], start: int, end: int) -> bool:
    others = [t for k, t in enumerate(tokens) if (k < start or k >= end) and t.kind == "word"]
    return len(others) <= 2


# --------------------------------------------------------------------------------------------
# spelled names
# --------------------------------------------------------------------------------------------

_SPELL_MARKS = frozenset({"apostrophe", "tiret", "espace", "hyphen", "dash"})
_SPELL_JOINERS = frozenset({"et", "puis", "and", "then"})


def _letter(tokens: Sequence[Token], i: int) -> bool:
    t = tokens[i]
    if t.kind != "word" or len(t.text) != 1 or not t.text.isalpha():
        return False
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    # "l'", "d'", "j'": an elided article, not a letter
    return not (nxt is not None and nxt.text in ("'", "\u2019") and nxt.start == t.end)


def find_spelled_names(text: str, tokens: Sequence[Token]) -> list[Found]:
    """Names spelled letter by letter: "G, I, R, A, R, D", "G-I-R-A-R-D", "F, E, deux R",
    "N, apostrophe, D", "g comme Gaston, i comme Irma"."""
    out: list[Found] = []
    n = len(tokens)
    i = 0
    while i < n:
        items: list[tuple[int, int, str]] = []  # (first token, last token, letters)
        j = i
        seps: list[str] = []
        while j < n:
            item = _spell_item(tokens, j)
            if item is None:
                break
            last, letters = item
            items.append((j, last, letters))
            k = last + 1
            sep = ""
            while k < n and (tokens[k].text in (",", "-", ".", "\u2026")
                             or tokens[k].key in _SPELL_JOINERS):
                sep += tokens[k].text if tokens[k].kind == "punct" else " "
                k += 1
            if k < n and _spell_item(tokens, k) is not None:
                seps.append(sep or " ")
                j = k
            else:
                break
        while items and not items[-1][2].isalpha():
            items.pop()
        with_letters = [it for it in items if it[2].isalpha()]
        ok = False
        if len(with_letters) >= 3 and len(items) >= 3:
            punct_seps = sum(1 for s in seps if s.strip())
            upper = all(it[2][0].isupper() for it in with_letters)
            ok = punct_seps >= 2 or upper
        elif len(with_letters) == 2 and len(items) == 2:
            ok = all(it[2][0].isupper() for it in with_letters) and seps[0].strip() in (
                ",", "-")
        if ok:
            value = "".join(it[2] for it in items)
            out.append(Found(tokens[items[0][0]].start, tokens[items[-1][1]].end,
                             "spelled_name", "rule", value.upper()))
            i = items[-1][1] + 1
        else:
            i += 1
    return out


def _spell_item(tokens: Sequence[Token], i: int) -> tuple[int, str] | None:
    """An item of a spelled name at ``i``: (its last token, its letters)."""
    n = len(tokens)
    t = tokens[i]
    if t.key in _SPELL_MARKS:
        if t.key == "apostrophe":
            return i, "'"
        return i, "-" if t.key != "espace" else " "
    if t.key == "trait" and i + 3 < n and tokens[i + 3].key == "union":
        return i + 3, "-"
    if (t.key in ("deux", "double", "two") or (t.is_num and t.value == 2 and t.key == "deux")) \
            and i + 1 < n and _letter(tokens, i + 1):
        return i + 1, tokens[i + 1].text * 2
    if _letter(tokens, i):
        if i + 2 < n and tokens[i + 1].key in ("comme", "like") and tokens[i + 2].kind == "word":
            return i + 2, t.text
        return i, t.text
    return None


# --------------------------------------------------------------------------------------------
# e-mail addresses
# --------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_AT_WORDS = frozenset({"arobase", "arrobase", "arobas", "arrobas", "@"})
_CONNECTORS = {"point": ".", "dot": ".", "tiret": "-", "underscore": "_", "dash": "-"}


def find_emails(text: str, tokens: Sequence[Token], *, english: bool = False) -> list[Found]:
    """Written addresses, and spoken ones: "jean point dupont arobase gmail point com"."""
    out = [Found(m.start(), m.end(), "email", "rule", m.group().lower())
           for m in _EMAIL.finditer(text)]
    n = len(tokens)
    ats = _AT_WORDS | ({"at"} if english else set())
    for a, t in enumerate(tokens):
        if t.key not in ats or any(f.start <= t.start < f.end for f in out):
            continue
        # domain: word (point word)+, the dot said or written ("gmail point com", "gmail.com")
        k = a + 1
        if k >= n or tokens[k].kind not in ("word", "num"):
            continue
        end_k = k
        dots = 0
        while k + 2 < n and (tokens[k + 1].key in ("point", "dot") or _glued(
                tokens, k + 1, ".")) and tokens[k + 2].kind in ("word", "num"):
            k += 2
            end_k = k
            dots += 1
        if dots == 0:
            continue
        # local part: word ((connector) word)* backwards; "tiret bas" / "tiret du bas" too
        b = a - 1
        if b < 0 or tokens[b].kind not in ("word", "num"):
            continue
        start_b = b
        while b - 1 >= 0:
            c = b - 1
            if tokens[c].key == "bas" and c - 1 >= 0 and tokens[c - 1].key in ("tiret", "du"):
                c -= 1
                if tokens[c].key == "du" and c - 1 >= 0 and tokens[c - 1].key == "tiret":
                    c -= 1
            elif tokens[c].key not in _CONNECTORS and not _glued(tokens, c, ".-_"):
                if tokens[c].is_num and tokens[b].kind == "word":
                    b = c  # "dupont quatre-vingt-deux" style: a number glued to a word
                    start_b = b
                    continue
                break
            if c - 1 >= 0 and tokens[c - 1].kind in ("word", "num"):
                b = c - 1
                start_b = b
            else:
                break
        value = " ".join(tok.key for tok in tokens[start_b:end_k + 1])
        out.append(Found(tokens[start_b].start, tokens[end_k].end, "email", "rule", value))
    return out


def _glued(tokens: Sequence[Token], i: int, marks: str) -> bool:
    """Whether token ``i`` is one of ``marks`` written with no space on either side."""
    return (0 < i < len(tokens) - 1 and tokens[i].kind == "punct" and tokens[i].text in marks
            and tokens[i - 1].end == tokens[i].start and tokens[i].end == tokens[i + 1].start)


# --------------------------------------------------------------------------------------------
# postal addresses
# --------------------------------------------------------------------------------------------

_STREET_PARTICLES = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "'", "-", "\u2019",
                               "saint", "sainte", "st", "ste", "of", "the"})
_STREET_STOP = frozenset({"a", "au", "aux", "dans", "et", "mais", "pour", "qui", "que", "je", "il",
                          "elle", "on", "c", "est", "vers", "pres", "chez", "avec", "en", "sur",
                          "donc", "alors", "voila", "oui", "non", "hein", "euh", "ou", "apres",
                          "avant", "depuis", "entre", "sans", "comme", "parce"})
_ADDRESS_CUES = frozenset({"habite", "habitons", "habitez", "habitent", "adresse", "domicile",
                           "demeure", "domicilie", "domiciliee", "live", "lives", "address"})
_NUMBER_SUFFIX = frozenset({"bis", "ter", "quater", "b", "a"})


def find_addresses(text: str, tokens: Sequence[Token]) -> list[Found]:
    """Street addresses ("12 rue des Lilas", "au 3 bis avenue Jean Jaurès", "quarante-deux
    rue des Glycines"), with the postcode and city when they follow, and "69003 Lyon"."""
    out: list[Found] = []
    n = len(tokens)
    used_until = -1
    for s, t in enumerate(tokens):
        if t.kind != "word" or t.key not in STREET_TYPES or s <= used_until:
            continue
        b = s - 1
        if b >= 0 and tokens[b].text == ",":
            b -= 1
        if b >= 0 and tokens[b].key in _NUMBER_SUFFIX and b - 1 >= 0 and tokens[b - 1].is_num:
            b -= 1
        if b >= 0 and tokens[b].is_num and 0 < tokens[b].value < 10000:
            start_i = b
        else:
            window = [tok.key for tok in tokens[max(0, s - 6):s]]
            if not any(k in _ADDRESS_CUES for k in window):
                continue
            start_i = s
        # the street's name
        k = s + 1
        end_i = s
        words = 0
        while k < n and words < 6:
            tk = tokens[k]
            if tk.key in _STREET_PARTICLES or tk.text in ("'", "-", "\u2019"):
                k += 1
                continue
            if tk.kind == "word" and tk.key not in _STREET_STOP and (
                    tk.text[:1].isupper() or words == 0):
                end_i = k
                words += 1
                k += 1
                continue
            if tk.is_num and words == 0:
                end_i = k
                words += 1
                k += 1
                continue
            break
        if words == 0:
            continue
        # ", 69003 Lyon"
        k = end_i + 1
        if k < n and tokens[k].text == ",":
            k += 1
        if k + 1 < n and tokens[k].is_num and 1000 <= tokens[k].value <= 98999 and \
                tokens[k + 1].kind == "word" and tokens[k + 1].text[:1].isupper():
            end_i = k + 1
        out.append(Found(tokens[start_i].start, tokens[end_i].end, "address", "rule",
                         _address_key(tokens[start_i:end_i + 1])))
        used_until = end_i
    for k in range(n - 1):
        tk = tokens[k]
        if tk.is_num and tk.text.isdigit() and len(tk.digits) == 5 and \
                1000 <= tk.value <= 98999 and tokens[k + 1].kind == "word" and \
                tokens[k + 1].text[:1].isupper() and not any(
                    f.start <= tk.start < f.end for f in out):
            out.append(Found(tk.start, tokens[k + 1].end, "address", "rule",
                             f"{tk.digits} {tokens[k + 1].key}"))
    return out


def _address_key(tokens: Sequence[Token]) -> str:
    parts = [t.digits if t.is_num else t.key for t in tokens
             if t.is_num or (t.kind == "word" and t.key not in _STREET_PARTICLES)]
    return " ".join(parts)
