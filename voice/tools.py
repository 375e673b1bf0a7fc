"""The tools the LLM may call during a call, and the rules they enforce.

The model only *proposes*: every tool validates its arguments against the agenda
and the call's state, and phrases its result in French itself. A booking needs a
slot the assistant actually offered, a name and a date of birth, and the
patient's explicit agreement to that slot (a "oui" after the offer, or after the
recap the tool asks for); otherwise nothing is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from knowledge.vocabulary import appointment_type_for, practitioner_for, practitioners_sentence
from voice.agent import Handoff, ToolResult
from voice.changes import AppointmentChanges, change_intent
from voice.llm import ToolCall
from voice.tool_schemas import tool_schemas
from voice.understanding import (
    asks_about_someone_else,
    booking_intent,
    extract_identity,
    extract_practitioner,
    fold,
    is_agreement,
    is_goodbye,
    is_refusal,
    mentions_child,
    message_kind,
    opener,
    practice_question_topics,
    resolve_day,
    split_name,
    time_in,
)

__all__ = ["PracticeTools"]

logger = logging.getLogger(__name__)

# what the model may say -> records' message kinds
_MESSAGE_KINDS = {"ordonnance": "prescription_renewal", "resultats": "results", "rappel": "callback",
                  "question": "medical_question", "autre": "other"}


@dataclass
class _State:
    offered: list[Any] = field(default_factory=list)  # records.Slot
    proposed: Any = None
    accepted: bool = False
    pending_booking: dict[str, Any] | None = None
    identity: tuple[str, date] | None = None
    for_child: bool = False  # a parent books for their child
    parent: tuple[str, date] | None = None  # the parent's own name and birth date, if said
    link_child: int | None = None  # appointment of a child waiting for the parent's identity
    message: dict[str, str] | None = None  # a message for the staff being taken
    booked: list[str] = field(default_factory=list)
    rule_turns: int = 0  # turns answered by the rules, without the LLM
    identity_asks: int = 0  # the identity asked again, not understood (a misheard name or date)
    name_heard: str | None = None  # the name of an identity read back for a hearing check
    failed_messages: list[int] = field(default_factory=list)  # staff notes of failed bookings


class PracticeTools:
    """Tools bound to one call: the agenda (``records``) and the practice profile (``knowledge``)."""

    def __init__(self, *, booking: Any, profile: Any, call_id: str,
                 today: Callable[[], date] = date.today, caller_number: str | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self._booking = booking
        self._profile = profile
        self._call_id = call_id
        self._today = today
        self._now = now  # the practice clock for "are you open now?" (None: the real one)
        self._caller_number = caller_number
        self.state = _State()
        #: every action taken, in order: (tool, arguments, "rules" | "llm")
        self.actions: list[tuple[str, dict[str, Any], str]] = []
        self._source = "rules"
        self._last_user_text = ""
        self.changes = AppointmentChanges(booking=booking, profile=profile, call_id=call_id,
                                          today=today, say_slot=self._say_slot, log=self._log,
                                          caller_number=caller_number)

    def _log(self, tool: str, **args: Any) -> None:
        self.actions.append((tool, {k: v for k, v in args.items() if v not in (None, "")}, self._source))

    # -- schema -------------------------------------------------------------------------------
    def schemas(self) -> list[dict[str, Any]]:
        return tool_schemas()

    # -- deterministic turn handling ----------------------------------------------------------
    async def on_user_turn(self, text: str) -> ToolResult | None:
        """The booking core, by rules: fast, exact, and the same on every call.

        Handles a confirmation of a pending booking, the yes/no to an offered slot,
        the name and date of birth once a slot is on the table, a plain booking
        request naming a practitioner or a day, and goodbyes. Anything else (and
        anything these rules are unsure of) goes to the LLM.
        """
        st = self.state
        self._last_user_text = text
        self._source = "rules"
        st.rule_turns += 1
        st.for_child = st.for_child or mentions_child(text)
        agreed = is_agreement(text)
        if self.changes.flow is not None:
            result = await self.changes.on_user_turn(text, agreed, is_refusal(text))
            if result is not None:
                return result
        caller = st.identity[0] if st.identity else None
        if asks_about_someone_else(text, caller=caller):
            self._log("privacy_refusal")
            return ToolResult(content="refused: another person's data",
                              say="Pour des raisons de confidentialité, je ne peux donner aucune "
                                  "information sur le dossier d'une autre personne. Elle peut nous "
                                  "appeler elle-même. Puis-je faire autre chose pour vous ?")
        if st.link_child is not None:
            linked = await self._continue_link(text)
            if linked is not None:
                return linked
        if st.message is not None:
            return await self._continue_message(text)
        kind = message_kind(text) if st.proposed is None else None
        if kind is not None:
            st.message = {"kind": kind, "body": text}
            return await self._continue_message(text)
        intent = change_intent(text)
        if intent is not None and st.proposed is None:
            started = self.changes.start(intent, text)
            identity = extract_identity(text)
            return await self.changes.verify(*identity) if identity else started
        # a bare "Sophie Marchand, née le 3 avril 1990" answering an offered slot is the identity
        identity = extract_identity(text, expecting=st.proposed is not None)
        if identity is None and st.name_heard and st.accepted and st.identity is None:
            identity = self._date_for_name_heard(text)
        if identity is not None and st.proposed is not None and not st.accepted \
                and identity[1] >= self._today():
            identity = None  # "d'accord, jeudi 3 décembre": a day to meet, not a birth date
        if identity is not None:
            if st.for_child and st.identity is not None and st.parent is None \
                    and fold(identity[0]) != fold(st.identity[0]):
                st.parent = st.identity  # the caller said who they are before the child's name
            st.identity = identity
        if st.pending_booking is not None:
            pending, st.pending_booking = st.pending_booking, None
            if agreed:
                st.accepted = True
                return await self._book(**pending)
            if is_refusal(text):
                return ToolResult(content="booking not confirmed", say="D'accord, je n'enregistre "
                                  "rien. Voulez-vous un autre créneau ?")
        if is_goodbye(text) and identity is None:
            return ToolResult(content="call ended", say="Merci de votre appel. Au revoir, bonne journée !",
                              end_call=True)
        if st.proposed is not None and identity is None and st.identity is None:
            asked = self._ask_identity_again(text)
            if asked is not None:
                return asked
        if st.proposed is not None and not st.accepted and identity is None:
            counter = self._counter_offer(text, st.proposed)
            if counter is not None:  # "d'accord, jeudi à 15h": yes, but to another day or time
                return await self._find_slots(practitioner=st.proposed.practitioner_id,
                                              day=counter[0], prefer_time=counter[1])
            if is_refusal(text):  # "non, ça ne m'arrange pas": the next free slot after it
                return await self._next_offer(text)
        if st.proposed is not None:
            if identity is not None:
                name, dob = identity
                return await self._book(name=name, birth_date=dob.isoformat())
            if agreed and not st.accepted:
                st.accepted = True
                if st.for_child and st.identity is not None and st.parent is None:
                    st.parent, st.identity = st.identity, None  # who called, not the patient
                if st.identity is not None:
                    return await self._book(name=st.identity[0], birth_date=st.identity[1].isoformat())
                if st.for_child:
                    return ToolResult(content="slot accepted; the child's identity needed",
                                      say="Très bien. Pouvez-vous me donner le prénom, le nom et "
                                          "la date de naissance de l'enfant ?")
                return ToolResult(content="slot accepted; identity needed",
                                  say="Très bien. Pouvez-vous me donner votre prénom, votre nom et "
                                      "votre date de naissance ?")
        if st.proposed is None and not st.booked:
            opening = opener(text)
            if opening is not None:  # "je suis bien au cabinet ?": the profile's name, then listen
                return ToolResult(content=f"opener: {opening}", say=(
                    f"Oui, c'est bien ici : {self._profile.practice.name}. Je vous écoute."
                    if opening == "reached" else "Oui, je vous écoute."))
        if st.proposed is None:
            topics = practice_question_topics(text)
            if topics:  # facts about the practice come from its profile, never from the model
                return self._practice_info(*topics)
        if st.proposed is None:
            names = [p.last_name for p in getattr(self._profile, "practitioners", [])]
            practitioner = extract_practitioner(text, names)
            if practitioner is not None and practitioner not in names:
                heard = practitioner_for(self._profile, practitioner)  # a misheard name: "Reno" for "Renaud"
                practitioner = heard.last_name if heard is not None else practitioner
            first, last, _part = resolve_day(text, self._today())
            # "le docteur Durand, … la place le 14 à 9h": a practitioner and a day or a time,
            # even when the words around them were misheard, is a request for a slot
            asks_when = first == last or time_in(text) is not None or "place" in fold(text)
            if booking_intent(text) or (practitioner in names and asks_when):
                return await self._find_slots(practitioner=practitioner, day=text, reason=text,
                                              prefer_time=time_in(text))
        st.rule_turns -= 1
        return None

    def _date_for_name_heard(self, text: str) -> tuple[str, date] | None:
        """After a hearing check ("j'ai compris le 4 juin 1968…"), a birth date said alone
        ("né le 4 juin 1978") goes with the name heard just before: checked like any identity."""
        from records.spoken_dates import parse_spoken_date

        born = parse_spoken_date(text)
        name = self.state.name_heard
        return (name, born) if name and born is not None and born < self._today() else None

    def _ask_identity_again(self, text: str) -> ToolResult | None:
        """The slot is accepted (or a birth date given in answer to the offer) but no name and
        date of birth could be read: a misheard "C'est ce filoho" or "né le 22 février 19420".
        Ask again, then hand over to a secretary, rather than let the model improvise."""
        from records.spoken_dates import parse_spoken_date

        st = self.state
        born = parse_spoken_date(text)
        gave_birth_date = born is not None and born < self._today()
        if not (st.accepted or gave_birth_date) or practice_question_topics(text) \
                or is_refusal(text) or "?" in text:
            return None
        st.accepted = True
        st.identity_asks += 1
        self._log("ask_identity_again", attempt=st.identity_asks)
        if st.identity_asks > 2:
            return ToolResult(content="identity not understood", handoff=Handoff(
                "identity", "identity not understood after two requests"),
                say="Je n'arrive pas à bien comprendre votre nom et votre date de naissance. "
                    "Je vous passe une secrétaire, ne quittez pas.")
        whose = ("le prénom, le nom et la date de naissance de l'enfant" if st.for_child
                 else "votre prénom, votre nom et votre date de naissance")
        return ToolResult(content="identity not understood; asked again",
                          say=f"Pardon, je n'ai pas bien compris. Pouvez-vous me redire {whose}, "
                              "s'il vous plaît ?")

    # -- execution ----------------------------------------------------------------------------
    async def execute(self, call: ToolCall) -> ToolResult:
        self._source = "llm"
        args = {k: v for k, v in call.arguments.items() if v not in (None, "")}
        if call.name == "find_slots":
            find_args: dict[str, Any] = {k: str(v) for k, v in args.items()
                                         if k in {"practitioner", "day", "day_part", "reason"}}
            return await self._find_slots(**find_args)
        if call.name == "book":
            return await self._book(**{k: str(v) for k, v in args.items()
                                       if k in {"name", "birth_date", "time", "phone"}})
        if call.name == "practice_info":
            return self._practice_info(str(args.get("topic", "")))
        if call.name == "leave_message":
            return await self._leave_message(**{k: str(v) for k, v in args.items()
                                                if k in {"kind", "message", "name"}})
        if call.name in {"cancel_appointment", "reschedule_appointment"}:
            intent = "cancel" if call.name == "cancel_appointment" else "reschedule"
            self._log(call.name, **args)
            if self.changes.flow is None or self.changes.flow.intent != intent:
                started = self.changes.start(intent, self._last_user_text)
                if not (args.get("name") and args.get("birth_date")):
                    return started
            if self.changes.flow is not None and self.changes.flow.patient is None and args.get("name"):
                return await self.changes.verify(str(args["name"]), str(args.get("birth_date", "")))
            return ToolResult(content="in progress; follow the patient's answers", ok=True)
        if call.name in {"transfer_to_human", "end_call"}:
            self._log(call.name, **args)
        if call.name == "transfer_to_human":
            reason = str(args.get("reason", "demande du patient"))
            return ToolResult(content="transferring", handoff=Handoff("caller_request", reason),
                              say="Je vous passe une secrétaire, ne quittez pas.")
        if call.name == "end_call":
            return ToolResult(content="call ended", say="Merci de votre appel. Au revoir !",
                              end_call=True)
        return ToolResult(content=f"unknown tool {call.name}", ok=False)

    def _say_slot(self, slot: Any) -> str:
        from knowledge.phrasing import say_slot

        return str(say_slot(slot.start, slot.practitioner_name))

    async def _next_offer(self, text: str) -> ToolResult:
        """The offer was declined: the next free slot after it (in the part of the day asked
        for, if any), with the same practitioner."""
        st = self.state
        declined = st.proposed
        _first, _last, part = resolve_day(text, self._today())
        self._log("find_slots", practitioner=declined.practitioner_id, after=declined.start.isoformat())
        slots = await self._booking.find_free_slots(
            practitioner=declined.practitioner_id, appointment_type=declined.appointment_type,
            date_from=declined.start.date(), date_to=declined.start.date() + timedelta(days=21),
            limit=60)
        later = [x for x in slots if x.start > declined.start]
        if part == "evening":
            later = [x for x in later if x.start.hour >= 17] or later
        elif part in {"morning", "afternoon"}:
            later = [x for x in later if (x.start.hour < 12) == (part == "morning")] or later
        if not later:
            st.proposed = None
            return ToolResult(content="no other slot", say="Je n'ai pas d'autre créneau proche. "
                              "Voulez-vous une autre semaine ?")
        st.proposed, st.offered, st.accepted = later[0], later[:3], False
        return ToolResult(content=f"proposé: {later[0].start.isoformat()}",
                          say=f"Je peux vous proposer {self._say_slot(later[0])}. Cela vous convient-il ?")

    def _counter_offer(self, text: str, proposed: Any) -> tuple[str, tuple[int, int] | None] | None:
        """(day words, wanted time) if the caller names a day or time other than the offer."""
        if re.search(r"\b(19|20)\d{2}\b", text):  # a year: a date of birth, not a day to meet
            return None
        first, last, _part = resolve_day(text, self._today())
        hm = time_in(text)
        other_day = first == last and first != proposed.start.date()
        other_time = hm is not None and hm != (proposed.start.hour, proposed.start.minute)
        if not (other_day or other_time):
            return None
        return (text if other_day else proposed.start.date().isoformat()), hm

    async def _find_slots(self, practitioner: str | None = None, day: str | None = None,
                          day_part: str | None = None, reason: str | None = None,
                          prefer_time: tuple[int, int] | None = None) -> ToolResult:
        self._log("find_slots", practitioner=practitioner, day=day, day_part=day_part, reason=reason)
        today = self._today()
        date_from, date_to, part = resolve_day(day, today)
        dp = fold(day_part or "")
        if "apres" in dp:
            part = "afternoon"
        elif "matin" in dp:
            part = "morning"
        elif "soir" in dp:
            part = "evening"
        if not practitioner and reason:  # "un certificat", "pour un grain de beauté"
            implied = practitioner_for(self._profile, reason)
            practitioner = implied.id if implied is not None else None
        kwargs: dict[str, Any] = {"practitioner": practitioner or None, "date_from": date_from,
                                  "date_to": date_to, "limit": 3 if prefer_time is None else 40}
        if part in {"morning", "afternoon"}:
            kwargs["day_part"] = part
        appt_type = self._appointment_type(practitioner, reason)
        if appt_type:
            kwargs["appointment_type"] = appt_type
        from records import RecordsError

        try:
            slots = await self._booking.find_free_slots(**kwargs)
        except RecordsError as exc:
            return ToolResult(content=f"error: {exc}", ok=False,
                              say="Je ne trouve pas ce médecin au cabinet. Vous pouvez voir "
                                  f"{practitioners_sentence(self._profile)}.")
        if part == "evening":
            slots = [s for s in slots if s.start.hour >= 17] or slots
        if not slots and date_from == date_to:
            kwargs["date_from"], kwargs["date_to"] = date_from, date_from + timedelta(days=14)
            slots = await self._booking.find_free_slots(**kwargs)
        st = self.state
        st.offered, st.accepted, st.pending_booking = list(slots), False, None
        if not slots:
            st.proposed = None
            return ToolResult(content="no free slot", say="Je n'ai pas de créneau libre sur cette "
                              "période. Voulez-vous une autre date ?")
        if prefer_time is not None:  # the slot nearest the time asked for, then the next ones
            want = prefer_time[0] * 60 + prefer_time[1]
            slots.sort(key=lambda x: (abs(x.start.hour * 60 + x.start.minute - want), x.start))
            slots = slots[:3]
        st.proposed = slots[0]
        others = ", ".join(f"{s.start:%H:%M}" for s in slots[1:])
        content = f"proposé: {slots[0].start.isoformat()} {slots[0].practitioner_name}; autres: {others}"
        return ToolResult(content=content,
                          say=f"Je peux vous proposer {self._say_slot(slots[0])}. Cela vous convient-il ?")

    def _appointment_type(self, practitioner: str | None, reason: str | None) -> str | None:
        """The type asked for, from the profile's keywords (``knowledge.vocabulary``)."""
        named = practitioner_for(self._profile, practitioner) if practitioner else None
        return appointment_type_for(self._profile, f"{practitioner or ''} {reason or ''}",
                                    named.id if named is not None else None)

    async def _book(self, name: str = "", birth_date: str = "", time: str | None = None,
                    phone: str | None = None) -> ToolResult:
        self._log("book", name=name, birth_date=birth_date, time=time)
        from records import PatientDetails
        from records.spoken_dates import parse_spoken_date

        st = self.state
        if time and st.offered:
            hm = time_in(time)
            chosen = next((s for s in st.offered if hm and (s.start.hour, s.start.minute) == hm), None)
            if chosen is not None and chosen is not st.proposed:
                st.proposed, st.accepted = chosen, False
        if st.proposed is None:
            return ToolResult(content="error: no slot offered yet; call find_slots first", ok=False)
        first, last = split_name(name)
        dob = parse_spoken_date(birth_date) if birth_date else None
        if not last or dob is None:
            return ToolResult(content="error: need the patient's full name and date of birth", ok=False,
                              say="Pour réserver, pouvez-vous me donner votre nom, votre prénom et "
                                  "votre date de naissance ?")
        slot = st.proposed
        if not st.accepted:
            st.pending_booking = {"name": name, "birth_date": birth_date, "phone": phone}
            return ToolResult(content="awaiting the patient's confirmation",
                              say=f"Je récapitule : {self._say_slot(slot)}, au nom de {first} {last}. "
                                  "Je confirme ce rendez-vous ?")
        patient = PatientDetails(first_name=first, last_name=last, birth_date=dob,
                                 phone=phone or self._caller_number)
        outcome = await self._booking.book(practitioner_id=slot.practitioner_id,
                                           appointment_type=slot.appointment_type, start=slot.start,
                                           patient=patient, actor=f"assistant:{self._call_id}",
                                           call_id=self._call_id)
        other = self._other_visit_type(slot, outcome)
        if other is not None:  # first visit vs follow-up: the agenda knows the patient's history
            outcome = await self._booking.book(practitioner_id=slot.practitioner_id,
                                               appointment_type=other, start=slot.start,
                                               patient=patient, actor=f"assistant:{self._call_id}",
                                               call_id=self._call_id)
        if outcome.status == "booked":
            st.booked.append(str(outcome.appointment_id))
            if st.failed_messages:  # "not booked" notes of this call's earlier attempts
                await self._resolve_failed_messages(int(outcome.appointment_id))
            st.proposed, st.offered, st.accepted = None, [], False
            done = f"C'est noté, {first} {last} : rendez-vous {self._say_slot(slot)}."
            if st.for_child:
                ask = await self._child_guardian(int(outcome.appointment_id))
                if ask:
                    return ToolResult(content=f"booked appointment {outcome.appointment_id}; "
                                              "parent's identity asked", say=f"{done} {ask}")
            return ToolResult(content=f"booked appointment {outcome.appointment_id}",
                              say=f"{done} Puis-je faire autre chose pour vous ?")
        if outcome.status == "slot_taken":
            st.proposed, st.accepted = None, False
            rest = [s for s in st.offered if s is not slot]
            if rest:
                st.proposed = rest[0]
                return ToolResult(content="slot taken; proposed another",
                                  say="Ce créneau vient d'être pris. Je peux vous proposer "
                                      f"{self._say_slot(rest[0])}. Cela vous convient-il ?")
            return ToolResult(content="slot taken", say="Ce créneau vient d'être pris. "
                              "Voulez-vous que je cherche un autre jour ?")
        if outcome.status == "unavailable":
            return ToolResult(content="agenda unavailable; request kept for the staff", ok=False,
                              say="Je n'arrive pas à accéder à l'agenda pour le moment. J'ai noté votre "
                                  "demande, le secrétariat vous rappellera pour la confirmer.",
                              handoff=Handoff("bot_failure", "agenda database unavailable"))
        if outcome.staff_message_id is not None:
            st.failed_messages.append(int(outcome.staff_message_id))
        if "birth date" in outcome.message:
            # same name on file with another date of birth: misheard, or someone else. The
            # words must not tell the caller whether anyone is on file: a hearing check.
            st.identity, st.name_heard = None, (st.identity[0] if st.identity else None)
            from knowledge.phrasing import say_date

            return ToolResult(content="please check name and birth date", ok=False,
                              say=f"Je veux être sûre d'avoir bien noté : j'ai compris le "
                                  f"{say_date(dob, with_weekday=False)} {dob.year}. Pouvez-vous me "
                                  "redire votre nom et votre date de naissance, s'il vous plaît ?")
        return ToolResult(content=f"invalid: {outcome.message}", ok=False,
                          say="Je ne peux pas réserver ce créneau. Voulez-vous une autre date ?")

    async def _resolve_failed_messages(self, appointment_id: int) -> None:
        """A booking that failed earlier in this call (a misheard birth date) left a callback
        note for the staff; once the booking is made, that note is marked handled."""
        ids, self.state.failed_messages = self.state.failed_messages, []
        try:
            await self._booking.resolve_messages(
                ids=ids, actor=f"assistant:{self._call_id}", call_id=self._call_id,
                note=f"booked later in the same call (appointment {appointment_id}).")
        except Exception:  # the booking stands; the staff see the note and the booking
            logger.warning("call %s: could not resolve the earlier booking notes",
                           self._call_id, exc_info=True)

    async def _child_guardian(self, appointment_id: int) -> str | None:
        """A parent booked for their child: link the child's record to the parent's (verified)
        one; if the parent has not said who they are, ask (the question to say, or None)."""
        st = self.state
        st.for_child = False
        if st.parent is not None:
            await self._link_parent(appointment_id, *st.parent)
            return None
        status = await self._booking.link_child(appointment_id=appointment_id, guardian=None,
                                                actor=f"assistant:{self._call_id}",
                                                call_id=self._call_id)
        if status != "needed":
            return None
        st.link_child = appointment_id
        return ("Pour relier le dossier de l'enfant au vôtre, pouvez-vous me donner votre "
                "prénom, votre nom et votre date de naissance ?")

    async def _link_parent(self, appointment_id: int, name: str, born: date) -> str:
        check = await self._booking.verify_identity(full_name=name, birth_date=born,
                                                    actor=f"assistant:{self._call_id}",
                                                    call_id=self._call_id)
        self._log("link_guardian", appointment_id=appointment_id)
        if check.status != "verified":
            return "not_verified"
        return str(await self._booking.link_child(
            appointment_id=appointment_id, guardian=check.patient,
            actor=f"assistant:{self._call_id}", call_id=self._call_id))

    async def _continue_link(self, text: str) -> ToolResult | None:
        """The parent's name and birth date, asked after their child's booking."""
        st = self.state
        appointment_id, st.link_child = st.link_child, None
        identity = extract_identity(text, expecting=True)
        if identity is None or appointment_id is None:
            return None
        status = await self._link_parent(appointment_id, *identity)
        say = ("Merci, le dossier de l'enfant est relié au vôtre." if status in {"linked", "already"}
               else "Merci, le secrétariat complètera le dossier de l'enfant.")
        return ToolResult(content=f"guardian {status}", say=f"{say} Puis-je faire autre chose "
                                                            "pour vous ?")

    def _other_visit_type(self, slot: Any, outcome: Any) -> str | None:
        """The follow-up type when a first-visit type was refused (or the reverse)."""
        if outcome.status != "invalid":
            return None
        msg = outcome.message.lower()
        if "new patients only" in msg:
            want_follow_up = True
        elif "already followed" in msg:
            want_follow_up = False
        else:
            return None
        current = next((t for t in getattr(self._profile, "appointment_types", ())
                        if t.code == slot.appointment_type), None)
        if not want_follow_up and current is not None and current.new_patient_type:
            return str(current.new_patient_type)
        for t in getattr(self._profile, "appointment_types", ()):
            if (slot.practitioner_id in t.practitioners and t.code != slot.appointment_type
                    and (t.follow_up_only if want_follow_up else t.new_patients_only)):
                return str(t.code)
        return None

    def _practice_info(self, *topics: str) -> ToolResult:
        from knowledge.practice_info import answer_practice_question

        answers = []
        for topic in topics:
            self._log("practice_info", topic=topic)
            answers.append(answer_practice_question(
                self._profile, topic, now=self._now() if self._now is not None else None))
        answer = " ".join(dict.fromkeys(answers))
        return ToolResult(content=answer, say=answer + " Puis-je vous aider pour autre chose ?")

    async def _leave_message(self, kind: str = "question", message: str = "",
                             name: str | None = None, birth_date: str | None = None) -> ToolResult:
        self._log("leave_message", kind=kind, message=message, name=name)
        records_kind = kind if kind in _MESSAGE_KINDS.values() else _MESSAGE_KINDS.get(
            fold(kind).strip(), "other")
        outcome = await self._booking.leave_message(
            kind=records_kind, body=message or "(vide)", caller_name=name,
            caller_birth_date=birth_date, callback_number=self._caller_number,
            call_id=self._call_id, actor=f"assistant:{self._call_id}")
        if outcome.status == "invalid":
            return ToolResult(content=f"invalid: {outcome.message}", ok=False,
                              say="Je n'ai pas pu enregistrer ce message. Je vous passe une secrétaire.",
                              handoff=Handoff("bot_failure", f"message not saved: {message[:120]}"))
        return ToolResult(content="message saved",
                          say="C'est noté, je transmets votre message au secrétariat, qui vous "
                              "rappellera. Puis-je faire autre chose pour vous ?")

    async def _continue_message(self, text: str) -> ToolResult:
        """Take a message for the staff: the request, then the caller's name and date of birth."""
        st = self.state
        assert st.message is not None
        identity = extract_identity(text, expecting=st.message.get("asked") == "yes")
        if identity is None and st.message.get("asked") != "yes":
            st.message["asked"] = "yes"
            what = {"prescription_renewal": "votre demande de renouvellement",
                    "results": "votre demande au sujet de vos résultats"}.get(
                st.message["kind"], "votre message")
            return ToolResult(content="message: identity needed",
                              say=f"Je transmets {what} au médecin. Pouvez-vous me donner votre prénom, "
                                  "votre nom et votre date de naissance ?")
        message, st.message = st.message, None
        name, dob = identity if identity is not None else ("", None)
        if identity is None:
            message["body"] += f" | {text}"
        return await self._leave_message(kind=message["kind"], message=message["body"],
                                         name=name or None,
                                         birth_date=dob.isoformat() if dob else None)

    def booked_ids(self) -> list[str]:
        return list(self.state.booked)


def now_local() -> datetime:  # pragma: no cover - convenience for callers
    return datetime.now().astimezone()
