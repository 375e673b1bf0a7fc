"""Birth dates as callers say them."""

from __future__ import annotations

from datetime import date

import pytest

from records import SpokenDateError, parse_spoken_date, parse_spoken_date_strict

TODAY = date(2026, 11, 30)


@pytest.mark.parametrize("text,expected", [
    ("douze mars quatre-vingt-cinq", date(1985, 3, 12)),
    ("12/03/1985", date(1985, 3, 12)),
    ("12.03.85", date(1985, 3, 12)),
    ("1985-03-12", date(1985, 3, 12)),
    ("12 03 1985", date(1985, 3, 12)),
    ("4 juin 1978", date(1978, 6, 4)),
    ("quatre juin soixante-dix-huit", date(1978, 6, 4)),
    ("né le vingt-deux février mille neuf cent quatre-vingt-onze", date(1991, 2, 22)),
    ("le 1er janvier 2000", date(2000, 1, 1)),
    ("premier janvier deux mille", date(2000, 1, 1)),
    ("le dix mai deux mille dix-huit", date(2018, 5, 10)),
    ("dix mai dix-huit", date(2018, 5, 10)),
    ("trente et un décembre dix-neuf cent quatre-vingt-dix-neuf", date(1999, 12, 31)),
    ("douze mars dix-neuf quatre-vingt-cinq", date(1985, 3, 12)),
    ("le neuf septembre mil neuf cent quatre-vingt-trois", date(1983, 9, 9)),
    ("dix-sept mars soixante-dix-sept", date(1977, 3, 17)),
    ("sept septembre 2001", date(2001, 9, 7)),
    ("vingt et un juillet deux mille un", date(2001, 7, 21)),
    ("Je suis née le 22 Février 1991.", date(1991, 2, 22)),
    ("DOUZE MARS 85", date(1985, 3, 12)),
    ("march 12 1985", None),  # month first: not a French form, refused rather than guessed
])
def test_spoken_dates(text: str, expected: date | None) -> None:
    assert parse_spoken_date(text, today=TODAY) == expected


@pytest.mark.parametrize("text,reason", [
    ("trente février deux mille", "30 February 2000 does not exist"),
    ("31/04/1990", "31 April 1990 does not exist"),
    ("12/13/1985", "no month number 13"),
    ("je ne sais pas", "no month"),
    ("douze mars", "no year"),
    ("mars 1985", "no day"),
    ("", "no date"),
    ("12 mars 1492", "not plausible"),
])
def test_impossible_or_incomplete_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(SpokenDateError, match=reason):
        parse_spoken_date_strict(text, today=TODAY)
    assert parse_spoken_date(text, today=TODAY) is None
