"""Answers about the practice come from the profile, in speakable French."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from knowledge.practice_info import (
    TOPICS,
    UNKNOWN_ANSWER_FR,
    answer_practice_question,
    match_faq,
    resolve_topic,
)
from knowledge.profile import PracticeProfile, default_profile_path, load_profile

MONDAY_9 = datetime(2026, 11, 30, 9, 0)


@pytest.fixture(scope="module")
def profile() -> PracticeProfile:
    return load_profile(default_profile_path())


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_answers_from_profile(profile: PracticeProfile, topic: str) -> None:
    answer = answer_practice_question(profile, topic, now=MONDAY_9)
    assert answer and answer != UNKNOWN_ANSWER_FR
    # Spoken text: no markdown, no bullets, no abbreviations the TTS would spell.
    for bad in ("*", "#", "\n", " - ", "Dr ", "€", "(", ";"):
        assert bad not in answer, (topic, answer)


def test_hours_open_now(profile: PracticeProfile) -> None:
    a = answer_practice_question(profile, "hours", now=MONDAY_9)
    assert "du lundi au jeudi de 8 heures 30 à 12 heures 30 et de 14 heures à 19 heures" in a
    assert "le samedi de 9 heures à 12 heures" in a
    assert "fermé le dimanche" in a
    assert "ouvert jusqu'à 12 heures 30" in a


def test_hours_lunch_break_and_reopening(profile: PracticeProfile) -> None:
    a = answer_practice_question(profile, "hours", now=datetime(2026, 11, 30, 12, 45))
    assert "En ce moment, le cabinet est fermé" in a
    assert "Il rouvre aujourd'hui à 14 heures" in a
    a = answer_practice_question(profile, "hours", now=datetime(2026, 11, 28, 13, 0))  # Saturday
    assert "Il rouvre lundi 30 novembre à 8 heures 30" in a


def test_hours_today(profile: PracticeProfile) -> None:
    ask = lambda t, now: answer_practice_question(profile, t, now=now)  # noqa: E731
    assert ask("hours_today", MONDAY_9) == (
        "Aujourd'hui, le cabinet est ouvert de 8 heures 30 à 12 heures 30 et de 14 heures à "
        "19 heures. En ce moment, il est ouvert jusqu'à 12 heures 30.")
    lunch = ask("vous êtes ouvert cet après-midi ?", datetime(2026, 11, 30, 12, 45))
    assert "En ce moment, il est fermé. Il rouvre aujourd'hui à 14 heures." in lunch
    sunday = ask("hours_today", datetime(2026, 11, 29, 10, 0))
    assert sunday.startswith("Aujourd'hui, le cabinet est fermé.")
    assert "Il rouvre demain, lundi 30 novembre, à 8 heures 30." in sunday
    christmas = ask("hours_today", datetime(2026, 12, 25, 10, 0))
    assert christmas.startswith("Aujourd'hui, le cabinet est fermé : Fermeture de Noël.")


def test_hours_closures(profile: PracticeProfile) -> None:
    a = answer_practice_question(profile, "hours", now=datetime(2026, 12, 10, 9, 0))
    assert "fermé du jeudi 24 décembre au samedi 26 décembre, fermeture de Noël" in a
    a = answer_practice_question(profile, "hours", now=datetime(2026, 12, 24, 10, 0))
    assert "Aujourd'hui, le cabinet est fermé : Fermeture de Noël" in a
    assert "Il rouvre lundi 28 décembre à 8 heures 30" in a


def test_hours_with_aware_now(profile: PracticeProfile) -> None:
    # 8:00 UTC on a winter Monday is 9:00 in Paris: open.
    now = datetime(2026, 11, 30, 8, 0, tzinfo=ZoneInfo("UTC"))
    assert "ouvert jusqu'à 12 heures 30" in answer_practice_question(profile, "hours", now=now)


def test_tariffs(profile: PracticeProfile) -> None:
    a = answer_practice_question(profile, "tariffs", now=MONDAY_9)
    assert "Consultation de médecine générale : 30 euros, remboursable" in a
    assert "Séance de laser dermatologique : 120 euros, non remboursable" in a
    assert "secteur 2" in a and "secteur 1" in a
    laser = answer_practice_question(profile, "combien coûte le laser", now=MONDAY_9)
    assert "120 euros" in laser and "30 euros" not in laser


def test_simple_topics(profile: PracticeProfile) -> None:
    ask = lambda t: answer_practice_question(profile, t, now=MONDAY_9)  # noqa: E731
    assert ask("address") == "Le cabinet se trouve au 12 rue des Tilleuls, 69003 Lyon."
    assert "parking gratuit" in ask("access")
    assert "zéro quatre, soixante-dix-huit" in ask("phone")
    assert ask("payments") == "Vous pouvez régler par carte bancaire, espèces ou chèque."
    assert ask("carte_vitale").startswith("Oui")
    assert "ALD" in ask("tiers_payant")
    assert "carnet de santé" in ask("documents")
    p = ask("practitioners")
    assert "le docteur Claire Morel, en médecine générale" in p and "dermatologie" in p
    assert "24 heures" in ask("cancellation")
    e = ask("emergency")
    assert "15" in e and "112" in e and "3114" in e


def test_faq_and_free_text(profile: PracticeProfile) -> None:
    ask = lambda t: answer_practice_question(profile, t, now=MONDAY_9)  # noqa: E731
    assert "mardi après-midi" in ask("home_visits")
    assert "mardi après-midi" in ask("est-ce que le docteur vient à domicile")
    assert "48 heures" in ask("comment renouveler mon ordonnance")
    assert "médecin traitant" in ask("faut il une ordonnance pour voir le dermato")
    assert "parking" in ask("est-ce que je peux me garer")
    assert ask("horaires d'ouverture").startswith("Le cabinet est ouvert")
    assert "laboratoire" in ask("est-ce que je dois venir à jeun")
    assert "laboratoire" in ask("vous faites les prises de sang ?")  # matched on the answer
    assert "grippe" in ask("vous faites le vaccin contre la grippe")
    assert "parking" in ask("comment venir au cabinet")


@pytest.mark.parametrize("question", [
    "est-ce que vous faites de l'acupuncture",
    "quel temps fait-il",
    "vous avez une piscine",
    "",
])
def test_unknown_is_never_invented(profile: PracticeProfile, question: str) -> None:
    assert answer_practice_question(profile, question, now=MONDAY_9) == UNKNOWN_ANSWER_FR


def test_resolve_topic_and_faq(profile: PracticeProfile) -> None:
    assert resolve_topic("Horaires") == "hours"
    assert resolve_topic("carte vitale") == "carte_vitale"
    assert resolve_topic("tiers payant") == "tiers_payant"
    assert resolve_topic("xyz") is None
    assert match_faq(profile, "ordonnance pour le dermatologue") is profile.faq[0]
    assert match_faq(profile, "bonjour") is None


@pytest.mark.parametrize(("heard", "topic"), [
    ("Vous pouvez me rappeler la dreste cabine, s'il vous plaît.", "address"),  # CI, Whisper
    ("Quelle est votre adrese ?", "address"),
    ("Le paiment par carte, c'est possible ?", "payments"),
    ("Je voudrais un rendez-vous demain.", None),
    ("La détresse respiratoire, c'est grave ?", None),  # near "adresse", but not one letter off
    ("Vous avez de la place jeudi ?", None),
])
def test_a_topic_word_misheard_by_one_letter_is_still_the_topic(heard: str, topic: str | None) -> None:
    assert resolve_topic(heard, misheard=True) == topic
    assert resolve_topic(heard) in (topic, None)  # exact keywords only, by default


def test_profile_without_faq_says_unknown(profile: PracticeProfile) -> None:
    from dataclasses import replace

    bare = replace(profile, faq=(), tiers_payant="", documents_to_bring=())
    assert answer_practice_question(bare, "home_visits", now=MONDAY_9) == UNKNOWN_ANSWER_FR
    assert answer_practice_question(bare, "tiers_payant", now=MONDAY_9) == UNKNOWN_ANSWER_FR
    assert answer_practice_question(bare, "documents", now=MONDAY_9) == UNKNOWN_ANSWER_FR
