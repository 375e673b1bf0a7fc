"""Parameters, results and errors of the booking service (typed, frozen dataclasses).

Expected business failures (slot taken, unknown practitioner in a booking, identity not
verified, database down) come back as statuses in these results; programming errors and
invalid search parameters raise :class:`RecordsError` subclasses with a plain message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

__all__ = [
    "ACTOR_ASSISTANT_PREFIX",
    "ACTOR_STAFF_PREFIX",
    "AbsenceResult",
    "AmbiguousPractitionerError",
    "AppointmentInfo",
    "AppointmentTypeInfo",
    "BookingOutcome",
    "BookingStatus",
    "CancelOutcome",
    "DependentInfo",
    "IdentityCheck",
    "InvalidRequestError",
    "MessageKind",
    "MessageOutcome",
    "PatientDetails",
    "PractitionerInfo",
    "RecordsError",
    "Slot",
    "UnknownAppointmentTypeError",
    "UnknownPractitionerError",
    "VerifiedPatient",
]

ACTOR_ASSISTANT_PREFIX = "assistant:"
ACTOR_STAFF_PREFIX = "staff:"

BookingStatus = Literal["booked", "slot_taken", "invalid", "not_found", "unavailable"]
MessageKind = Literal["callback", "prescription_renewal", "results", "medical_question",
                      "other"]


class RecordsError(ValueError):
    """A request the records service cannot serve; ``str()`` is a plain English reason."""


class UnknownPractitionerError(RecordsError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no practitioner matches {name!r} (known: {', '.join(known)})")


class AmbiguousPractitionerError(RecordsError):
    def __init__(self, name: str, candidates: list[str]) -> None:
        self.name = name
        self.candidates = candidates
        super().__init__(f"{name!r} could be any of: {', '.join(candidates)}")


class UnknownAppointmentTypeError(RecordsError):
    def __init__(self, code: str, known: list[str]) -> None:
        self.code = code
        self.known = known
        super().__init__(f"unknown appointment type {code!r} (known: {', '.join(known)})")


class InvalidRequestError(RecordsError):
    """Impossible dates, empty names, a date range the wrong way round..."""


@dataclass(frozen=True)
class PractitionerInfo:
    id: str
    display_name: str  # "Dr Anne Durand"
    specialty: str
    appointment_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppointmentTypeInfo:
    code: str
    label: str
    duration_min: int
    practitioner_ids: tuple[str, ...]
    new_patients_only: bool = False
    follow_up_only: bool = False


@dataclass(frozen=True)
class Slot:
    """A free slot; ``start``/``end`` are timezone-aware, in the practice's timezone."""

    practitioner_id: str
    practitioner_name: str
    appointment_type: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PatientDetails:
    """Who an appointment is for, as the caller gave it."""

    first_name: str
    last_name: str
    birth_date: date
    phone: str | None = None


@dataclass(frozen=True)
class DependentInfo:
    """A child the verified patient may act for."""

    patient_id: int
    first_name: str
    last_name: str
    birth_date: date


@dataclass(frozen=True)
class VerifiedPatient:
    """Proof that a caller passed the identity check; only the service creates valid ones.

    Pass it back to ``upcoming_appointments``/``cancel``/``reschedule``: the service checks
    ``token`` (an HMAC with a per-service secret), so a forged or altered object is refused.
    """

    patient_id: int
    first_name: str
    last_name: str
    birth_date: date
    dependents: tuple[DependentInfo, ...] = ()
    token: str = field(default="", repr=False)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class IdentityCheck:
    """Result of ``verify_identity``.

    ``status``: ``verified`` (``patient`` set), ``not_verified`` (no patient with this name
    and birth date -- deliberately not saying which part is wrong), ``ambiguous`` (several
    patients match; hand over to staff), ``invalid_date`` (the birth date could not be read
    or does not exist; ``message`` says why), ``unavailable`` (the database is down),
    ``too_many_attempts`` (3 failed checks in this call: no more guessing, hand over).
    """

    status: Literal["verified", "not_verified", "ambiguous", "invalid_date", "unavailable",
                    "too_many_attempts"]
    patient: VerifiedPatient | None = None
    message: str = ""
    birth_date: date | None = None  # what was understood, to read back to the caller


@dataclass(frozen=True)
class BookingOutcome:
    """Result of ``book``/``reschedule``; ``message`` is a short English reason for logs.

    ``status``: ``booked``, ``slot_taken`` (someone else has it, offer another one),
    ``invalid`` (outside opening hours, unknown practitioner, impossible date, identity
    problem...), ``not_found`` (no such appointment for this patient), ``unavailable``
    (the database is down: nothing was booked, the request was kept for the staff).
    """

    status: BookingStatus
    appointment_id: int | None = None
    message: str = ""
    slot: Slot | None = None
    staff_message_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "booked"


@dataclass(frozen=True)
class CancelOutcome:
    status: Literal["cancelled", "not_found", "invalid", "unavailable"]
    appointment_id: int | None = None
    message: str = ""
    late: bool = False  # inside the practice's cancellation notice period


@dataclass(frozen=True)
class MessageOutcome:
    """``saved`` in the database, or ``spooled`` to the fallback file when it is down."""

    status: Literal["saved", "spooled", "invalid"]
    message_id: int | None = None
    message: str = ""


@dataclass(frozen=True)
class AppointmentInfo:
    id: int
    patient_id: int
    patient_name: str
    practitioner_id: str
    practitioner_name: str
    appointment_type: str
    appointment_label: str
    start: datetime
    end: datetime
    status: str
    created_by: str = ""


@dataclass(frozen=True)
class AbsenceResult:
    """A recorded absence and the live appointments it overlaps (to move or cancel)."""

    absence_id: int
    clashing_appointment_ids: tuple[int, ...] = ()

