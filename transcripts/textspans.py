"""Pure text helpers for redaction: placeholders, non-overlapping spans, offset shifts.

No database here: :mod:`transcripts.store` uses these to rewrite a turn's text and move
the offsets of the spans that follow an edit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from transcripts.types import PLACEHOLDER_LABELS

__all__ = [
    "Placeholders",
    "locate_all",
    "normalize_original",
    "pick_non_overlapping",
    "placeholder_label",
    "redact_actions",
    "redact_free_text",
    "rewrite",
    "shift_for",
]

_PLACEHOLDER = re.compile(r"^\[([A-Z_]+)_(\d+)\]$")


def placeholder_label(pii_type: str) -> str:
    try:
        return PLACEHOLDER_LABELS[pii_type]
    except KeyError:
        raise ValueError(f"unknown PII type {pii_type!r}; one of {sorted(PLACEHOLDER_LABELS)}") from None


def normalize_original(text: str) -> str:
    """The key under which two mentions count as the same value ("Jacquet" / "jacquet")."""
    folded = unicodedata.normalize("NFC", text).casefold()
    return " ".join(re.sub(r"[^\w@.+]+", " ", folded).split())


class Placeholders:
    """Numbers placeholders per call and label: the same value gets the same number
    ("[NOM_1]" each time the same surname is said), a new value the next free one."""

    def __init__(self, *, existing: Iterable[tuple[str, str | None]] = ()) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._next: dict[str, int] = {}
        self._originals: dict[str, str] = {}
        for placeholder, original in existing:
            m = _PLACEHOLDER.match(placeholder)
            if not m:
                continue
            label, num = m.group(1), int(m.group(2))
            self._next[label] = max(self._next.get(label, 1), num + 1)
            if original is not None:
                self._by_value.setdefault((label, normalize_original(original)), placeholder)
                self._originals.setdefault(placeholder, original)

    def for_value(self, pii_type: str, original: str) -> str:
        label = placeholder_label(pii_type)
        key = (label, normalize_original(original))
        found = self._by_value.get(key)
        if found is not None:
            return found
        num = self._next.get(label, 1)
        self._next[label] = num + 1
        placeholder = f"[{label}_{num}]"
        self._by_value[key] = placeholder
        self._originals[placeholder] = original
        return placeholder

    def known(self) -> list[tuple[str, str, str]]:
        """``(label, original, placeholder)`` of every value numbered so far."""
        return [(_PLACEHOLDER.match(p).group(1), o, p)  # type: ignore[union-attr]
                for p, o in self._originals.items()]


# Action arguments that hold personal data, and the placeholder labels they may take.
_PII_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("NOM", "NOM_EPELE"), "birth_date": ("DATE_NAISSANCE",), "phone": ("TELEPHONE",),
    "email": ("EMAIL",), "address": ("ADRESSE",), "nir": ("NIR",),
}
# Free-text arguments: every known original in them is replaced by its placeholder.
_FREE_TEXT_KEYS = ("summary", "reason", "note", "message")


def redact_actions(actions: Sequence[dict[str, Any]], known: Sequence[tuple[str, str, str]]
                   ) -> list[dict[str, Any]]:
    """Replace the personal data in secretary actions (``[{action, args, result}]``) by the
    call's placeholders: a name, birth date or phone argument by the placeholder of the
    matching value said in the call (else the only one of that kind, else a bare
    "[NOM]"), and known values inside free-text arguments (a message's summary)."""
    return [_redact_value(a, None, known) for a in actions]


def _redact_value(value: Any, key: str | None, known: Sequence[tuple[str, str, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _redact_value(v, k, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, key, known) for v in value]
    if not isinstance(value, str) or not value or key is None:
        return value
    if key in _PII_KEYS:
        return _pii_arg(value, _PII_KEYS[key], known)
    if key in _FREE_TEXT_KEYS:
        return redact_free_text(value, known)
    return value


def _pii_arg(value: str, labels: tuple[str, ...], known: Sequence[tuple[str, str, str]]) -> str:
    norm = normalize_original(value)
    candidates = [(o, p) for label, o, p in known if label in labels]
    for original, placeholder in candidates:
        if normalize_original(original) == norm:
            return placeholder
    if labels[0] == "DATE_NAISSANCE":
        for original, placeholder in candidates:
            if _iso_date(original) == value.strip():
                return placeholder
    if labels[0] == "NOM":
        words = set(norm.split())
        best = max(candidates, default=None,
                   key=lambda c: len(words & set(normalize_original(c[0]).split())))
        if best is not None and words & set(normalize_original(best[0]).split()):
            return best[1]
    distinct = sorted({p for _o, p in candidates})
    return distinct[0] if len(distinct) == 1 else f"[{labels[0]}]"


def _iso_date(spoken: str) -> str | None:
    from records.spoken_dates import parse_spoken_date

    try:
        found = parse_spoken_date(spoken)
    except Exception:  # a span that is not a date at all
        return None
    return found.isoformat() if found else None


def redact_free_text(text: str, known: Sequence[tuple[str, str, str]]) -> str:
    """Replace every known original (3 characters or more) in a free text by its
    placeholder, longest first, ignoring case."""
    for _label, original, placeholder in sorted(known, key=lambda k: -len(k[1])):
        if len(original) >= 3:
            text = re.sub(re.escape(original), placeholder, text, flags=re.IGNORECASE)
    return text


def pick_non_overlapping(candidates: Sequence[tuple[int, int]],
                         taken: Iterable[tuple[int, int]] = ()) -> list[int]:
    """Indexes of the candidates kept: longest first, none overlapping each other or
    ``taken``; returned in text order."""
    occupied = list(taken)
    kept: list[int] = []
    order = sorted(range(len(candidates)),
                   key=lambda i: (-(candidates[i][1] - candidates[i][0]), candidates[i][0]))
    for i in order:
        s, e = candidates[i]
        if any(s < oe and os < e for os, oe in occupied):
            continue
        occupied.append((s, e))
        kept.append(i)
    return sorted(kept, key=lambda i: candidates[i][0])


def rewrite(text: str, replacements: Sequence[tuple[int, int, str]]
            ) -> tuple[str, list[tuple[int, int]]]:
    """Replace non-overlapping ``(start, end, new)`` slices; returns the new text and the
    new ``(start, end)`` of each replacement, in the order given."""
    order = sorted(range(len(replacements)), key=lambda i: replacements[i][0])
    out: list[str] = []
    pos = 0
    shift = 0
    new_spans: list[tuple[int, int]] = [(0, 0)] * len(replacements)
    for i in order:
        s, e, new = replacements[i]
        if s < pos or e < s or e > len(text):
            raise ValueError(f"bad or overlapping replacement {s}:{e}")
        out.append(text[pos:s])
        new_spans[i] = (s + shift, s + shift + len(new))
        out.append(new)
        shift += len(new) - (e - s)
        pos = e
    out.append(text[pos:])
    return "".join(out), new_spans


def shift_for(offset: int, replacements: Sequence[tuple[int, int, str]]) -> int:
    """Where an offset outside every replaced slice moves to after :func:`rewrite`."""
    return offset + sum(len(new) - (e - s) for s, e, new in replacements if e <= offset)


def locate_all(text: str, needles: Sequence[str]) -> list[tuple[int, int] | None]:
    """Offsets of verbatim mentions in a text: longest first, each on its first
    occurrence not already claimed (the same words said twice are two mentions);
    ``None`` for a needle not found."""
    found: list[tuple[int, int] | None] = [None] * len(needles)
    claimed: list[tuple[int, int]] = []
    order = sorted(range(len(needles)), key=lambda i: -len(needles[i]))
    for i in order:
        needle = needles[i]
        if not needle:
            continue
        start = text.find(needle)
        while start != -1:
            end = start + len(needle)
            if not any(start < ce and cs < end for cs, ce in claimed):
                found[i] = (start, end)
                claimed.append((start, end))
                break
            start = text.find(needle, start + 1)
    return found
