"""Rule-based understanding of transcribed patient speech (as Whisper writes it)."""

from __future__ import annotations

from datetime import date

import pytest

from voice.understanding import (
    booking_intent,
    extract_practitioner,
    is_agreement,
    is_goodbye,
    is_refusal,
    resolve_day,
    split_name,
    time_in,
)

SAT = date(2026, 11, 28)  # a Saturday


@pytest.mark.parametrize("said,expected", [
    ("jeudi après-midi", (date(2026, 12, 3), date(2026, 12, 3), "afternoon")),
    ("Bonjour, est-ce que le docteur Morel peut recevoir jeudi après midi?",
     (date(2026, 12, 3), date(2026, 12, 3), "afternoon")),
    ("demain matin", (date(2026, 11, 29), date(2026, 11, 29), "morning")),
    ("le 14 à 9h", (date(2026, 12, 14), date(2026, 12, 14), None)),
    ("le 30", (date(2026, 11, 30), date(2026, 11, 30), None)),
    ("3 décembre", (date(2026, 12, 3), date(2026, 12, 3), None)),
    ("2027-01-05", (date(2027, 1, 5), date(2027, 1, 5), None)),
    ("la semaine prochaine", (date(2026, 11, 30), date(2026, 12, 6), None)),
    ("plutôt en fin de journée", (date(2026, 11, 29), date(2026, 12, 19), "evening")),
    ("", (date(2026, 11, 29), date(2026, 12, 19), None)),
    ("le 31 février", (date(2026, 11, 29), date(2026, 12, 19), None)),  # impossible: any day
])
def test_resolve_day(said: str, expected: tuple[date, date, str | None]) -> None:
    assert resolve_day(said, SAT) == expected


def test_same_weekday_means_next_week() -> None:
    assert resolve_day("samedi", SAT)[0] == date(2026, 12, 5)


@pytest.mark.parametrize("said", ["Oui, c'est parfait pour moi, merci.", "d'accord", "OK ça me va",
                                  "oui très bien", "Tout à fait."])
def test_agreement(said: str) -> None:
    assert is_agreement(said) and not is_refusal(said)


@pytest.mark.parametrize("said", ["Non, ça ne m'arrange pas, plutôt en fin de journée si possible.",
                                  "non merci", "oui mais plutôt le matin"])
def test_refusal_or_counter_offer_is_not_agreement(said: str) -> None:
    assert not is_agreement(said) and is_refusal(said)


@pytest.mark.parametrize("said,intent", [
    ("Bonjour, est-ce que le docteur Morel peut recevoir jeudi après midi?", True),
    ("Bonjour, le docteur Adad, Mohé de la place le 14 à 9h.", True),
    ("J'aimerais voir le docteur Morel la semaine prochaine", True),
    ("Je voudrais prendre un rendez-vous pour mon fils", True),
    ("je vous appelle pour annuler mon rendez-vous de demain matin", False),
    ("Vous fermez à quelle heure le soir en semaine.", False),
    ("Est-ce que le docteur accepte la carte vitale ?", False),
])
def test_booking_intent(said: str, intent: bool) -> None:
    assert booking_intent(said) is intent


def test_practitioner_from_known_names_then_from_docteur() -> None:
    names = ["Morel", "Haddad"]
    assert extract_practitioner("le docteur Morel peut me recevoir", names) == "Morel"
    assert extract_practitioner("le docteur Adad, mohé de la place", names) == "adad"
    assert extract_practitioner("Est-ce que le docteur peut me recevoir", names) is None


def test_goodbye_time_and_names() -> None:
    assert is_goodbye("Très bien, merci pour votre aide, au revoir.")
    assert not is_goodbye("Bonjour")
    assert time_in("jeudi à 15h") == (15, 0) and time_in("à 14 h 20") == (14, 20)
    assert time_in("jeudi") is None
    assert time_in("vers 14 heures 30") == (14, 30)  # "heures" read whole, not as "h" + "eures"
    assert split_name("Paul Girard") == ("Paul", "Girard")
    assert split_name("jean-pierre de la fontaine") == ("Jean-Pierre", "de la Fontaine")


def test_a_turn_heard_in_two_pieces_gives_the_name_said_last() -> None:
    from voice.understanding import extract_identity

    # the STT's first piece, then the whole utterance transcribed again (as the pipeline joins them)
    heard = "C'est Paul Gichard. Je suis Paul Girard, né le 4 juin 1978."
    assert extract_identity(heard) == ("Paul Girard", date(1978, 6, 4))
    assert extract_identity("Je suis Paul Girard, je suis né le 4 juin 1978.") == \
        ("Paul Girard", date(1978, 6, 4))


@pytest.mark.parametrize(("said", "kind"), [
    ("Vous pouvez me rappeler la dreste cabine.", None),  # "l'adresse du cabinet", misheard
    ("Vous pouvez me rappeler les horaires ?", None),
    ("Pouvez-vous me rappeler le plus vite possible ?", "callback"),
    ("Le docteur peut me rappeler ?", "callback"),
    ("Qu'il me rappelle demain matin.", "callback"),
])
def test_remind_me_is_not_call_me_back(said: str, kind: str | None) -> None:
    from voice.understanding import message_kind

    assert message_kind(said) == kind


def test_afternoon_as_whisper_writes_it() -> None:
    from voice.understanding import resolve_day

    assert resolve_day("Jeudi Apemidi.", date(2026, 11, 28))[2] == "afternoon"
