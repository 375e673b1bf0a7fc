"""Patient lookup, creation and identity matching (inside a caller's session)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from records.models import AuditLog, Patient
from records.names import name_key, similarity
from records.schemas import DependentInfo, PatientDetails, VerifiedPatient

__all__ = [
    "FUZZY_NAME_THRESHOLD",
    "IdentityMatch",
    "PatientTokens",
    "failed_identity_checks",
    "find_or_create_patient",
    "known_patient",
    "match_identity",
    "patient_problem",
    "split_full_name",
    "to_verified",
]

FUZZY_NAME_THRESHOLD = 0.85
_HONORIFICS = frozenset({"monsieur", "madame", "mademoiselle", "mme", "mlle", "mr", "m",
                         "dr", "docteur", "je", "suis", "c", "est", "moi", "mon", "nom"})


class PatientTokens:
    """Signs and checks ``VerifiedPatient`` tokens with a per-service secret."""

    def __init__(self, *, secret: bytes) -> None:
        self._secret = secret

    def sign(self, patient_id: int) -> str:
        return hmac.new(self._secret, str(patient_id).encode(), hashlib.sha256).hexdigest()

    def valid(self, patient: VerifiedPatient) -> bool:
        return hmac.compare_digest(self.sign(patient.patient_id), patient.token or "")


@dataclass(frozen=True)
class IdentityMatch:
    status: str  # "verified" | "not_found" | "mismatch" | "ambiguous"
    patient: Patient | None = None


def _candidate_keys(full_name: str) -> set[str]:
    words = name_key(full_name).split()
    while len(words) > 1 and words[0] in _HONORIFICS:
        words = words[1:]
    key = " ".join(words)
    keys = {key}
    if len(words) >= 2:  # "Girard Paul" said surname first
        keys.add(" ".join(words[1:] + words[:1]))
        keys.add(" ".join(words[-1:] + words[:-1]))
    return keys


async def match_identity(session: AsyncSession, *, full_name: str,
                         birth_date: date) -> IdentityMatch:
    """Find the one patient with this name (tolerant) and exactly this birth date."""
    keys = _candidate_keys(full_name)
    same_birth = (await session.scalars(
        select(Patient).where(Patient.birth_date == birth_date))).all()
    exact = [p for p in same_birth if p.name_key in keys]
    if len(exact) == 1:
        return IdentityMatch("verified", exact[0])
    if len(exact) > 1:
        return IdentityMatch("ambiguous")
    scored = [(max(similarity(k, p.name_key) for k in keys), p) for p in same_birth]
    close = [p for s, p in scored if s >= FUZZY_NAME_THRESHOLD]
    if len(close) == 1:
        return IdentityMatch("verified", close[0])
    if len(close) > 1:
        return IdentityMatch("ambiguous")
    named = (await session.scalars(
        select(Patient.id).where(Patient.name_key.in_(keys)).limit(1))).first()
    return IdentityMatch("mismatch" if named is not None else "not_found")


async def to_verified(session: AsyncSession, patient: Patient,
                      tokens: PatientTokens) -> VerifiedPatient:
    children = (await session.scalars(
        select(Patient).where(Patient.guardian_id == patient.id).order_by(Patient.id))).all()
    return VerifiedPatient(
        patient_id=patient.id, first_name=patient.first_name, last_name=patient.last_name,
        birth_date=patient.birth_date,
        dependents=tuple(DependentInfo(patient_id=c.id, first_name=c.first_name,
                                       last_name=c.last_name, birth_date=c.birth_date)
                         for c in children),
        token=tokens.sign(patient.id))


def split_full_name(full_name: str) -> tuple[str, str]:
    """'Paul Girard' -> ('Paul', 'Girard'); a single word is taken as the last name."""
    words = full_name.split()
    if len(words) == 1:
        return "", words[0]
    return " ".join(words[:-1]), words[-1]


async def find_or_create_patient(session: AsyncSession, details: PatientDetails, *,
                                 now: datetime,
                                 guardian_id: int | None = None) -> tuple[Patient, str]:
    """The patient with exactly this name and birth date, created if new.

    Returns ``(patient, how)`` with ``how`` in ``existing``, ``created``; raises
    ``LookupError`` when the name is on file with another birth date only (a likely
    misheard date: staff must check rather than a duplicate record being made).
    """
    key = name_key(f"{details.first_name} {details.last_name}")
    rows = (await session.scalars(select(Patient).where(Patient.name_key == key))).all()
    for p in rows:
        if p.birth_date == details.birth_date:
            if details.phone and not p.phone:
                p.phone = details.phone
            return p, "existing"
    if rows:
        raise LookupError("a patient with this name is on file with another birth date")
    # a misheard name with the right birth date: the one close name on file, not a duplicate
    said = f"{details.first_name} {details.last_name}"
    same_birth = (await session.scalars(
        select(Patient).where(Patient.birth_date == details.birth_date))).all()
    close = [p for p in same_birth if similarity(said, p.full_name) >= FUZZY_NAME_THRESHOLD]
    if len(close) == 1:
        if details.phone and not close[0].phone:
            close[0].phone = details.phone
        return close[0], "existing"
    patient = Patient(first_name=details.first_name.strip(), last_name=details.last_name.strip(),
                      name_key=key, birth_date=details.birth_date, phone=details.phone,
                      guardian_id=guardian_id, created_at=now.astimezone(UTC))
    session.add(patient)
    await session.flush()
    return patient, "created"


def patient_problem(p: PatientDetails, today: date) -> str | None:
    """Why these details cannot be booked, or None."""
    if not isinstance(p, PatientDetails):
        return "patient details missing"
    if not p.last_name or not p.last_name.strip() or not p.first_name or not p.first_name.strip():
        return "the patient's first and last name are needed"
    if not isinstance(p.birth_date, date):
        return "the patient's birth date is needed"
    if p.birth_date > today:
        return f"birth date {p.birth_date} is in the future"
    if p.birth_date.year < today.year - 125:
        return f"birth date {p.birth_date} is not plausible"
    return None


async def failed_identity_checks(s: AsyncSession, call_id: str) -> int:
    """Failed identity checks already made during this call (from the audit log)."""
    return int(await s.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.call_id == call_id,
        AuditLog.action.in_(["identity.mismatch", "identity.not_found"]))) or 0)


async def known_patient(s: AsyncSession, details: PatientDetails, patient_id: int | None,
                         guardian_id: int | None) -> Patient | None:
    """The record meant: a verified patient's own, or one of the guardian's children
    with this birth date and a close name; None when a lookup/creation is needed."""
    if patient_id is not None:
        return await s.get(Patient, patient_id)
    if guardian_id is None:
        return None
    children = (await s.scalars(select(Patient).where(
        Patient.guardian_id == guardian_id,
        Patient.birth_date == details.birth_date))).all()
    said = f"{details.first_name} {details.last_name}"
    close = [c for c in children if similarity(said, c.full_name) >= FUZZY_NAME_THRESHOLD]
    return close[0] if len(close) == 1 else None
