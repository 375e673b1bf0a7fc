"""The tools offered to the LLM, as OpenAI-style function schemas (French descriptions: the
model reads them in the language of the call). ``voice.tools.PracticeTools`` executes them."""

from __future__ import annotations

from typing import Any

__all__ = ["tool_schemas"]


def _schema(name: str, description: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": props, "required": required or []}}}


def tool_schemas() -> list[dict[str, Any]]:
    """find_slots, book, practice_info, leave_message, cancel/reschedule, transfer, end_call."""
    from knowledge.practice_info import TOPICS

    return [
        _schema("find_slots", "Cherche les créneaux libres dans l'agenda.", {
            "practitioner": {"type": "string", "description": "Nom du médecin demandé, sinon vide"},
            "day": {"type": "string", "description": "Jour demandé, mots du patient (jeudi, le 14, semaine prochaine)"},
            "day_part": {"type": "string", "enum": ["matin", "après-midi", "soir"]},
            "reason": {"type": "string", "description": "Motif court, avec les mots du patient"},
        }),
        _schema("book", "Réserve le créneau proposé, une fois le nom et la date de naissance connus.", {
            "name": {"type": "string", "description": "Prénom et nom du patient"},
            "birth_date": {"type": "string", "description": "Date de naissance, mots du patient"},
            "time": {"type": "string", "description": "Heure choisie si différente du créneau proposé"},
        }, ["name", "birth_date"]),
        _schema("practice_info", "Informations sur le cabinet : horaires, adresse, tarifs, etc.", {
            "topic": {"type": "string", "enum": list(TOPICS)},
        }, ["topic"]),
        _schema("leave_message", "Laisse un message au secrétariat (ordonnance, résultats, rappel).", {
            "kind": {"type": "string", "enum": ["ordonnance", "resultats", "rappel", "question"]},
            "message": {"type": "string"},
            "name": {"type": "string"},
        }, ["kind", "message"]),
        _schema("cancel_appointment", "Annule le rendez-vous du patient (après vérification).", {
            "name": {"type": "string", "description": "Prénom et nom du patient"},
            "birth_date": {"type": "string", "description": "Date de naissance"},
        }),
        _schema("reschedule_appointment", "Déplace le rendez-vous du patient.", {
            "name": {"type": "string"}, "birth_date": {"type": "string"},
        }),
        _schema("transfer_to_human", "Passe l'appel à une secrétaire.", {
            "reason": {"type": "string"}}),
        _schema("end_call", "Termine l'appel après avoir dit au revoir.", {}),
    ]
