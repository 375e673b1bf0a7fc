"""The practice profile: everything the assistant may say about the practice.

One YAML file per practice (see ``knowledge/practices/demo.yaml`` and
``docs/SAFETY.md``, section "Practice profile"). ``load_profile(path)`` reads it
and validates it completely; any problem raises :class:`ProfileError` naming the
file, the key path (``practitioners[1].schedule.monday[0]``) and what is wrong.

The schema (every key; ``?`` marks optional keys):

``practice``
    ``id`` (slug), ``name``, ``address``, ``phone`` (quoted string), ``access``,
    ``timezone`` (IANA name, e.g. ``Europe/Paris``), ``languages?`` (list of
    ISO codes, default ``[fr]``).
``hours``
    Opening hours of the practice and its secretariat: weekday name (``monday`` ..
    ``sunday``) -> list of ``"HH:MM-HH:MM"`` ranges. Missing weekday = closed.
``closures?``
    List of ``{from: YYYY-MM-DD, to: YYYY-MM-DD, reason}`` (inclusive).
``practitioners``
    List of ``{id, title, first_name, last_name, specialty, sector, schedule,
    keywords?}``; ``schedule`` has the same shape as ``hours`` (when they see
    patients); ``keywords`` are the words callers use for this practitioner's
    specialty (``[dermato, peau, grain de beauté]``).
``appointment_types``
    List of ``{code, label, duration_min, practitioners: [ids], tariff_eur,
    reimbursed, new_patients_only?, follow_up_only?, keywords?, new_patient_type?}``;
    ``keywords`` are how callers ask for this type (``[laser]``, ``[pour mon fils]``);
    ``new_patient_type`` is the type a new patient gets instead of this
    follow-up-only one.
``payments``
    List of accepted means of payment, in French (``carte bancaire``...).
``carte_vitale``
    Whether the carte Vitale is read (true/false).
``tiers_payant?``
    One French sentence about third-party payment (empty = not offered/unknown).
``documents_to_bring?``
    List of documents, in French.
``faq?``
    List of ``{question, answer}`` in French; answers are read out verbatim.
``recording_consent``
    Sentence said at the start of every call.
``policies``
    ``handoff``, ``out_of_hours`` (French sentences), ``emergency_numbers``
    (``{samu, europe, suicide}``), ``cancellation_notice_hours`` (integer).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "WEEKDAYS",
    "AppointmentType",
    "Closure",
    "EmergencyNumbers",
    "FaqEntry",
    "OpeningHours",
    "Policies",
    "PracticeIdentity",
    "PracticeProfile",
    "Practitioner",
    "ProfileError",
    "TimeRange",
    "default_profile_path",
    "load_profile",
    "parse_profile",
]

logger = logging.getLogger(__name__)

WEEKDAYS: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)

_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ProfileError(ValueError):
    """A practice profile is invalid. ``str()`` is ``file: key.path: message``."""

    def __init__(self, message: str, *, file: str | Path | None = None, key: str = "") -> None:
        self.file = str(file) if file is not None else "<profile>"
        self.key = key
        self.reason = message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message)


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    """A half-open time range ``[start, end)`` within one day."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end

    @property
    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class OpeningHours:
    """Weekly hours: for each weekday (0 = Monday) a sorted tuple of ranges."""

    days: tuple[tuple[TimeRange, ...], ...] = field(default_factory=lambda: ((),) * 7)

    def ranges(self, day: date | int) -> tuple[TimeRange, ...]:
        """The ranges of a weekday (0 = Monday) or of a date's weekday."""
        index = day if isinstance(day, int) else day.weekday()
        return self.days[index]

    def is_open_at(self, moment: datetime) -> bool:
        return any(r.contains(moment.time()) for r in self.ranges(moment.date()))

    def is_open_on(self, day: date | int) -> bool:
        return bool(self.ranges(day))


@dataclass(frozen=True)
class Closure:
    """Days the whole practice is closed, inclusive."""

    start: date
    end: date
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class PracticeIdentity:
    id: str
    name: str
    address: str
    phone: str
    access: str
    timezone: str
    languages: tuple[str, ...] = ("fr",)

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Practitioner:
    id: str
    title: str
    first_name: str
    last_name: str
    specialty: str
    sector: str
    schedule: OpeningHours
    keywords: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        """Written form: ``Dr Anne Durand``."""
        return " ".join(p for p in (self.title, self.first_name, self.last_name) if p)

    @property
    def spoken_name(self) -> str:
        """Spoken form: ``le docteur Durand`` (``Dr`` is expanded for speech)."""
        title = self.title.strip().rstrip(".").lower()
        spoken = {"dr": "le docteur", "docteur": "le docteur", "pr": "le professeur",
                  "professeur": "le professeur", "mme": "madame", "m": "monsieur"}.get(title)
        if spoken is None:
            return " ".join(p for p in (self.title, self.first_name, self.last_name) if p)
        return f"{spoken} {self.last_name}"


