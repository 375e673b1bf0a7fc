"""Replay of a recorded Radicale REPORT answer: recurring (TZID), all-day and our events."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from records import BookingService, Database
from records.caldav_client import RemoteEvent, parse_multistatus
from records.caldav_sync import CalDavSync

PARIS = ZoneInfo("Europe/Paris")
RECORDED = Path(__file__).parent / "fixtures" / "radicale_report_expand.xml"
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def test_parse_recorded_report() -> None:
    events = parse_multistatus(RECORDED.read_text(encoding="utf-8"), tz=PARIS)
    by_uid: dict[str, list[RemoteEvent]] = {}
    for e in events:
        by_uid.setdefault(e.uid, []).append(e)
    weekly = sorted(by_uid["weekly-staff-meeting"], key=lambda e: e.start)
    assert [e.start.astimezone(PARIS) for e in weekly] == [
        datetime(2026, 12, d, 12, 0, tzinfo=PARIS) for d in (1, 8, 15, 22)]
    assert len({e.key for e in weekly}) == 4  # one key per occurrence
    [day] = by_uid["conference-day"]
    assert day.start == datetime(2026, 12, 4, 0, 0, tzinfo=PARIS)
    assert day.end == datetime(2026, 12, 5, 0, 0, tzinfo=PARIS)
    [ours] = by_uid["twin-appointment-7@secretary-twin"]
    assert ours.appointment_id == 7 and ours.summary.endswith("Paul Girard")


class RecordedCalendar:
    """A ``CalendarClient`` fake answering from the recorded REPORT."""

    def __init__(self) -> None:
        self.events = [e for e in parse_multistatus(RECORDED.read_text("utf-8"), tz=PARIS)
                       if e.appointment_id is None]
        self.put: list[str] = []

    async def put_event(self, uid: str, ics: str) -> str | None:
        self.put.append(uid)
        return None

    async def get_event(self, uid: str) -> RemoteEvent | None:
        return None

    async def delete_event(self, uid: str) -> None:
        return None

    async def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        return [e for e in self.events if e.start < end and e.end > start]


async def test_recorded_busy_blocks_slots(seeded: Database, tmp_path: Path) -> None:
    svc = BookingService(db=seeded, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")
    report = await CalDavSync(db=seeded, calendars={"morel": RecordedCalendar()},
                              now=lambda: NOW).sync_once()
    assert report.busy_added == 5 and report.ok
    conference = await svc.find_free_slots(practitioner="morel", date_from=date(2026, 12, 4),
                                           date_to=date(2026, 12, 4))
    assert conference == []  # all-day event: no slot that day
    tuesday = await svc.find_free_slots(practitioner="morel", date_from=date(2026, 12, 8),
                                        date_to=date(2026, 12, 8), limit=100)
    noon = datetime.combine(date(2026, 12, 8), time(12, 0), tzinfo=PARIS)
    assert tuesday and not [s for s in tuesday if s.end > noon and s.start < noon.replace(minute=30)]
    # idempotent: a second sync imports nothing new
    again = await CalDavSync(db=seeded, calendars={"morel": RecordedCalendar()},
                             now=lambda: NOW).sync_once()
    assert again.busy_added == 0 and again.busy_removed == 0
