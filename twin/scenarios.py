"""The scenario suite: scripted patient calls with expected outcomes, checked in the database.

A scenario (YAML, ``evals/scenarios/*.yaml``) is a list of patient turns, written the way
Whisper transcribes phone speech, and what must follow: the change in the agenda database
(booked / cancelled / rescheduled / message / no_change), the handoff, the actions taken by
the tools (``PracticeTools.actions``), and regexes on what the assistant said.

:func:`run_scenario` plays one scenario at text level against a FRESH seeded SQLite agenda,
so each scenario is independent and its database diff is exact; :func:`run_suite` plays a
list with one LLM for all of them. ``twin eval scenarios`` (``twin.eval_cli``) drives it.

Scenario file format (one file may hold several scenarios)::

    scenarios:
      - id: book-thursday-afternoon
        category: booking
        description: ...
        turns: ["Bonjour, est-ce que le docteur Durand peut recevoir jeudi après midi?", ...]
        wavs: [03_book_thursday_pm.wav, ...]        # optional, audio level
        expect:
          db: booked            # or {outcome: booked, practitioner: durand, weekday: thursday,
                                #     patient: Paul Girard, message_kind: prescription_renewal}
          handoff: false        # false | true (any reason) | a reason | omitted (not checked)
          tools: [find_slots, book]
          forbidden_tools: [cancel_appointment]   # "*": no action at all
          say: ["jeudi"]        # regexes (case-insensitive) that the assistant's words must match
          not_say: ["Girard"]   # regexes they must not match
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from twin.scenario_fixture import ScenarioFixture, parse_fixture, seed_fixture

__all__ = [
    "CATEGORIES",
    "DB_OUTCOMES",
    "DEFAULT_TODAY",
    "DbDiff",
    "DbExpect",
    "Expect",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "SuiteConfig",
    "check_expectations",
    "db_diff",
    "default_fixtures_dir",
    "default_scenarios_dir",
    "load_scenarios",
    "run_audio_scenario",
    "run_scenario",
    "run_suite",
    "snapshot",
    "summarize",
]

logger = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = (
    "booking", "cancel", "reschedule", "practice_info", "prescription", "results", "child",
    "english", "unintelligible", "human_request", "emergency", "medical_advice", "injection",
    "privacy",
)
DB_OUTCOMES: tuple[str, ...] = ("booked", "cancelled", "rescheduled", "message", "no_change")
TOOL_NAMES: tuple[str, ...] = (
    "find_slots", "book", "practice_info", "leave_message", "cancel_appointment",
    "reschedule_appointment", "transfer_to_human", "end_call", "verify_identity",
)
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                             "sunday")
#: A Monday: "demain" is a Tuesday, "jeudi" is 2026-12-03; the demo patients' appointments
#: are seeded 3 to 8 days ahead of it.
DEFAULT_TODAY = date(2026, 11, 30)


class ScenarioError(ValueError):
    """A scenario file that does not follow the format (message names the file and field)."""


@dataclass(frozen=True)
class DbExpect:
    outcome: str  # one of DB_OUTCOMES
    practitioner: str | None = None  # practitioner id of the booked/moved appointment
    weekday: str | None = None  # english lower-case weekday of the booked/moved appointment
    patient: str | None = None  # "First Last" owning the changed appointment
    message_kind: str | None = None  # records message kind (prescription_renewal, results, ...)


@dataclass(frozen=True)
class Expect:
    db: DbExpect
    handoff: bool | str | None = None  # None: not checked; False: none; True: any; str: reason
    tools: tuple[str, ...] = ()
    forbidden_tools: tuple[str, ...] = ()
    say: tuple[str, ...] = ()
    not_say: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    id: str
    category: str
    turns: tuple[str, ...]
    expect: Expect
    description: str = ""
    wavs: tuple[str, ...] = ()
    source: str = ""
    fixture: ScenarioFixture | None = None  # its own practice, patients, clock (or the file's)

    @property
    def emergency(self) -> bool:
        return self.category == "emergency"


@dataclass
class DbDiff:
    """What a call changed in the agenda (appointments and staff messages)."""

    created: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)  # the row after the move
    messages: list[dict[str, Any]] = field(default_factory=list)
    patients_created: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.created or self.cancelled or self.moved or self.messages
                    or self.patients_created)

    def describe(self) -> str:
        if self.empty:
            return "no change"
        parts = [f"{len(v)} {k}" for k, v in (("created", self.created),
                                               ("cancelled", self.cancelled),
                                               ("moved", self.moved), ("messages", self.messages),
                                               ("patients created", self.patients_created)) if v]
        return ", ".join(parts)


@dataclass
class ScenarioResult:
    id: str
    category: str
    passed: bool
    failures: list[str]
    transcript: list[tuple[str, str]]
    actions: list[tuple[str, dict[str, Any], str]]
    handoff: tuple[str, str] | None
    diff: DbDiff
    duration_s: float
    level: str = "text"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["diff"] = asdict(self.diff)
        return out


# -- loading ------------------------------------------------------------------------------

def default_scenarios_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "evals" / "scenarios"


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ScenarioError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _db_expect(raw: Any, where: str) -> DbExpect:
    if isinstance(raw, str):
        raw = {"outcome": raw}
    if not isinstance(raw, dict) or "outcome" not in raw:
        raise ScenarioError(f"{where}.db: expected an outcome ({', '.join(DB_OUTCOMES)}) "
                            "or a mapping with 'outcome'")
    unknown = set(raw) - {"outcome", "practitioner", "weekday", "patient", "message_kind"}
    if unknown:
        raise ScenarioError(f"{where}.db: unknown keys {sorted(unknown)}")
    outcome = raw["outcome"]
    if outcome not in DB_OUTCOMES:
        raise ScenarioError(f"{where}.db: outcome {outcome!r} is not one of {DB_OUTCOMES}")
    weekday = raw.get("weekday")
    if weekday is not None and weekday not in WEEKDAYS:
        raise ScenarioError(f"{where}.db: weekday {weekday!r} is not one of {WEEKDAYS}")
    if raw.get("message_kind") and outcome != "message":
        raise ScenarioError(f"{where}.db: message_kind only goes with outcome 'message'")
    return DbExpect(outcome=outcome, practitioner=raw.get("practitioner"), weekday=weekday,
                    patient=raw.get("patient"), message_kind=raw.get("message_kind"))


def _expect(raw: Any, where: str) -> Expect:
    if not isinstance(raw, dict) or "db" not in raw:
        raise ScenarioError(f"{where}: 'expect' must be a mapping with at least 'db'")
    unknown = set(raw) - {"db", "handoff", "tools", "forbidden_tools", "say", "not_say"}
    if unknown:
        raise ScenarioError(f"{where}: unknown expect keys {sorted(unknown)}")
    handoff = raw.get("handoff")
    if handoff is not None and not isinstance(handoff, bool | str):
        raise ScenarioError(f"{where}.handoff: expected true, false or a reason")
    tools, forbidden = _strs(raw.get("tools"), f"{where}.tools"), _strs(
        raw.get("forbidden_tools"), f"{where}.forbidden_tools")
    for name in (*tools, *forbidden):
        if name not in TOOL_NAMES and name != "*":
            raise ScenarioError(f"{where}: unknown tool {name!r} (tools: {', '.join(TOOL_NAMES)})")
    if set(tools) & set(forbidden) or (tools and "*" in forbidden):
        raise ScenarioError(f"{where}: a tool is both required and forbidden")
    patterns = {}
    for key in ("say", "not_say"):
        patterns[key] = _strs(raw.get(key), f"{where}.{key}")
        for p in patterns[key]:
            try:
                re.compile(p)
            except re.error as exc:
                raise ScenarioError(f"{where}.{key}: bad regex {p!r}: {exc}") from exc
    return Expect(db=_db_expect(raw["db"], where), handoff=handoff, tools=tools,
                  forbidden_tools=forbidden, say=patterns["say"], not_say=patterns["not_say"])


def _scenario(raw: Any, where: str, *, base_dir: Path | None = None,
              file_fixture: ScenarioFixture | None = None) -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: a scenario must be a mapping")
    unknown = set(raw) - {"id", "category", "description", "turns", "wavs", "expect", "fixture"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    sid = raw.get("id")
    if not isinstance(sid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", sid):
        raise ScenarioError(f"{where}: 'id' must be lower-case letters, digits, - or _")
    where = f"{where} ({sid})"
    category = raw.get("category")
    if category not in CATEGORIES:
        raise ScenarioError(f"{where}: category {category!r} is not one of {CATEGORIES}")
    if not isinstance(raw.get("turns"), list):  # [] is a silent call: the caller says nothing
        raise ScenarioError(f"{where}: 'turns' must be a list of patient turns (may be empty)")
    turns = _strs(raw.get("turns"), f"{where}.turns")
    wavs = _strs(raw.get("wavs"), f"{where}.wavs")
    fixture = file_fixture
    if raw.get("fixture") is not None:
        own = parse_fixture(raw["fixture"], where, base_dir=base_dir or Path.cwd(),
                            error=ScenarioError)
        fixture = own.over(file_fixture)
    return Scenario(id=sid, category=category, turns=turns, expect=_expect(raw.get("expect"), where),
                    description=str(raw.get("description") or ""), wavs=wavs, source=where,
                    fixture=fixture)


def load_scenarios(paths: Path | Iterable[Path] | None = None, *,
                   categories: Sequence[str] = ()) -> list[Scenario]:
    """Load and validate scenario files (a folder, files, or the default folder).

    Raises :class:`ScenarioError` on the first malformed file, naming the file and field.
    """
    import yaml

    if paths is None:
        paths = default_scenarios_dir()
    if isinstance(paths, Path):
        paths = sorted(paths.glob("*.yaml")) if paths.is_dir() else [paths]
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise ScenarioError(f"unknown categories {bad}; known: {', '.join(CATEGORIES)}")
    out: list[Scenario] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
        items = data.get("scenarios") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise ScenarioError(f"{path}: expected a mapping with a non-empty 'scenarios' list")
        unknown = set(data) - {"scenarios", "fixture"}
        if unknown:
            raise ScenarioError(f"{path}: unknown top-level keys {sorted(unknown)}")
        base = Path(path).resolve().parent
        shared = (parse_fixture(data["fixture"], Path(path).name, base_dir=base,
                                error=ScenarioError) if data.get("fixture") is not None else None)
        for i, raw in enumerate(items):
            sc = _scenario(raw, f"{Path(path).name}[{i}]", base_dir=base, file_fixture=shared)
            if sc.id in seen:
                raise ScenarioError(f"{sc.source}: id {sc.id!r} already used in {seen[sc.id]}")
            seen[sc.id] = sc.source
            if not categories or sc.category in categories:
                out.append(sc)
    return out


# -- database snapshot and diff --------------------------------------------------------------

async def snapshot(db: Any) -> dict[str, Any]:
    """Appointments, staff messages and patients, as plain rows keyed by id."""
    from sqlalchemy import select

    from records.models import Appointment, Patient, StaffMessage

    async with db.session() as s:
        patients = {p.id: f"{p.first_name} {p.last_name}"
                    for p in (await s.scalars(select(Patient))).all()}
        appts = {a.id: {"id": a.id, "status": a.status, "start": a.start_at,
                        "practitioner": a.practitioner_id, "type": a.appointment_type,
                        "patient": patients.get(a.patient_id, str(a.patient_id)),
                        "created_by": a.created_by}
                 for a in (await s.scalars(select(Appointment))).all()}
        msgs = {m.id: {"id": m.id, "kind": m.kind, "body": m.body, "caller_name": m.caller_name,
                       "urgent": m.urgent, "handled": m.handled_at is not None}
                for m in (await s.scalars(select(StaffMessage))).all()}
    return {"appointments": appts, "messages": msgs, "patients": patients}


def db_diff(before: dict[str, Any], after: dict[str, Any]) -> DbDiff:
    diff = DbDiff()
    old_a, new_a = before["appointments"], after["appointments"]
    for aid, row in sorted(new_a.items()):
        prev = old_a.get(aid)
        if prev is None:
            if row["status"] == "booked":
                diff.created.append(row)
            continue
        if prev["status"] == "booked" and row["status"] != "booked":
            diff.cancelled.append(row)
        elif (prev["start"], prev["practitioner"]) != (row["start"], row["practitioner"]):
            diff.moved.append(row)
    # what the call leaves for the staff: a note it resolved itself (a booking that failed,
    # then was made in the same call) is not a change
    diff.messages = [m for mid, m in sorted(after["messages"].items())
                     if mid not in before["messages"] and not m.get("handled")]
    diff.patients_created = [n for pid, n in sorted(after["patients"].items())
                             if pid not in before["patients"]]
    return diff


# -- checks ----------------------------------------------------------------------------------

def _fold(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", text.lower())
                   if not unicodedata.combining(c))


def _check_row(row: dict[str, Any], exp: DbExpect, tz: Any) -> list[str]:
    out = []
    if exp.practitioner and row["practitioner"] != exp.practitioner:
        out.append(f"appointment with {row['practitioner']}, expected {exp.practitioner}")
    if exp.weekday:
        start = row["start"].astimezone(tz) if tz else row["start"]
        if WEEKDAYS[start.weekday()] != exp.weekday:
            out.append(f"appointment on a {WEEKDAYS[start.weekday()]} ({start:%Y-%m-%d %H:%M}), "
                       f"expected {exp.weekday}")
    if exp.patient and _fold(row["patient"]) != _fold(exp.patient):
        out.append(f"appointment of {row['patient']}, expected {exp.patient}")
    return out


def check_expectations(sc: Scenario, *, diff: DbDiff, actions: Sequence[tuple[str, Any, str]],
                       handoff: tuple[str, str] | None, said: str, tz: Any = None) -> list[str]:
    """Every way the call differs from what the scenario expects (empty: passed)."""
    exp, failures = sc.expect, []
    d = exp.db
    counts = {"created": len(diff.created), "cancelled": len(diff.cancelled),
              "moved": len(diff.moved), "messages": len(diff.messages)}
    wanted = {"booked": "created", "cancelled": "cancelled", "rescheduled": "moved",
              "message": "messages", "no_change": None}[d.outcome]
    for key, n in counts.items():
        if key == wanted:
            if (key == "messages" and n < 1) or (key != "messages" and n != 1):
                failures.append(f"db: expected {d.outcome}, got {diff.describe()}")
        elif n:
            failures.append(f"db: unexpected change ({n} {key}); expected {d.outcome}")
    if d.outcome == "no_change" and diff.patients_created:
        failures.append(f"db: patient records created: {diff.patients_created}")
    rows = {"created": diff.created, "cancelled": diff.cancelled, "moved": diff.moved}
    if wanted in rows and len(rows[wanted]) == 1:
        failures += [f"db: {m}" for m in _check_row(rows[wanted][0], d, tz)]
    if d.message_kind and diff.messages and not any(m["kind"] == d.message_kind
                                                    for m in diff.messages):
        failures.append(f"db: message kinds {[m['kind'] for m in diff.messages]}, "
                        f"expected {d.message_kind}")
    if exp.handoff is False and handoff is not None:
        failures.append(f"handoff: unexpected ({handoff[0]}: {handoff[1][:80]})")
    elif exp.handoff is True and handoff is None:
        failures.append("handoff: expected a handoff to a human, none happened")
    elif isinstance(exp.handoff, str) and (handoff is None or handoff[0] != exp.handoff):
        failures.append(f"handoff: expected {exp.handoff}, got "
                        f"{handoff[0] if handoff else 'none'}")
    names = [a[0] for a in actions]
    for tool in exp.tools:
        if tool not in names:
            failures.append(f"tools: {tool} not called (actions: {names or 'none'})")
    for tool in exp.forbidden_tools:
        if tool == "*" and names:
            failures.append(f"tools: no action allowed, got {names}")
        elif tool in names:
            failures.append(f"tools: forbidden {tool} was called ({[a for a in actions if a[0] == tool]})")
    for pattern in exp.say:
        if not re.search(pattern, said, re.IGNORECASE):
            failures.append(f"say: /{pattern}/ not in the assistant's words")
    for pattern in exp.not_say:
        m = re.search(pattern, said, re.IGNORECASE)
        if m:
            failures.append(f"not_say: /{pattern}/ matched «{said[max(0, m.start() - 40):m.end() + 40]}»")
    return failures


# -- running ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SuiteConfig:
    """What every scenario of one run shares."""

    today: date = field(default=DEFAULT_TODAY, metadata={
        "help": "The date the calls happen on (fixed, so 'jeudi' always means the same day)."})
    now_hour: int = field(default=10, metadata={"help": "Local hour of the calls on that day."})
    profile_path: Path | None = field(default=None, metadata={
        "help": "Practice profile YAML; empty: the demo practice."})
    workdir: Path | None = field(default=None, metadata={
        "help": "Where the per-scenario SQLite agendas go; empty: a temporary folder."})
    policy: str = field(default="rules", metadata={
        "help": "Dialogue policy: rules, model (the twin) or hybrid (voice.policy)."})
    twin_llm: Any = field(default=None, metadata={
        "help": "The twin policy's model (a voice.llm.ChatLLM); empty: the suite's LLM."})


async def run_scenario(sc: Scenario, *, llm: Any, config: SuiteConfig | None = None,
                       workdir: Path | None = None) -> ScenarioResult:
    """Play one scenario at text level against a fresh seeded agenda and check it."""
    from knowledge.profile import default_profile_path, load_profile
    from knowledge.safety import SafetyRules
    from records import BookingService, Database
    from voice.call import VoiceServices, make_agent

    config = config or SuiteConfig()
    fixture = sc.fixture or ScenarioFixture()
    profile_path = fixture.profile or config.profile_path or default_profile_path()
    profile = load_profile(profile_path)
    tz = profile.practice.tzinfo
    now = (fixture.now.replace(tzinfo=tz) if fixture.now is not None else
           datetime.combine(config.today, datetime.min.time(), tzinfo=tz)
           + timedelta(hours=config.now_hour))
    today = now.date()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=workdir or config.workdir) as tmp:
        db = Database(url=f"sqlite+aiosqlite:///{Path(tmp) / 'agenda.db'}")
        try:
            await seed_fixture(db, fixture, profile_path=profile_path, now=now)
            booking = BookingService(db=db, tz=profile.practice.timezone, now=lambda: now,
                                     spool_path=Path(tmp) / "spool.jsonl")
            services = VoiceServices(
                llm=llm, whisper=None, tts_engine=None, booking=booking, profile=profile,
                safety=SafetyRules.load(emergency_numbers=profile.policies.emergency_numbers),
                today=lambda: today, policy=config.policy, twin_llm=config.twin_llm,
                now=lambda: now)
            before = await snapshot(db)
            agent, tools = make_agent(services, call_id=f"eval-{sc.id}",
                                      caller_number=fixture.caller_number)
            # The greeting says whether the practice is open: on the scenario's clock, not
            # the machine's (make_agent has no clock parameter yet).
            from knowledge.consent import build_greeting

            agent._greeting = build_greeting(profile, now=now)
            transcript = [("assistant", agent.greeting())]
            for turn in sc.turns:
                if agent.ended:
                    transcript.append(("note", f"(call already ended; not said: {turn})"))
                    continue
                reply = "".join([p async for p in agent.respond(turn)])
                transcript += [("patient", turn), ("assistant", reply.strip())]
            diff = db_diff(before, await snapshot(db))
        finally:
            await db.dispose()
    handoff = (agent.handoff.reason, agent.handoff.summary) if agent.handoff else None
    said = "\n".join(text for who, text in transcript[1:] if who == "assistant")
    failures = check_expectations(sc, diff=diff, actions=tools.actions, handoff=handoff,
                                  said=said, tz=tz)
    return ScenarioResult(id=sc.id, category=sc.category, passed=not failures, failures=failures,
                          transcript=transcript, actions=list(tools.actions), handoff=handoff,
                          diff=diff, duration_s=time.monotonic() - started)


async def run_suite(scenarios: Sequence[Scenario], *, llm: Any, config: SuiteConfig | None = None,
                    on_result: Callable[[ScenarioResult], None] | None = None
                    ) -> list[ScenarioResult]:
    """Run scenarios one after another (one LLM shared); a crash fails that scenario only."""
    results = []
    for sc in scenarios:
        try:
            result = await run_scenario(sc, llm=llm, config=config)
        except Exception as exc:
            logger.exception("scenario %s crashed", sc.id)
            result = ScenarioResult(id=sc.id, category=sc.category, passed=False,
                                    failures=[f"crashed: {type(exc).__name__}: {exc}"],
                                    transcript=[], actions=[], handoff=None, diff=DbDiff(),
                                    duration_s=0.0)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def summarize(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """Pass counts per category, overall, and for the non-emergency scenarios."""
    per: dict[str, list[int]] = {}
    for r in results:
        per.setdefault(r.category, [0, 0])
        per[r.category][0] += int(r.passed)
        per[r.category][1] += 1

    def rate(p: int, n: int) -> dict[str, Any]:
        return {"passed": p, "total": n, "rate": p / n if n else None}

    non = [r for r in results if r.category != "emergency"]
    return {"categories": {c: rate(*per[c]) for c in CATEGORIES if c in per},
            "overall": rate(sum(r.passed for r in results), len(results)),
            "non_emergency": rate(sum(r.passed for r in non), len(non))}


# -- audio level -----------------------------------------------------------------------------

def default_fixtures_dir() -> Path:
    """The scenario suite's French patient WAVs, inside the repository (``evals/audio``)."""
    return Path(__file__).resolve().parent.parent / "evals" / "audio"


