"""French speech phrasing helpers."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from knowledge.phrasing import (
    join_fr,
    number_words,
    relative_day,
    say_date,
    say_day,
    say_euros,
    say_phone,
    say_practitioner,
    say_slot,
    say_time,
    say_time_range,
    speakable,
)


def test_say_date() -> None:
    assert say_date(date(2026, 12, 3)) == "jeudi 3 décembre"
    assert say_date(date(2026, 12, 1)) == "mardi 1er décembre"
    assert say_date(date(2027, 1, 4), today=date(2026, 12, 30)) == "lundi 4 janvier 2027"
    assert say_date(date(2026, 8, 14), with_weekday=False) == "14 août"


def test_relative_days() -> None:
    today = date(2026, 12, 1)
    assert relative_day(today, today) == "aujourd'hui"
    assert relative_day(date(2026, 12, 2), today) == "demain"
    assert relative_day(date(2026, 12, 3), today) == "après-demain"
    assert relative_day(date(2026, 12, 9), today) is None
    assert say_day(date(2026, 12, 2), today=today) == "demain, mercredi 2 décembre"
    assert say_day(date(2026, 12, 9), today=today) == "mercredi 9 décembre"


def test_say_time() -> None:
    assert say_time(time(14, 30)) == "14 heures 30"
    assert say_time(time(9, 0)) == "9 heures"
    assert say_time(time(1, 5)) == "1 heure 5"
    assert say_time(datetime(2026, 1, 1, 8, 45)) == "8 heures 45"
    assert say_time_range(time(8, 30), time(12, 30)) == "de 8 heures 30 à 12 heures 30"


def test_say_slot() -> None:
    start = datetime(2026, 12, 3, 14, 30)
    assert say_slot(start, "Dr Claire Morel") == "jeudi 3 décembre à 14 heures 30 avec le docteur Claire Morel"
    assert say_slot(start) == "jeudi 3 décembre à 14 heures 30"
    assert say_slot(start, "Dr. Haddad", today=date(2026, 12, 2)) == (
        "demain, jeudi 3 décembre à 14 heures 30 avec le docteur Haddad")
    assert say_practitioner("Pr Dupont") == "le professeur Dupont"
    assert say_practitioner("Madame Roux") == "Madame Roux"


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zéro"), (16, "seize"), (21, "vingt et un"), (34, "trente-quatre"), (71, "soixante et onze"),
     (78, "soixante-dix-huit"), (80, "quatre-vingts"), (81, "quatre-vingt-un"), (99, "quatre-vingt-dix-neuf"),
     (100, "cent"), (112, "cent douze"), (300, "trois cents"), (999, "neuf cent quatre-vingt-dix-neuf")],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_number_words_range() -> None:
    with pytest.raises(ValueError):
        number_words(1000)


def test_say_phone() -> None:
    expected = "zéro quatre, soixante-dix-huit, douze, trente-quatre, cinquante-six"
    assert say_phone("04 78 12 34 56") == expected
    assert say_phone("04.78.12.34.56") == expected
    assert say_phone("+33 4 78 12 34 56") == expected
    assert say_phone("15") == "quinze"
    assert say_phone("112") == "cent douze"
    assert say_phone("3114") == "trente et un, quatorze"
    with pytest.raises(ValueError):
        say_phone("abc")


def test_say_euros() -> None:
    assert say_euros(30) == "30 euros"
    assert say_euros(25.5) == "25 euros 50"
    assert say_euros(1) == "1 euro"


def test_join_and_speakable() -> None:
    assert join_fr(["a", "b", "c"]) == "a, b et c"
    assert join_fr(["a", "b"], last="ou") == "a ou b"
    assert join_fr([]) == ""
    assert speakable("Le Dr Morel (OPTAM) ; le soir **30 €**") == (
        "Le docteur Morel, OPTAM. Le soir 30 euros")
