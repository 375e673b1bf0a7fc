"""The secretaries' actions (``knowledge.twin_format.ACTIONS``), executed on the call's tools.

The corpus labels each secretary turn with ``find_patient``, ``create_patient``,
``search_slots``, ``book``, ``list_appointments``, ``cancel``, ``move``,
``take_message``, ``give_info``, ``transfer``, ``emergency`` and ``end_call``; the twin
proposes the same actions live. :class:`SecretaryActions` maps them onto the assistant's
operations (``voice.tools.PracticeTools`` for slots, bookings, messages and practice
facts; ``records`` for identity and the caller's own appointments), and gives each result
back twice: words for the caller (phrased from the agenda and the profile, as the rules'
are) and a result in the corpus's shape for the twin's ``tool`` message.

Only what the guard allowed reaches :meth:`SecretaryActions.execute`; :meth:`facts` is
what the guard checks against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from voice.guard import CallFacts
from voice.llm import ToolCall
from voice.results import Handoff, ToolResult

__all__ = ["LEGACY_NAMES", "SecretaryActions", "tool_facts"]

logger = logging.getLogger(__name__)

#: the assistant's own tool for each corpus action it maps onto (``PracticeTools.execute``)
LEGACY_NAMES = {"search_slots": "find_slots", "book": "book", "give_info": "practice_info",
                "take_message": "leave_message", "transfer": "transfer_to_human",
                "end_call": "end_call"}
_DAY_PART = {"morning": "matin", "afternoon": "après-midi"}


def _minute(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M")


class SecretaryActions:
    """One call's corpus actions, on its ``PracticeTools`` and booking service."""

    def __init__(self, *, tools: Any, booking: Any, profile: Any, call_id: str,
                 now: Callable[[], datetime], caller_number: str | None = None,
                 safety: Any = None) -> None:
        self._tools = tools
        self._booking = booking
        self._profile = profile
        self._call_id = call_id
        self._now = now
        self._caller_number = caller_number
        self._safety = safety
        self.verified: Any = None  # records.VerifiedPatient
        self.listed: dict[str, Any] = {}  # appointment id -> records.AppointmentInfo
        self.confirming: str | None = None  # appointment read back for a yes
        self.offered: list[Any] = []  # records.Slot given to the twin

    @property
    def actor(self) -> str:
        return f"assistant:{self._call_id}"

    # -- what the guard sees ------------------------------------------------------------------
    def facts(self, user_text: str, *, legacy: bool = False) -> CallFacts:
        return tool_facts(self._tools, user_text, legacy=legacy, extra_offered=self.offered,
                          listed=self.listed, verified=self.verified, confirming=self.confirming,
                          own_phone=self._caller_number)

    def _log(self, action: str, **args: Any) -> None:
        actions = getattr(self._tools, "actions", None)
        if actions is not None:
            actions.append((action, {k: v for k, v in args.items() if v not in (None, "")}, "llm"))

    # -- execution ----------------------------------------------------------------------------
    async def execute(self, call: ToolCall, *, accepted: bool = False) -> ToolResult:
        """Run one allowed action. ``accepted``: the guard found the caller accepted the slot
        of a ``book`` (otherwise the booking is read back for a yes first)."""
        args = {k: v for k, v in call.arguments.items() if v not in (None, "")}
        handler = getattr(self, f"_do_{call.name}", None)
        if handler is None:
            return ToolResult(content=f"unknown action {call.name}", ok=False,
                              data={"error": f"unknown action {call.name}"})
        if call.name == "book":
            result: ToolResult = await self._do_book(args, accepted=accepted)
        else:
            result = await handler(args)
        return result

    async def _legacy(self, name: str, args: dict[str, Any]) -> ToolResult:
        result: ToolResult = await self._tools.execute(ToolCall(name, args))
        return result

    async def _do_find_patient(self, args: dict[str, Any]) -> ToolResult:
        from records.spoken_dates import parse_spoken_date

        name, born = str(args.get("name", "")), str(args.get("birth_date", ""))
        self._log("verify_identity", name=name, birth_date=born)
        check = await self._booking.verify_identity(full_name=name, birth_date=born,
                                                    actor=self.actor, call_id=self._call_id)
        if check.status == "verified":
            self.verified = check.patient
            dob = check.patient.birth_date
            self._tools.state.identity = (f"{check.patient.first_name} {check.patient.last_name}",
                                          dob)
            return ToolResult(content="found", data={"found": True,
                                                     "patient_id": str(check.patient.patient_id)})
        if check.status in {"too_many_attempts", "ambiguous", "unavailable"}:
            return ToolResult(content=f"identity {check.status}", ok=False,
                              say="Je ne parviens pas à retrouver votre dossier. Je vous passe une "
                                  "secrétaire, ne quittez pas.",
                              handoff=Handoff("identity", f"identity check failed ({check.status})"),
                              data={"found": False})
        dob_parsed = _iso(born) or parse_spoken_date(born)
        if dob_parsed is not None:  # a new patient can still book: records creates the file
            self._tools.state.identity = (name, dob_parsed)
        return ToolResult(content=f"identity {check.status}", data={"found": False})

    async def _do_create_patient(self, args: dict[str, Any]) -> ToolResult:
        from records.spoken_dates import parse_spoken_date

        name, born = str(args.get("name", "")), str(args.get("birth_date", ""))
        dob = _iso(born) or parse_spoken_date(born)
        self._log("create_patient", name=name, birth_date=born)
        if dob is not None:
            self._tools.state.identity = (name, dob)
        # records creates the patient's file with the first booking (no empty files)
        return ToolResult(content="patient noted; the file is created with the booking",
                          data={"patient_id": "new"})

    async def _do_search_slots(self, args: dict[str, Any]) -> ToolResult:
        day = str(args.get("day") or str(args.get("after", ""))[:10])
        legacy = {"practitioner": args.get("practitioner"), "day": day,
                  "day_part": _DAY_PART.get(str(args.get("part_of_day", ""))),
                  "reason": args.get("appointment_type")}
        result = await self._legacy("find_slots", {k: v for k, v in legacy.items() if v})
        st = self._tools.state
        if st.proposed is not None:
            others = [s for s in st.offered if s is not st.proposed]
            others.sort(key=lambda s: s.start)
            self.offered = [st.proposed, *others[:2]]
        else:
            self.offered = []
        result.data = {"slots": [_minute(s.start) for s in self.offered]}
        return result

    async def _do_book(self, args: dict[str, Any], *, accepted: bool) -> ToolResult:
        st = self._tools.state
        when = str(args.get("start", ""))[:16]
        choices = [s for s in [*self.offered, *st.offered] if _minute(s.start) == when]
        wanted = [s for s in choices if s.practitioner_id == args.get("practitioner")]
        slot = (wanted or choices or [None])[0]
        if slot is None:  # the guard checks this first; kept for a direct caller
            return ToolResult(content="error: slot not offered", ok=False,
                              data={"error": "slot not offered"})
        if st.proposed is not slot:
            st.proposed, st.accepted = slot, False
        st.accepted = st.accepted or accepted
        name, dob = st.identity if st.identity else ("", None)
        before = list(st.booked)
        result = await self._legacy("book", {"name": name,
                                             "birth_date": dob.isoformat() if dob else ""})
        new = [b for b in st.booked if b not in before]
        if new:
            self.offered = []
            result.data = {"appointment_id": new[-1]}
        elif st.pending_booking is not None:  # read back: the twin books again after the yes
            result.data = {"pending": "read back; waiting for the caller's yes"}
        else:
            result.data = {"error": result.content}
        return result

    async def _do_list_appointments(self, args: dict[str, Any]) -> ToolResult:
        from knowledge.phrasing import say_slot

        appts = await self._booking.upcoming_appointments(patient=self.verified)
        self._log("list_appointments", count=len(appts))
        self.listed = {str(a.id): a for a in appts}
        self.confirming = str(appts[0].id) if len(appts) == 1 else None
        data = {"appointments": [{"id": str(a.id), "start": _minute(a.start),
                                  "practitioner": a.practitioner_id,
                                  "appointment_type": a.appointment_type} for a in appts]}
        if not appts:
            return ToolResult(content="no upcoming appointment", data=data,
                              say="Je ne vois pas de rendez-vous à venir à votre nom. Puis-je "
                                  "faire autre chose pour vous ?")
        said = " et ".join(say_slot(a.start, a.practitioner_name) for a in appts[:3])
        ask = " C'est bien celui-là ?" if len(appts) == 1 else " Lequel est concerné ?"
        return ToolResult(content=f"{len(appts)} appointments", data=data,
                          say=f"Vous avez rendez-vous {said}.{ask}")

    def ask_confirmation(self, call: ToolCall) -> ToolResult:
        """The change was proposed before the caller said yes to it: read it back and ask."""
        from knowledge.phrasing import say_slot

        appt_id = str(call.arguments.get("appointment_id", ""))
        appt = self.listed.get(appt_id)
        if appt is None:
            return ToolResult(content="refused", ok=False, data={"error": "not listed"})
        self.confirming = appt_id
        what = say_slot(appt.start, appt.practitioner_name)
        if call.name == "move":
            new = _minute_slot(self.offered, str(call.arguments.get("new_start", "")))
            target = f" {say_slot(new.start, new.practitioner_name)}" if new is not None else ""
            ask = f"Je déplace votre rendez-vous {what}{target} : c'est bien cela ?"
        else:
            ask = f"Votre rendez-vous {what} : je confirme l'annulation ?"
        return ToolResult(content="waiting for the caller's yes", ok=False, say=ask,
                          data={"pending": "read back; waiting for the caller's yes"})

    async def _do_cancel(self, args: dict[str, Any]) -> ToolResult:
        appt_id = str(args.get("appointment_id", ""))
        appt = self.listed[appt_id]
        self._log("cancel_appointment", appointment_id=appt.id)
        out = await self._booking.cancel(appointment_id=appt.id, actor=self.actor,
                                         patient=self.verified, call_id=self._call_id,
                                         reason="patient request by phone")
        self.confirming = None
        if out.status == "cancelled":
            self.listed.pop(appt_id, None)
            self._tools.changes.done.append(("cancelled", appt.id))
            late = " Comme c'est à moins de 24 heures, le secrétariat est prévenu." if out.late else ""
            return ToolResult(content="cancelled", data={"ok": True},
                              say=f"C'est annulé.{late} Puis-je faire autre chose pour vous ?")
        return ToolResult(content=f"cancel {out.status}", ok=False, data={"ok": False},
                          say="Je n'ai pas pu annuler ce rendez-vous. Je vous passe une secrétaire.",
                          handoff=Handoff("bot_failure", f"cancel failed: {out.status}"))

    async def _do_move(self, args: dict[str, Any]) -> ToolResult:
        from knowledge.phrasing import say_slot

        appt_id = str(args.get("appointment_id", ""))
        appt = self.listed[appt_id]
        new = _minute_slot([*self.offered, *self._tools.state.offered],
                           str(args.get("new_start", "")))
        if new is None:
            return ToolResult(content="error: new_start not offered", ok=False,
                              data={"error": "new_start not offered"})
        self._log("reschedule_appointment", appointment_id=appt.id, new_start=new.start.isoformat())
        out = await self._booking.reschedule(appointment_id=appt.id, new_start=new.start,
                                             actor=self.actor, patient=self.verified,
                                             call_id=self._call_id)
        self.confirming = None
        if out.status == "booked":
            self._tools.changes.done.append(("rescheduled", appt.id))
            return ToolResult(content="rescheduled", data={"ok": True},
                              say=f"C'est fait : votre rendez-vous est maintenant "
                                  f"{say_slot(new.start, new.practitioner_name)}. Autre chose ?")
        return ToolResult(content=f"reschedule {out.status}", ok=False, data={"ok": False},
                          say="Je n'ai pas pu déplacer ce rendez-vous. Je vous passe une secrétaire.",
                          handoff=Handoff("bot_failure", f"reschedule failed: {out.status}"))

    async def _do_take_message(self, args: dict[str, Any]) -> ToolResult:
        st = self._tools.state
        name = st.identity[0] if st.identity else None
        result = await self._legacy("leave_message", {
            "kind": str(args.get("kind", "other")),
            "message": str(args.get("summary", "")) or "(vide)",
            **({"name": name} if name else {})})
        result.data = {"ok": result.ok}
        return result

    async def _do_give_info(self, args: dict[str, Any]) -> ToolResult:
        from knowledge.twin_format import info_result

        topic = str(args.get("topic", ""))
        result = await self._legacy("practice_info", {"topic": {"payment": "payments"}.get(
            topic, topic)})
        result.data = info_result(self._profile, topic, now=self._now())
        return result

    async def _do_transfer(self, args: dict[str, Any]) -> ToolResult:
        result = await self._legacy("transfer_to_human",
                                    {"reason": str(args.get("reason", "")) or "demande du patient"})
        result.data = {"answered": False}
        return result

    async def _do_emergency(self, args: dict[str, Any]) -> ToolResult:
        number = str(args.get("number", "15"))
        self._log("emergency", number=number)
        numbers = self._profile.policies.emergency_numbers
        category = "suicide" if number == numbers.suicide else "emergency"
        scripts = getattr(self._safety, "responses_fr", None) or {}
        say = scripts.get(category) or (f"Ce que vous décrivez peut être une urgence. Raccrochez "
                                        f"et appelez immédiatement le {number}.")
        return ToolResult(content="emergency script said", say=say, data={},
                          handoff=Handoff(category, f"{category}: twin, number {number}"))

    async def _do_end_call(self, args: dict[str, Any]) -> ToolResult:
        result = await self._legacy("end_call", {})
        result.data = {}
        return result


