"""Staff messages, call records, absences, the audit helper and actor/patient checks.

The base of :class:`records.service.BookingService` (kept apart to keep modules small).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from records.db import Database
from records.guard import is_unavailable
from records.models import Absence, Appointment, AuditLog, Call, Practitioner, StaffMessage
from records.patients import PatientTokens
from records.schemas import (
    AbsenceResult,
    InvalidRequestError,
    MessageOutcome,
    RecordsError,
    UnknownPractitionerError,
    VerifiedPatient,
)
from records.spool import Spool

__all__ = ["MESSAGE_KINDS", "Journal"]

logger = logging.getLogger(__name__)

MESSAGE_KINDS = ("callback", "prescription_renewal", "results", "medical_question", "other")


class Journal:
    """Messages for the staff, call records and the audit log of one practice."""

    db: Database
    spool: Spool
    _tokens: PatientTokens

    @staticmethod
    def _audit(session: AsyncSession, *, actor: str, action: str, entity: str,
               entity_id: Any, call_id: str | None, details: dict[str, Any]) -> None:
        session.add(AuditLog(at=datetime.now(UTC), actor=actor, call_id=call_id, action=action,
                             entity=entity, entity_id=None if entity_id is None else str(entity_id),
                             details=details))

    @staticmethod
    def _check_actor(actor: str) -> None:
        if not isinstance(actor, str) or ":" not in actor or not actor.split(":", 1)[1]:
            raise InvalidRequestError(
                f"actor {actor!r} must name who acts, e.g. 'assistant:call-42' or 'staff:alice'")

    def _allowed_ids(self, patient: VerifiedPatient) -> set[int]:
        if not isinstance(patient, VerifiedPatient) or not self._tokens.valid(patient):
            raise InvalidRequestError("patient identity was not verified by this service")
        return {patient.patient_id}


    # ------------------------------------------------------------------ messages and calls

    def _new_message(self, s: AsyncSession, *, kind: str, body: str, actor: str,
                     call_id: str | None, caller_name: str | None = None,
                     caller_birth_date: str | None = None, callback_number: str | None = None,
                     patient_id: int | None = None, practitioner_id: str | None = None,
                     urgent: bool = False) -> StaffMessage:
        msg = StaffMessage(kind=kind, body=body, caller_name=caller_name,
                           caller_birth_date=caller_birth_date, callback_number=callback_number,
                           patient_id=patient_id, practitioner_id=practitioner_id, urgent=urgent,
                           created_by=actor, call_id=call_id, created_at=datetime.now(UTC))
        s.add(msg)
        s.add(AuditLog(at=datetime.now(UTC), actor=actor, call_id=call_id,
                       action="message.create", entity="staff_message", entity_id=None,
                       details={"kind": kind, "urgent": urgent}))
        return msg

    async def leave_message(self, *, kind: str, body: str, actor: str,
                            call_id: str | None = None, patient: VerifiedPatient | None = None,
                            caller_name: str | None = None,
                            caller_birth_date: str | None = None,
                            callback_number: str | None = None,
                            practitioner_id: str | None = None,
                            urgent: bool = False) -> MessageOutcome:
        """Leave a message for the staff (no verification needed; nothing is revealed).

        ``kind``: callback, prescription_renewal, results, medical_question or other. If the
        database is down the message goes to the spool file (``status="spooled"``).
        """
        try:
            self._check_actor(actor)
            if kind not in MESSAGE_KINDS:
                raise InvalidRequestError(f"kind must be one of {', '.join(MESSAGE_KINDS)}")
            if not body or not body.strip():
                raise InvalidRequestError("the message is empty")
            patient_id = next(iter(self._allowed_ids(patient))) if patient else None
        except RecordsError as exc:
            return MessageOutcome(status="invalid", message=str(exc))
        fields: dict[str, Any] = {"kind": kind, "body": body.strip(), "caller_name": caller_name,
                  "caller_birth_date": caller_birth_date, "callback_number": callback_number,
                  "patient_id": patient_id, "practitioner_id": practitioner_id,
                  "urgent": urgent}
        try:
            async with self.db.write() as s:
                if practitioner_id and await s.get(Practitioner, practitioner_id) is None:
                    fields["body"] = f"{fields['body']} (for: {practitioner_id})"
                    fields["practitioner_id"] = None
                msg = self._new_message(s, actor=actor, call_id=call_id, **fields)
                await s.flush()
            return MessageOutcome(status="saved", message_id=msg.id, message="message saved")
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            kept = {("message_kind" if k == "kind" else k): v for k, v in fields.items()}
            await self.spool.append("message", {"actor": actor, "call_id": call_id, **kept,
                                                "error": str(exc)[:300]})
            return MessageOutcome(status="spooled", message="database unavailable: message "
                                                            "kept in the spool file for staff")

    async def resolve_messages(self, *, ids: list[int], actor: str, call_id: str,
                               note: str) -> int:
        """Mark messages this call left for the staff as handled, ``note`` saying why ("the
        booking was made later in the same call"): only the actor's own messages of this call;
        nothing is deleted (the audit keeps both steps). Returns how many were resolved."""
        self._check_actor(actor)
        if not ids:
            return 0
        async with self.db.write() as s:
            rows = (await s.scalars(select(StaffMessage).where(
                StaffMessage.id.in_(ids), StaffMessage.call_id == call_id,
                StaffMessage.created_by == actor, StaffMessage.handled_at.is_(None)))).all()
            now = datetime.now(UTC)
            for msg in rows:
                msg.handled_at = now
                msg.body = f"{msg.body} Resolved: {note}"
                self._audit(s, actor=actor, action="message.resolve", entity="staff_message",
                            entity_id=msg.id, call_id=call_id, details={"note": note})
        return len(rows)

    async def start_call(self, *, call_id: str, caller_number: str | None = None,
                         actor: str = "assistant:telephony") -> bool:
        """Record the start of a call (idempotent). False if the database is down."""
        return await self._call_write(call_id, actor, "call.start", {
            "caller_number": caller_number}, caller_number=caller_number)

    async def end_call(self, *, call_id: str, outcome: str, handoff_reason: str | None = None,
                       summary: str | None = None, patient_id: int | None = None,
                       actor: str = "assistant:telephony") -> bool:
        """Record how a call ended (``booked``, ``message``, ``handoff``, ``hangup``...)."""
        return await self._call_write(call_id, actor, "call.end", {
            "outcome": outcome, "handoff_reason": handoff_reason}, outcome=outcome,
            handoff_reason=handoff_reason, summary=summary, patient_id=patient_id)

    async def _call_write(self, call_id: str, actor: str, action: str,
                          details: dict[str, Any], **values: Any) -> bool:
        try:
            async with self.db.write() as s:
                call = await s.get(Call, call_id)
                now = datetime.now(UTC)
                if call is None:
                    call = Call(id=call_id, started_at=now)
                    s.add(call)
                if action == "call.end":
                    call.ended_at = now
                for key, value in values.items():
                    if value is not None:
                        setattr(call, key, value)
                self._audit(s, actor=actor, action=action, entity="call", entity_id=call_id,
                            call_id=call_id, details=details)
            return True
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.spool.append(action, {"call_id": call_id, **details, **{
                k: v for k, v in values.items() if k != "patient_id"}})
            return False

    async def forget_call(self, *, call_id: str, actor: str = "assistant:telephony") -> bool:
        """The caller objected to recording: drop what the call record keeps in free text
        (summary, caller number); the audit keeps that an objection happened."""
        try:
            async with self.db.write() as s:
                call = await s.get(Call, call_id)
                if call is not None:
                    call.summary, call.caller_number = None, None
                audits = (await s.scalars(select(AuditLog).where(
                    AuditLog.call_id == call_id, AuditLog.action == "call.start"))).all()
                for row in audits:
                    row.details = {k: v for k, v in (row.details or {}).items()
                                   if k != "caller_number"}
                self._audit(s, actor=actor, action="call.recording_objection", entity="call",
                            entity_id=call_id, call_id=call_id,
                            details={"deleted": ["recording", "transcript", "summary"]})
            return True
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return False

    async def number_on_file(self, *, patient: VerifiedPatient, number: str | None) -> bool:
        """Whether ``number`` (the caller's) is the verified patient's phone number on file
        (or a parent's, for a child): if not, a change needs one more proof."""
        from records.models import Patient

        def digits(value: str | None) -> str:
            d = "".join(c for c in value or "" if c.isdigit())
            return "0" + d[2:] if d.startswith("33") and len(d) == 11 else d

        want = digits(number)
        pid = next(iter(self._allowed_ids(patient)))
        async with self.db.session() as s:
            row = await s.get(Patient, pid)
            guardian = await s.get(Patient, row.guardian_id) if row and row.guardian_id else None
        return bool(want) and any(p is not None and len(want) >= 9 and digits(p.phone) == want
                                  for p in (row, guardian))

    async def link_child(self, *, appointment_id: int, guardian: VerifiedPatient | None,
                         actor: str, call_id: str) -> str:
        """A child booked by a parent in this call: link the child's record to the verified
        parent (``guardian``). Returns ``linked``, ``already`` (the child has a guardian),
        ``needed`` (``guardian`` is None and the child has none) or ``refused``."""
        from datetime import date

        from records.models import Patient

        guardian_id = next(iter(self._allowed_ids(guardian))) if guardian is not None else None
        async with self.db.write() as s:
            appt = await s.get(Appointment, appointment_id)
            child = await s.get(Patient, appt.patient_id) if appt is not None else None
            if appt is None or child is None or appt.call_id != call_id:
                return "refused"
            if child.guardian_id is not None:
                return "already"
            adult = date(child.birth_date.year + 18, child.birth_date.month, 1)
            if guardian_id is None:
                return "needed" if adult > date.today() else "refused"
            if guardian_id == child.id or adult <= date.today():
                return "refused"
            child.guardian_id = guardian_id
            self._audit(s, actor=actor, action="patient.link_guardian", entity="patient",
                        entity_id=child.id, call_id=call_id, details={"guardian_id": guardian_id})
        return "linked"

    async def add_absence(self, *, practitioner_id: str, start: datetime, end: datetime,
                          actor: str, reason: str = "") -> AbsenceResult:
        """Staff: the practitioner is away in [start, end) (aware datetimes); no slot is
        offered or booked then. Existing appointments in that window are returned."""
        self._check_actor(actor)
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidRequestError("absence start and end must be timezone-aware")
        if end <= start:
            raise InvalidRequestError(f"absence end {end} is not after its start {start}")
        async with self.db.write() as s:
            if await s.get(Practitioner, practitioner_id) is None:
                known = list((await s.scalars(select(Practitioner.id))).all())
                raise UnknownPractitionerError(practitioner_id, known)
            await s.execute(select(Practitioner.id).where(
                Practitioner.id == practitioner_id).with_for_update())
            absence = Absence(practitioner_id=practitioner_id, start_at=start, end_at=end,
                              reason=reason)
            s.add(absence)
            await s.flush()
            clashes = tuple((await s.scalars(select(Appointment.id).where(
                Appointment.practitioner_id == practitioner_id,
                Appointment.status == "booked", Appointment.start_at < end,
                Appointment.end_at > start).order_by(Appointment.start_at))).all())
            self._audit(s, actor=actor, action="absence.create", entity="absence",
                        entity_id=absence.id, call_id=None, details={
                            "practitioner": practitioner_id, "start": start.isoformat(),
                            "end": end.isoformat(), "reason": reason,
                            "clashing_appointments": list(clashes)})
        return AbsenceResult(absence_id=absence.id, clashing_appointment_ids=clashes)

    async def import_spool(self, *, actor: str = "staff:spool") -> int:
        """Move what was kept on disk while the database was down into the database:
        messages become staff messages, booking/cancel/reschedule requests become
        ``callback`` messages describing the request (nothing is booked behind the
        caller's back), call records are filled in. One transaction; the spool file is
        then renamed ``*.imported-<time>.jsonl``. Returns the number of entries."""
        self._check_actor(actor)
        entries = await self.spool.read()
        if not entries:
            return 0
        async with self.db.write() as s:
            for e in entries:
                kind = e.get("kind", "")
                if kind in ("call.start", "call.end"):
                    call = await s.get(Call, e["call_id"])
                    if call is None:
                        call = Call(id=e["call_id"], started_at=datetime.fromisoformat(e["at"]))
                        s.add(call)
                    if e.get("caller_number"):
                        call.caller_number = e["caller_number"]
                    if kind == "call.end":
                        call.ended_at = datetime.fromisoformat(e["at"])
                        call.outcome = e.get("outcome") or call.outcome
                        call.handoff_reason = e.get("handoff_reason") or call.handoff_reason
                        call.summary = e.get("summary") or call.summary
                    continue
                if kind == "message":
                    fields: dict[str, Any] = {k: e.get(k) for k in (
                        "body", "caller_name", "caller_birth_date",
                                                    "callback_number", "urgent")}
                    fields["urgent"] = bool(fields.get("urgent"))
                    fields["body"] = fields.get("body") or "(empty message)"
                    msg_kind = e.get("message_kind") or "other"
                else:
                    patient = e.get("patient") or {}
                    fields = {"body": _describe_request(e),
                              "caller_name": " ".join(filter(None, (
                                  patient.get("first_name"), patient.get("last_name")))) or None,
                              "caller_birth_date": patient.get("birth_date"),
                              "callback_number": patient.get("phone"), "urgent": False}
                    msg_kind = "callback"
                self._new_message(s, kind=msg_kind, actor=e.get("actor") or actor,
                                  call_id=e.get("call_id"), **fields)
            s.add(AuditLog(at=datetime.now(UTC), actor=actor, call_id=None,
                           action="spool.import", entity="spool", entity_id=None,
                           details={"entries": len(entries), "file": str(self.spool.path)}))
        await self.spool.archive()
        return len(entries)


def _describe_request(e: dict[str, Any]) -> str:
    kind = e.get("kind", "request").replace("_", " ")
    what = {k: v for k, v in e.items() if k in ("practitioner", "appointment_type", "start",
                                                 "appointment_id", "new_start", "reason")}
    details = ", ".join(f"{k}={v}" for k, v in what.items())
    return (f"Kept while the agenda was unreachable ({e.get('at', '?')}): {kind} ({details}). "
            "Nothing was done; please call the patient back.")

