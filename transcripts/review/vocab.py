"""The corpus vocabulary (``../shared/corpus/README.md``) the review app labels with, and
the French words staff see for each code."""

from __future__ import annotations

__all__ = ["ACTIONS", "ACTION_LABELS", "CATEGORIES", "CATEGORY_LABELS", "FLAGS", "FLAG_LABELS",
           "OUTCOMES", "OUTCOME_LABELS", "PII_LABELS", "ROLE_LABELS", "SPAN_STATUS_LABELS",
           "SPEAKER_LABELS", "STATES", "STATE_LABELS", "STATE_STATUSES", "state_of"]

# action -> argument names (in the corpus's order)
ACTIONS: dict[str, tuple[str, ...]] = {
    "find_patient": ("name", "birth_date"),
    "create_patient": ("name", "birth_date", "phone", "guardian_of"),
    "search_slots": ("practitioner", "appointment_type", "day", "part_of_day", "after"),
    "book": ("patient_id", "practitioner", "appointment_type", "start"),
    "list_appointments": ("patient_id",),
    "cancel": ("appointment_id",),
    "move": ("appointment_id", "new_start"),
    "take_message": ("kind", "for", "patient_id", "summary"),
    "give_info": ("topic",),
    "transfer": ("to", "reason"),
    "emergency": ("number", "reason"),
    "end_call": (),
}

ACTION_LABELS: dict[str, str] = {
    "find_patient": "chercher le patient", "create_patient": "créer le patient",
    "search_slots": "chercher des créneaux", "book": "prendre le rendez-vous",
    "list_appointments": "lister les rendez-vous", "cancel": "annuler",
    "move": "déplacer", "take_message": "prendre un message", "give_info": "renseigner",
    "transfer": "transférer", "emergency": "urgence", "end_call": "fin d'appel",
}

CATEGORIES = ("booking", "cancel", "reschedule", "message", "info", "emergency",
              "medical_advice", "transfer", "privacy", "wrong_number", "other")
CATEGORY_LABELS: dict[str, str] = {
    "booking": "prise de rendez-vous", "cancel": "annulation", "reschedule": "report",
    "message": "message", "info": "renseignement", "emergency": "urgence",
    "medical_advice": "demande d'avis médical", "transfer": "transfert",
    "privacy": "confidentialité", "wrong_number": "faux numéro", "other": "autre",
}

OUTCOMES = ("booked", "cancelled", "rescheduled", "message_taken", "informed", "transferred",
            "emergency_redirected", "declined", "abandoned", "mixed")
OUTCOME_LABELS: dict[str, str] = {
    "booked": "rendez-vous pris", "cancelled": "annulé", "rescheduled": "déplacé",
    "message_taken": "message pris", "informed": "renseigné", "transferred": "transféré",
    "emergency_redirected": "orienté vers le 15", "declined": "refusé", "abandoned": "abandonné",
    "mixed": "mixte",
}

FLAGS = ("no_identity_check", "no_readback", "medical_advice_given", "red_flag_missed",
         "red_flag_slow", "wrong_info", "too_long", "privacy_breach", "good_example")
FLAG_LABELS: dict[str, str] = {
    "no_identity_check": "identité non vérifiée", "no_readback": "pas de relecture du RDV",
    "medical_advice_given": "avis médical donné", "red_flag_missed": "urgence manquée",
    "red_flag_slow": "urgence traitée lentement", "wrong_info": "information erronée",
    "too_long": "trop long", "privacy_breach": "atteinte à la confidentialité",
    "good_example": "bon exemple",
}

PII_LABELS: dict[str, str] = {
    "person": "nom", "spelled_name": "nom épelé", "birth_date": "date de naissance",
    "phone": "téléphone", "nir": "n° de sécurité sociale", "address": "adresse",
    "email": "e-mail", "health": "santé", "other_id": "autre identifiant",
}

SPEAKER_LABELS: dict[str, str] = {
    "secretary": "Secrétaire", "patient": "Patient", "assistant": "Assistant",
    "unknown": "Inconnu",
}

SPAN_STATUS_LABELS: dict[str, str] = {
    "proposed": "à vérifier", "accepted": "masqué", "rejected": "démasqué",
}

ROLE_LABELS: dict[str, str] = {"reviewer": "relecture", "trainer": "entraînement",
                               "admin": "administration"}

# The review states staff see, and the store statuses behind them.
STATES = ("draft", "corrected", "approved")
STATE_LABELS: dict[str, str] = {"draft": "brouillon", "corrected": "corrigé",
                                "approved": "approuvé"}
STATE_STATUSES: dict[str, tuple[str, ...]] = {
    "draft": ("new", "transcribed", "redacted"),
    "corrected": ("reviewed",),
    "approved": ("approved",),
}


def state_of(status: str) -> str:
    """The review state of a store status (``new``/``transcribed``/``redacted`` -> draft)."""
    for state, statuses in STATE_STATUSES.items():
        if status in statuses:
            return state
    return "draft"
