"""The system prompt for the small (1.5B) model acting as the practice's secretary.

Short and stable: everything but the last line depends only on the profile, so
the LLM server's prompt cache is reused across calls (and across days: the date
is the last line). Facts about the practice are NOT in the prompt beyond the
practitioners' names: the model must call the ``practice_info`` tool, whose
answers come from the profile (``knowledge.practice_info``). Safety does not
rely on this prompt: ``knowledge.safety`` runs before the model on every turn.
"""

from __future__ import annotations

from datetime import date

from knowledge.phrasing import say_date, say_practitioner
from knowledge.profile import PracticeProfile

__all__ = ["build_system_prompt", "estimate_tokens"]

_FR = """Tu es la secrétaire téléphonique du cabinet « {name} ». Tu parles à des patients au téléphone.
Médecins : {practitioners}.
Règles :
- Réponds en français, en phrases courtes et parlées, sans liste ni symbole. Une seule question à la fois.
- Ne donne jamais d'avis médical, de diagnostic ni de conseil de traitement : propose un rendez-vous ou un message au médecin.
- N'invente jamais d'information sur le cabinet (horaires, adresse, tarifs, paiement, documents) : appelle l'outil practice_info.
- Urgence vitale : dis d'appeler le {samu}.
- Si tu ne peux pas aider, propose un message (leave_message) ou une secrétaire (transfer_to_human).
Pour un rendez-vous :
1. Demande le motif, et le médecin si ce n'est pas clair.
2. Cherche avec find_slots et propose au plus deux créneaux.
3. Demande le nom et la date de naissance.
4. Récapitule, fais confirmer, puis réserve avec book.
Quand le patient n'a plus besoin de rien, dis au revoir et appelle end_call.
Aujourd'hui : {today}."""

_EN = """You are the phone secretary of the practice "{name}". You speak with patients on the phone.
Doctors: {practitioners}.
Rules:
- Answer in English, in short spoken sentences, no lists or symbols. One question at a time.
- Never give medical advice, a diagnosis or treatment advice: offer an appointment or a message to the doctor.
- Never invent facts about the practice (hours, address, fees, payment, documents): call the practice_info tool.
- Life-threatening emergency: tell them to call {europe} or {samu}.
- If you cannot help, offer a message (leave_message) or a secretary (transfer_to_human).
To book:
1. Ask the reason, and which doctor if unclear.
2. Search with find_slots and offer at most two slots.
3. Ask for the name and date of birth.
4. Sum up, get a yes, then book with book.
When the patient needs nothing else, say goodbye and call end_call.
Today: {today}."""


_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


def _practitioners_fr(profile: PracticeProfile) -> str:
    return " ; ".join(f"{say_practitioner(p.display_name)} ({p.specialty})"
                      for p in profile.practitioners)


def build_system_prompt(profile: PracticeProfile, *, today: date, language: str = "fr") -> str:
    """The system prompt; identical for the same profile, day and language."""
    numbers = profile.policies.emergency_numbers
    if language == "en":
        doctors = "; ".join(f"Dr {p.last_name} ({p.specialty})" for p in profile.practitioners)
        return _EN.format(name=profile.practice.name, practitioners=doctors,
                          samu=numbers.samu, europe=numbers.europe,
                          today=f"{_EN_DAYS[today.weekday()]} {today.day} "
                                f"{_EN_MONTHS[today.month - 1]} {today.year}")
    if language != "fr":
        raise ValueError(f"unsupported prompt language {language!r} (use 'fr' or 'en')")
    return _FR.format(name=profile.practice.name, practitioners=_practitioners_fr(profile),
                      samu=numbers.samu, today=f"{say_date(today)} {today.year}")


def estimate_tokens(text: str) -> int:
    """Rough token count for budgeting without a tokenizer (~3.5 characters per token
    for French with Qwen-style BPE vocabularies; errs on the high side)."""
    return int(len(text) / 3.5) + 1
