"""Recording consent: greeting and objection detection."""

from __future__ import annotations

from datetime import datetime

import pytest

from knowledge.consent import build_greeting, objects_to_recording
from knowledge.profile import default_profile_path, load_profile


@pytest.mark.parametrize("text", [
    "Je ne veux pas être enregistré.",
    "je veux pas etre enregistree",
    "N'enregistrez pas cet appel s'il vous plaît.",
    "Je refuse l'enregistrement.",
    "Je m'oppose à l'enregistrement de l'appel.",
    "je m'y oppose",
    "Arrêtez l'enregistrement.",
    "L'enregistrement, non merci.",
    "Please don't record this call.",
    "pas d'enregistrement svp",
])
def test_objections(text: str) -> None:
    assert objects_to_recording(text)


@pytest.mark.parametrize("text", [
    "Je voudrais un rendez-vous.",
    "D'accord, pas de problème pour l'enregistrement.",
    "Vous pouvez enregistrer mon numéro ?",
    "Est-ce que vous avez bien enregistré mon rendez-vous ?",
    "",
])
def test_not_objections(text: str) -> None:
    assert not objects_to_recording(text)


def test_greeting() -> None:
    profile = load_profile(default_profile_path())
    open_greeting = build_greeting(profile, now=datetime(2026, 11, 30, 9, 0))
    assert open_greeting.startswith("Cabinet médical des Tilleuls, bonjour. Cet appel peut être "
                                    "enregistré")
    assert open_greeting.endswith("Que puis-je faire pour vous ?")
    assert "fermé" not in open_greeting
    closed = build_greeting(profile, now=datetime(2026, 11, 29, 10, 0))  # Sunday
    assert "Le cabinet est fermé en ce moment" in closed