@dataclass(frozen=True)
class AppointmentType:
    code: str
    label: str
    duration_min: int
    practitioners: tuple[str, ...]
    tariff_eur: float
    reimbursed: bool
    new_patients_only: bool = False
    follow_up_only: bool = False
    keywords: tuple[str, ...] = ()
    new_patient_type: str | None = None


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class EmergencyNumbers:
    samu: str = "15"
    europe: str = "112"
    suicide: str = "3114"


@dataclass(frozen=True)
class Policies:
    handoff: str
    out_of_hours: str
    emergency_numbers: EmergencyNumbers
    cancellation_notice_hours: int


@dataclass(frozen=True)
class PracticeProfile:
    practice: PracticeIdentity
    hours: OpeningHours
    closures: tuple[Closure, ...]
    practitioners: tuple[Practitioner, ...]
    appointment_types: tuple[AppointmentType, ...]
    payments: tuple[str, ...]
    carte_vitale: bool
    tiers_payant: str
    documents_to_bring: tuple[str, ...]
    faq: tuple[FaqEntry, ...]
    recording_consent: str
    policies: Policies
    source: str | None = None

    def practitioner(self, practitioner_id: str) -> Practitioner:
        for p in self.practitioners:
            if p.id == practitioner_id:
                return p
        raise KeyError(f"unknown practitioner id {practitioner_id!r}")

    def appointment_type(self, code: str) -> AppointmentType:
        for a in self.appointment_types:
            if a.code == code:
                return a
        raise KeyError(f"unknown appointment type {code!r}")

    def closure_on(self, day: date) -> Closure | None:
        """The closure covering ``day``, if the practice is closed that day."""
        for c in self.closures:
            if c.covers(day):
                return c
        return None

    def is_open_at(self, moment: datetime) -> bool:
        """Whether the practice is open at ``moment`` (naive = practice local time)."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(self.practice.tzinfo)
        return self.closure_on(moment.date()) is None and self.hours.is_open_at(moment)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class _V:
    """Validation context: the file name, for error messages."""

    def __init__(self, *, file: str) -> None:
        self.file = file

    def fail(self, key: str, message: str) -> ProfileError:
        return ProfileError(message, file=self.file, key=key)

    def mapping(self, value: Any, key: str, *, required: Sequence[str],
                optional: Sequence[str] = ()) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key or "(top level)",
                            f"expected a mapping of keys, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key or "(top level)", f"key {name!r} is not a string")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(_join(key, missing[0]), "missing required key")
        allowed = set(required) | set(optional)
        unknown = sorted(k for k in value if k not in allowed)
        if unknown:
            raise self.fail(_join(key, unknown[0]),
                            f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def text(self, value: Any, key: str, *, allow_empty: bool = False) -> str:
        if value is None and allow_empty:
            return ""
        if not isinstance(value, str):
            hint = " (quote it in YAML)" if isinstance(value, int | float) else ""
            raise self.fail(key, f"expected text, got {_kind(value)}{hint}")
        value = " ".join(value.split())
        if not value and not allow_empty:
            raise self.fail(key, "must not be empty")
        return value

    def slug(self, value: Any, key: str) -> str:
        s = self.text(value, key)
        if not _SLUG_RE.match(s):
            raise self.fail(key, f"{s!r} is not a valid id (lower-case letters, digits, - and _)")
        return s

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_kind(value)}")
        return value

    def integer(self, value: Any, key: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {_kind(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number of euros, got {_kind(value)}")
        if value < 0:
            raise self.fail(key, f"must not be negative, got {value}")
        return float(value)

    def seq(self, value: Any, key: str, *, allow_empty: bool = True) -> list[Any]:
        if value is None and allow_empty:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_kind(value)}")
        if not value and not allow_empty:
            raise self.fail(key, "must not be an empty list")
        return value

    def texts(self, value: Any, key: str, *, allow_empty: bool = True) -> tuple[str, ...]:
        items = self.seq(value, key, allow_empty=allow_empty)
        return tuple(self.text(v, f"{key}[{i}]") for i, v in enumerate(items))

    def day(self, value: Any, key: str) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.fail(key, f"expected a date YYYY-MM-DD, got {value!r}")

    def time_range(self, value: Any, key: str) -> TimeRange:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a time range like \"08:30-12:30\", got {_kind(value)}")
        m = _RANGE_RE.match(value)
        if not m:
            raise self.fail(key, f"{value!r} is not a time range like \"08:30-12:30\"")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        for h, mi, which in ((h1, m1, "start"), (h2, m2, "end")):
            if h > 23 or mi > 59:
                raise self.fail(key, f"{value!r}: {which} time {h:02d}:{mi:02d} does not exist "
                                     "(hours 00-23, minutes 00-59)")
        start, end = time(h1, m1), time(h2, m2)
        if end <= start:
            raise self.fail(key, f"{value!r}: end {end:%H:%M} is not after start {start:%H:%M}")
        return TimeRange(start=start, end=end)

    def week(self, value: Any, key: str) -> OpeningHours:
        if value is None:
            return OpeningHours()
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping weekday -> ranges, got {_kind(value)}")
        days: list[tuple[TimeRange, ...]] = [()] * 7
        for name, ranges in value.items():
            if not isinstance(name, str) or name.strip().lower() not in WEEKDAYS:
                raise self.fail(_join(key, str(name)),
                                f"unknown weekday {name!r} (use: {', '.join(WEEKDAYS)})")
            dkey = _join(key, name)
            parsed = sorted((self.time_range(r, f"{dkey}[{i}]")
                             for i, r in enumerate(self.seq(ranges, dkey))),
                            key=lambda r: r.start)
            for a, b in itertools.pairwise(parsed):
                if b.start < a.end:
                    raise self.fail(dkey, f"ranges {a} and {b} overlap")
            days[WEEKDAYS.index(name.strip().lower())] = tuple(parsed)
        return OpeningHours(days=tuple(days))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text",
             list: "a list", dict: "a mapping", date: "a date", datetime: "a date-time"}
    return names.get(type(value), type(value).__name__)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def parse_profile(data: Any, *, source: str | Path | None = None) -> PracticeProfile:
    """Validate an already-parsed YAML document and build the profile."""
    v = _V(file=str(source) if source is not None else "<profile>")
    top = v.mapping(data, "", required=(
        "practice", "hours", "practitioners", "appointment_types", "payments", "carte_vitale",
        "recording_consent", "policies",
    ), optional=("closures", "tiers_payant", "documents_to_bring", "faq"))

    p = v.mapping(top["practice"], "practice",
                  required=("id", "name", "address", "phone", "access", "timezone"),
                  optional=("languages",))
    tz = v.text(p["timezone"], "practice.timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise v.fail("practice.timezone", f"unknown time zone {tz!r} (e.g. Europe/Paris)") from exc
    languages = v.texts(p.get("languages", ["fr"]), "practice.languages", allow_empty=False)
    identity = PracticeIdentity(
        id=v.slug(p["id"], "practice.id"), name=v.text(p["name"], "practice.name"),
        address=v.text(p["address"], "practice.address"),
        phone=v.text(p["phone"], "practice.phone"), access=v.text(p["access"], "practice.access"),
        timezone=tz, languages=languages)

    hours = v.week(top["hours"], "hours")

    closures = []
    for i, raw in enumerate(v.seq(top.get("closures"), "closures")):
        key = f"closures[{i}]"
        c = v.mapping(raw, key, required=("from", "to"), optional=("reason",))
        start, end = v.day(c["from"], f"{key}.from"), v.day(c["to"], f"{key}.to")
        if end < start:
            raise v.fail(f"{key}.to", f"{end.isoformat()} is before from {start.isoformat()}")
        closures.append(Closure(start=start, end=end,
                                reason=v.text(c.get("reason"), f"{key}.reason", allow_empty=True)))

    practitioners: list[Practitioner] = []
    for i, raw in enumerate(v.seq(top["practitioners"], "practitioners", allow_empty=False)):
        key = f"practitioners[{i}]"
        d = v.mapping(raw, key, required=("id", "last_name", "specialty", "schedule"),
                      optional=("title", "first_name", "sector", "keywords"))
        pid = v.slug(d["id"], f"{key}.id")
        if any(x.id == pid for x in practitioners):
            raise v.fail(f"{key}.id", f"duplicate practitioner id {pid!r}")
        practitioners.append(Practitioner(
            id=pid, title=v.text(d.get("title"), f"{key}.title", allow_empty=True),
            first_name=v.text(d.get("first_name"), f"{key}.first_name", allow_empty=True),
            last_name=v.text(d["last_name"], f"{key}.last_name"),
            specialty=v.text(d["specialty"], f"{key}.specialty"),
            sector=v.text(d.get("sector"), f"{key}.sector", allow_empty=True),
            schedule=v.week(d["schedule"], f"{key}.schedule"),
            keywords=v.texts(d.get("keywords"), f"{key}.keywords")))
    known_ids = [x.id for x in practitioners]

    types: list[AppointmentType] = []
    for i, raw in enumerate(v.seq(top["appointment_types"], "appointment_types",
                                  allow_empty=False)):
        key = f"appointment_types[{i}]"
        d = v.mapping(raw, key, required=("code", "label", "duration_min", "practitioners",
                                          "tariff_eur", "reimbursed"),
                      optional=("new_patients_only", "follow_up_only", "keywords",
                                "new_patient_type"))
        code = v.slug(d["code"], f"{key}.code")
        if any(x.code == code for x in types):
            raise v.fail(f"{key}.code", f"duplicate appointment type code {code!r}")
        refs = v.texts(d["practitioners"], f"{key}.practitioners", allow_empty=False)
        for j, ref in enumerate(refs):
            if ref not in known_ids:
                raise v.fail(f"{key}.practitioners[{j}]",
                             f"unknown practitioner id {ref!r} (known: {', '.join(known_ids)})")
        new_only = v.boolean(d.get("new_patients_only", False), f"{key}.new_patients_only")
        follow_only = v.boolean(d.get("follow_up_only", False), f"{key}.follow_up_only")
        if new_only and follow_only:
            raise v.fail(key, "new_patients_only and follow_up_only cannot both be true")
        types.append(AppointmentType(
            code=code, label=v.text(d["label"], f"{key}.label"),
            duration_min=v.integer(d["duration_min"], f"{key}.duration_min", minimum=5),
            practitioners=refs, tariff_eur=v.number(d["tariff_eur"], f"{key}.tariff_eur"),
            reimbursed=v.boolean(d["reimbursed"], f"{key}.reimbursed"),
            new_patients_only=new_only, follow_up_only=follow_only,
            keywords=v.texts(d.get("keywords"), f"{key}.keywords"),
            new_patient_type=(v.slug(d["new_patient_type"], f"{key}.new_patient_type")
                              if d.get("new_patient_type") is not None else None)))
    codes = [t.code for t in types]
    for i, t in enumerate(types):
        if t.new_patient_type is None:
            continue
        key = f"appointment_types[{i}].new_patient_type"
        if t.new_patient_type not in codes:
            raise v.fail(key, f"unknown appointment type {t.new_patient_type!r} "
                              f"(known: {', '.join(codes)})")
        target = types[codes.index(t.new_patient_type)]
        if target.follow_up_only:
            raise v.fail(key, f"{target.code!r} is follow-up only: a new patient cannot have it")

    faq = []
    for i, raw in enumerate(v.seq(top.get("faq"), "faq")):
        key = f"faq[{i}]"
        d = v.mapping(raw, key, required=("question", "answer"))
        faq.append(FaqEntry(question=v.text(d["question"], f"{key}.question"),
                            answer=v.text(d["answer"], f"{key}.answer")))

    pol = v.mapping(top["policies"], "policies",
                    required=("handoff", "out_of_hours", "emergency_numbers"),
                    optional=("cancellation_notice_hours",))
    en = v.mapping(pol["emergency_numbers"], "policies.emergency_numbers",
                   required=("samu", "europe", "suicide"))
    numbers = EmergencyNumbers(
        **{k: v.text(en[k], f"policies.emergency_numbers.{k}") for k in ("samu", "europe",
                                                                          "suicide")})
    policies = Policies(
        handoff=v.text(pol["handoff"], "policies.handoff"),
        out_of_hours=v.text(pol["out_of_hours"], "policies.out_of_hours"),
        emergency_numbers=numbers,
        cancellation_notice_hours=v.integer(pol.get("cancellation_notice_hours", 24),
                                            "policies.cancellation_notice_hours"))

    return PracticeProfile(
        practice=identity, hours=hours, closures=tuple(closures),
        practitioners=tuple(practitioners), appointment_types=tuple(types),
        payments=v.texts(top["payments"], "payments"),
        carte_vitale=v.boolean(top["carte_vitale"], "carte_vitale"),
        tiers_payant=v.text(top.get("tiers_payant"), "tiers_payant", allow_empty=True),
        documents_to_bring=v.texts(top.get("documents_to_bring"), "documents_to_bring"),
        faq=tuple(faq), recording_consent=v.text(top["recording_consent"], "recording_consent"),
        policies=policies, source=str(source) if source is not None else None)


def load_profile(path: str | Path) -> PracticeProfile:
    """Read and validate a practice profile YAML file; raises :class:`ProfileError`."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ProfileError("file not found", file=file) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the file: {exc}", file=file) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"invalid YAML{where}: {problem}", file=file) from exc
    if data is None:
        raise ProfileError("the file is empty", file=file)
    profile = parse_profile(data, source=file)
    logger.debug("loaded practice profile %s from %s", profile.practice.id, file)
    return profile


def default_profile_path() -> Path:
    """The demo profile shipped with the package (French GP + dermatology/laser practice)."""
    return Path(__file__).resolve().parent / "practices" / "demo.yaml"
