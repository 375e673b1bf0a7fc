"""Pure text helpers for redaction: placeholders, non-overlapping spans, offset shifts.

No database here: :mod:`transcripts.store` uses these to rewrite a turn's text and move
the offsets of the spans that follow an edit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from transcripts.types import PLACEHOLDER_LABELS

__all__ = [
    "Placeholders",
    "locate_all",
    "normalize_original",
    "pick_non_overlapping",
    "placeholder_label",
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
        for placeholder, original in existing:
            m = _PLACEHOLDER.match(placeholder)
            if not m:
                continue
            label, num = m.group(1), int(m.group(2))
            self._next[label] = max(self._next.get(label, 1), num + 1)
            if original is not None:
                self._by_value.setdefault((label, normalize_original(original)), placeholder)

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
        return placeholder


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
