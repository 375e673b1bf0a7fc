"""Cancelling and moving a caller's own appointment: verified identity, explicit confirmation.

The flow, whoever starts it (the rules on "je veux annuler…", or the LLM's
``cancel_appointment`` / ``reschedule_appointment`` tool):

1. ask for name and date of birth; ``records`` verifies them (and says nothing
   about which part is wrong, nor about any other patient);
2. find the caller's (or their child's) upcoming appointment, using what they
   said ("demain matin avec le docteur Durand") to pick one; read it back;
3. cancel only after an explicit "oui"; to move it, offer a new slot with the
   same practitioner, and move only after an explicit "oui".

Nothing is ever changed for an appointment the verified caller does not own:
``records`` enforces that too, with a signed ``VerifiedPatient``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from voice.agent import Handoff, ToolResult
from voice.understanding import extract_identity, extract_practitioner, fold, resolve_day

__all__ = ["AppointmentChanges", "change_direction", "change_intent"]

logger = logging.getLogger(__name__)


def change_intent(text: str) -> str | None:
    """"cancel", "reschedule" or None."""
    t = fold(text)
    if any(w in t for w in ("annuler", "annule", "annulation", "desister", "ne pourrai pas venir",
                            "ne pourrais pas venir", "ne peux pas venir")):
        return "cancel"
    if any(w in t for w in ("decaler", "deplacer", "reporter", "changer mon rendez", "changer de jour",
                            "changer l heure", "avancer mon rendez", "modifier mon rendez",
                            "repousser", "repousse")) or (_LATER.search(t) and "rendez" in t):
        return "reschedule"
    return None


_LATER = re.compile(r"\b(repouss\w*|report\w*|plus tard|semaine d apres|semaine suivante|"
                    r"semaine qui suit|mois d apres|mois suivant|apres mon rendez)\b")
_EARLIER = re.compile(r"\b(avancer|avance[rz]?|plus tot|plus vite|plus rapproche)\b")


def change_direction(text: str) -> str | None:
    """"later" ("repousser", "la semaine d'après"), "earlier" ("avancer") or None."""
    t = fold(text)
    if _EARLIER.search(t):
        return "earlier"
    if _LATER.search(t):
        return "later"
    return None


@dataclass
class _Flow:
    intent: str  # "cancel" | "reschedule"
    request: str  # what the caller first said, for the practitioner/day hints
    patient: Any = None  # records.VerifiedPatient
    appointment: Any = None  # records.AppointmentInfo
    new_slot: Any = None  # records.Slot, for a reschedule
    awaiting_yes: bool = False
    awaiting_day: bool = False  # the caller's number is not the patient's: one more proof
    appointments: list[Any] = field(default_factory=list)
    failures: int = 0
    alternatives: list[Any] = field(default_factory=list)


class AppointmentChanges:
    """One call's cancel/reschedule flow. ``PracticeTools`` owns one and delegates to it."""

    def __init__(self, *, booking: Any, profile: Any, call_id: str, today: Any,
                 say_slot: Any, log: Any, caller_number: str | None = None) -> None:
        self._booking = booking
        self._caller_number = caller_number
        self._profile = profile
        self._call_id = call_id
        self._today = today
        self._say_slot = say_slot
        self._log = log
        self.flow: _Flow | None = None
        self.done: list[tuple[str, int]] = []  # ("cancelled" | "rescheduled", appointment id)

    @property
    def actor(self) -> str:
        return f"assistant:{self._call_id}"

    def start(self, intent: str, text: str) -> ToolResult:
        self.flow = _Flow(intent=intent, request=text)
        verb = "annuler" if intent == "cancel" else "déplacer"
        return ToolResult(content=f"{intent} requested; identity needed",
                          say=f"Je peux {verb} votre rendez-vous. Pour cela, pouvez-vous me donner "
                              "votre prénom, votre nom et votre date de naissance ?")

    async def on_user_turn(self, text: str, agreed: bool, refused: bool) -> ToolResult | None:
        flow = self.flow
        if flow is None:
            return None
        if flow.patient is None:
            identity = extract_identity(text, expecting=True)
            if identity is None:
                return None  # let the model (or the next turn) deal with it
            return await self.verify(*identity)
        if flow.awaiting_day:
            return await self._check_day(text)
        if flow.awaiting_yes:
            if agreed:
                return await (self._cancel() if flow.intent == "cancel" else self._move())
            if refused:
                flow.awaiting_yes = False
                if flow.intent == "reschedule" and flow.alternatives:
                    flow.new_slot = flow.alternatives.pop(0)
                    flow.awaiting_yes = True
                    return ToolResult(content="offered another slot",
                                      say=f"Je peux aussi vous proposer {self._say_slot(flow.new_slot)}. "
                                          "Cela vous convient-il ?")
                self.flow = None
                return ToolResult(content="change not confirmed", say="D'accord, je ne change rien. "
                                  "Puis-je faire autre chose pour vous ?")
        return None

    async def verify(self, name: str, birth: date | str) -> ToolResult:
        flow = self.flow
        if flow is None:
            return ToolResult(content="error: no cancel or reschedule in progress", ok=False)
        self._log("verify_identity", name=name, birth_date=str(birth))
        check = await self._booking.verify_identity(full_name=name, birth_date=birth,
                                                    actor=self.actor, call_id=self._call_id)
        if check.status != "verified":
            flow.failures += 1
            if check.status in {"too_many_attempts", "ambiguous", "unavailable"} or flow.failures >= 2:
                self.flow = None
                return ToolResult(content=f"identity {check.status}", ok=False,
                                  say="Je ne parviens pas à retrouver votre dossier. Je vous passe une "
                                      "secrétaire, ne quittez pas.",
                                  handoff=Handoff("identity", f"identity check failed ({check.status})"))
            return ToolResult(content=f"identity {check.status}", ok=False,
                              say="Je ne retrouve pas de dossier avec ces informations. Pouvez-vous me "
                                  "redire votre nom et votre date de naissance ?")
        flow.patient = check.patient
        appointments = await self._booking.upcoming_appointments(patient=check.patient)
        if not appointments:
            self.flow = None
            return ToolResult(content="no upcoming appointment",
                              say="Je ne vois pas de rendez-vous à venir à votre nom. Puis-je faire autre "
                                  "chose pour vous ?")
        flow.appointment = self._pick(appointments, flow.request)
        if not await self._caller_is_on_file(flow):
            first, last, _part = resolve_day(flow.request, self._today())
            if not (first == last and flow.appointment.start.date() == first):
                flow.awaiting_day, flow.appointments = True, list(appointments)
                return ToolResult(content="caller's number is not the patient's; day asked",
                                  say="Pour votre sécurité, pouvez-vous me dire quel jour est "
                                      "prévu ce rendez-vous ?")
        return await self._read_back()

    async def _caller_is_on_file(self, flow: _Flow) -> bool:
        if self._caller_number is None:  # not a phone call (typed text, tests): nothing to compare
            return True
        check = getattr(self._booking, "number_on_file", None)
        return bool(check is not None and await check(patient=flow.patient,
                                                      number=self._caller_number))

    async def _check_day(self, text: str) -> ToolResult | None:
        """The appointment's day, asked when calling from another number than the patient's."""
        flow = self.flow
        assert flow is not None
        first, last, _part = resolve_day(text, self._today())
        if first != last:
            return None  # no day understood: let the model (or the next turn) ask again
        flow.awaiting_day = False
        same_day = [a for a in flow.appointments if a.start.date() == first]
        if not same_day:
            self.flow = None
            self._log("identity_second_check", result="failed")
            return ToolResult(content="second check failed", ok=False,
                              say="Je ne peux pas modifier ce rendez-vous depuis ce numéro. "
                                  "Je vous passe une secrétaire, ne quittez pas.",
                              handoff=Handoff("identity", "second identity check failed"))
        self._log("identity_second_check", result="passed")
        flow.appointment = same_day[0]
        return await self._read_back()

    async def _read_back(self) -> ToolResult:
        flow = self.flow
        assert flow is not None
        what = self._say_slot(flow.appointment)
        if flow.intent == "cancel":
            flow.awaiting_yes = True
            return ToolResult(content=f"found appointment {flow.appointment.id}",
                              say=f"Vous avez rendez-vous {what}. Je confirme l'annulation ?")
        return await self._offer_new_slot(what)

    def _pick(self, appointments: list[Any], request: str) -> Any:
        """The appointment the caller meant: by practitioner and day if they said so."""
        names = [p.last_name for p in getattr(self._profile, "practitioners", [])]
        wanted_pr = extract_practitioner(request, names)
        first, last, _part = resolve_day(request, self._today())
        said_day = first == last
        best = appointments[0]
        for appt in sorted(appointments, key=lambda a: a.start):
            ok_pr = not wanted_pr or fold(wanted_pr) in fold(appt.practitioner_name)
            ok_day = not said_day or appt.start.date() == first
            if ok_pr and ok_day:
                return appt
            if ok_pr:
                best = appt
        return best

    async def _offer_new_slot(self, what: str) -> ToolResult:
        flow = self.flow
        assert flow is not None and flow.appointment is not None
        appt = flow.appointment
        direction = change_direction(flow.request)
        start = max(self._today() + timedelta(days=1), appt.start.date() - timedelta(days=3))
        if direction == "later":  # "repousser", "la semaine d'après": never earlier
            start = appt.start.date()
            if re.search(r"semaine (d apres|suivante|qui suit)", fold(flow.request)):
                start += timedelta(days=7 - appt.start.weekday())
        slots = await self._booking.find_free_slots(practitioner=appt.practitioner_id,
                                                    appointment_type=appt.appointment_type,
                                                    date_from=start, date_to=start + timedelta(days=14),
                                                    limit=4 if direction != "later" else 40)
        slots = [s for s in slots if s.start != appt.start]
        if direction == "later":
            slots = [s for s in slots if s.start >= appt.start + (appt.end - appt.start)][:4]
        elif direction == "earlier":
            slots = [s for s in slots if s.start < appt.start][:4]
        if not slots:
            self.flow = None
            return ToolResult(content="no slot to move to",
                              say=f"Vous avez rendez-vous {what}, mais je n'ai pas d'autre créneau "
                                  "proche. Je transmets votre demande au secrétariat.",
                              handoff=Handoff("no_slot", "reschedule: no free slot nearby"))
        flow.new_slot, flow.alternatives = slots[0], slots[1:]
        flow.awaiting_yes = True
        return ToolResult(content=f"found appointment {appt.id}; offered {slots[0].start.isoformat()}",
                          say=f"Vous avez rendez-vous {what}. Je peux le déplacer "
                              f"{self._say_slot(flow.new_slot)}. Cela vous convient-il ?")

    async def _cancel(self) -> ToolResult:
        flow = self.flow
        assert flow is not None
        self.flow = None
        self._log("cancel_appointment", appointment_id=flow.appointment.id)
        out = await self._booking.cancel(appointment_id=flow.appointment.id, actor=self.actor,
                                         patient=flow.patient, call_id=self._call_id,
                                         reason="patient request by phone")
        if out.status == "cancelled":
            self.done.append(("cancelled", flow.appointment.id))
            late = " Comme c'est à moins de 24 heures, le secrétariat est prévenu." if out.late else ""
            return ToolResult(content="cancelled", say=f"C'est annulé.{late} Puis-je faire autre chose "
                              "pour vous ?")
        return ToolResult(content=f"cancel {out.status}: {out.message}", ok=False,
                          say="Je n'ai pas pu annuler ce rendez-vous. Je vous passe une secrétaire.",
                          handoff=Handoff("bot_failure", f"cancel failed: {out.status}"))

    async def _move(self) -> ToolResult:
        flow = self.flow
        assert flow is not None
        self.flow = None
        self._log("reschedule_appointment", appointment_id=flow.appointment.id,
                  new_start=flow.new_slot.start.isoformat())
        out = await self._booking.reschedule(appointment_id=flow.appointment.id,
                                             new_start=flow.new_slot.start, actor=self.actor,
                                             patient=flow.patient, call_id=self._call_id)
        if out.status == "booked":
            self.done.append(("rescheduled", flow.appointment.id))
            return ToolResult(content="rescheduled", say=f"C'est fait : votre rendez-vous est "
                              f"maintenant {self._say_slot(flow.new_slot)}. Autre chose ?")
        return ToolResult(content=f"reschedule {out.status}: {out.message}", ok=False,
                          say="Je n'ai pas pu déplacer ce rendez-vous. Je vous passe une secrétaire.",
                          handoff=Handoff("bot_failure", f"reschedule failed: {out.status}"))