def tool_facts(tools: Any, user_text: str, *, legacy: bool = False,
               extra_offered: Sequence[Any] = (), listed: dict[str, Any] | None = None,
               verified: Any = None, confirming: str | None = None,
               own_phone: str | None = None) -> CallFacts:
    """What the guard checks against: the call state of ``voice.tools.PracticeTools`` (slots
    offered, identity given, agreement) and what the secretaries' actions established."""
    st = getattr(tools, "state", None)
    offered = [*extra_offered, *(getattr(st, "offered", None) or [])]
    proposed = getattr(st, "proposed", None)
    if proposed is not None:
        offered.append(proposed)
    listed = listed or {}
    times = {(s.start.hour, s.start.minute) for s in offered}
    times |= {(a.start.hour, a.start.minute) for a in listed.values()}
    return CallFacts(
        user_text=user_text, identity=getattr(st, "identity", None),
        verified_patient=verified.patient_id if verified is not None else None,
        offered=tuple(s.start for s in offered),
        proposed=proposed.start if proposed is not None else None,
        accepted=bool(getattr(st, "accepted", False)), listed=tuple(listed),
        confirming=confirming, agenda_times=tuple(sorted(times)), own_phone=own_phone,
        legacy=legacy)


def _iso(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _minute_slot(slots: list[Any], when: str) -> Any:
    return next((s for s in slots if _minute(s.start) == when[:16]), None)
