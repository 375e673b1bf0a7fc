"""Many calls racing for a handful of slots: each slot is booked exactly once.

Attempts go through several independent ``Database`` objects (separate connection pools,
as separate processes would), so the guarantee must come from the database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from records import BookingService, Database, PatientDetails, seed_demo
from records.models import Appointment

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
ATTEMPTS = 60
SLOTS = [datetime.combine(date(2026, 12, 1), time(9, 0), tzinfo=PARIS) + timedelta(minutes=20 * i)
         for i in range(5)]


async def _race(url: str, tmp_path: Path, *, pools: int) -> None:
    first = Database(url=url)
    await first.migrate()
    await seed_demo(first, today=TODAY)
    await first.dispose()
    dbs = [Database(url=url, pool_size=5) for _ in range(pools)]
    services = [BookingService(db=d, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")
                for d in dbs]

    async def attempt(i: int) -> tuple[int, datetime, str, int | None, str]:
        start = SLOTS[i % len(SLOTS)]
        if i % 7 == 3:  # some callers ask 10 minutes later: overlaps the same slot
            start += timedelta(minutes=10)
        patient = PatientDetails(f"Caller{i}", f"Racer{i}", date(1970, 1, 1) + timedelta(days=i))
        out = await services[i % pools].book(
            practitioner_id="morel", appointment_type="consultation", start=start,
            patient=patient, actor=f"assistant:call-{i}", call_id=f"call-{i}")
        return i, start, out.status, out.appointment_id, out.message

    try:
        results = await asyncio.gather(*(attempt(i) for i in range(ATTEMPTS)))
        statuses = [r[2] for r in results]
        assert set(statuses) <= {"booked", "slot_taken"}, statuses
        assert statuses.count("slot_taken") == ATTEMPTS - statuses.count("booked")
        for _, start, status, appointment_id, message in results:
            if status == "slot_taken":  # a clear outcome: no id, a reason naming the time
                assert appointment_id is None and f"{start:%H:%M}" in message, message
        async with dbs[0].session() as s:
            rows = (await s.scalars(select(Appointment).where(
                Appointment.practitioner_id == "morel", Appointment.status == "booked",
                Appointment.start_at >= SLOTS[0],
                Appointment.start_at < SLOTS[-1] + timedelta(minutes=20)).order_by(
                Appointment.start_at))).all()
        booked_ids = {r[3] for r in results if r[2] == "booked"}
        assert {r.id for r in rows} == booked_ids
        for a, b in pairwise(rows):
            assert a.end_at <= b.start_at, "overlapping appointments"
        assert 3 <= len(rows) <= len(SLOTS)
        # every slot of the window is now either booked or overlapped by a booking
        free = await services[0].find_free_slots(practitioner="morel", date_from=date(2026, 12, 1),
                                                 date_to=date(2026, 12, 1), limit=100)
        assert not [s for s in free if SLOTS[0] <= s.start < SLOTS[-1]]
    finally:
        for d in dbs:
            await d.dispose()


@pytest.mark.postgres
async def test_sixty_calls_race_for_five_slots_postgres(pg_databases, tmp_path: Path) -> None:
    url = await pg_databases.create()
    await _race(url, tmp_path, pools=6)


async def test_sixty_calls_race_for_five_slots_sqlite(tmp_path: Path) -> None:
    await _race(f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}", tmp_path, pools=3)