async def run_audio_scenario(sc: Scenario, *, llm_url: str | None = None,
                             llm_model: str | None = None, fixtures: Path | None = None,
                             echo: Callable[[str], None] | None = None,
                             policy: str = "rules", profile: Path | None = None) -> ScenarioResult:
    """Play a scenario's WAVs through the real pipeline (``twin.demo.run_demo``: AudioSocket
    server, caller simulator, Whisper, the agent, TTS) on a fresh demo agenda, and check it.

    The agenda is seeded for today (the runtime's date: a fixture's ``now`` applies at text
    level only) with the scenario's practice and fixture, and read before and after the call,
    so the diff is exact. The call report carries the LLM's tool calls
    only (not the rules' actions), so required ``tools`` are not checked at this level;
    ``forbidden_tools`` are checked against the LLM's calls.
    """
    from knowledge.profile import default_profile_path, load_profile
    from records import Database
    from twin.demo import run_demo
    from twin.settings import Settings

    if not sc.wavs:
        raise ScenarioError(f"{sc.id}: no wavs, cannot run at audio level")
    folder = fixtures or default_fixtures_dir()
    wavs = [folder / w for w in sc.wavs]
    missing = [str(w) for w in wavs if not w.is_file()]
    if missing:
        raise ScenarioError(f"{sc.id}: fixture audio not found: {', '.join(missing)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(None)
        settings.data_dir, settings.database_url = str(Path(tmp) / "run"), None
        settings.recordings_dir = str(Path(tmp) / "recordings")
        settings.policy = policy
        if llm_url:
            settings.llm.base_url = llm_url
        if llm_model:
            settings.llm.model = llm_model
        fixture = sc.fixture or ScenarioFixture()
        if fixture.profile is not None or profile is not None:
            settings.profile = str(fixture.profile or profile)
        profile_path = settings.profile_path or default_profile_path()
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        seeded = Database(url=settings.db_url)
        try:
            now = datetime.now(load_profile(profile_path).practice.tzinfo)
            await seed_fixture(seeded, fixture, profile_path=profile_path, now=now)
            before = await snapshot(seeded)
        finally:
            await seeded.dispose()
        # the simulated caller says a turn once more when asked to, as a person would
        out = await run_demo(settings, wavs=wavs, fresh_db=False, demo_data=False,
                             echo=echo or (lambda _m: None), repeat_when_asked=True)
        after_db = Database(url=settings.db_url)
        try:
            diff = db_diff(before, await snapshot(after_db))
        finally:
            await after_db.dispose()
    report = out["report"]
    transcript = [(str(w), str(t)) for w, t in (report.transcript if report else [])]
    handoff = (report.handoff.reason, report.handoff.summary) if report and report.handoff else None
    llm_actions: list[tuple[str, dict[str, Any], str]] = [
        (c.split("(", 1)[0], {}, "llm") for c in (report.tool_calls if report else [])]
    said = "\n".join(t for w, t in transcript if w != "patient")
    audio_expect = Expect(db=sc.expect.db, handoff=sc.expect.handoff, tools=(),
                          forbidden_tools=sc.expect.forbidden_tools, say=sc.expect.say,
                          not_say=sc.expect.not_say)
    failures = check_expectations(Scenario(id=sc.id, category=sc.category, turns=sc.turns,
                                           expect=audio_expect), diff=diff, actions=llm_actions,
                                  handoff=handoff, said=said)
    if report is None:
        failures.insert(0, "the call produced no report")
    return ScenarioResult(id=sc.id, category=sc.category, passed=not failures, failures=failures,
                          transcript=transcript, actions=llm_actions, handoff=handoff, diff=diff,
                          duration_s=time.monotonic() - started, level="audio")
