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


async def _reschedule_race(url: str, tmp_path: Path) -> None:
    first = Database(url=url)
    await first.migrate()
    await seed_demo(first, today=TODAY)
    setup = BookingService(db=first, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")
    free = await setup.find_free_slots(practitioner="morel", date_from=date(2026, 12, 3),
                                       limit=20)
    ids = []
    for k, slot in enumerate(free):
        out = await setup.book(practitioner_id="morel", appointment_type="consultation",
                               start=slot.start, actor="staff:setup",
                               patient=PatientDetails(f"M{k}", f"Mover{k}", date(1960, 1, 1)))
        assert out.appointment_id is not None
        ids.append(out.appointment_id)
    await first.dispose()
    target = datetime.combine(date(2026, 12, 1), time(15, 0), tzinfo=PARIS)
    dbs = [Database(url=url, pool_size=5) for _ in range(4)]
    services = [BookingService(db=d, now=lambda: NOW, spool_path=tmp_path / "spool.jsonl")
                for d in dbs]
    try:
        outcomes = await asyncio.gather(*(
            services[k % 4].reschedule(appointment_id=i, new_start=target,
                                       actor=f"staff:desk-{k}")
            for k, i in enumerate(ids)))
        statuses = [o.status for o in outcomes]
        assert statuses.count("booked") == 1 and statuses.count("slot_taken") == len(ids) - 1
        async with dbs[0].session() as s:
            at_target = (await s.scalars(select(Appointment).where(
                Appointment.status == "booked", Appointment.start_at == target))).all()
            assert len(at_target) == 1
            # the losers kept their original times
            rows = (await s.scalars(select(Appointment).where(Appointment.id.in_(ids)))).all()
            assert sorted(r.start_at for r in rows if r.start_at != target) == sorted(
                s.start for s in free if s.start not in
                [sl.start for sl, o in zip(free, outcomes, strict=True) if o.ok])
    finally:
        for d in dbs:
            await d.dispose()


@pytest.mark.postgres
async def test_twenty_reschedules_race_for_one_slot_postgres(pg_databases,
                                                            tmp_path: Path) -> None:
    await _reschedule_race(await pg_databases.create(), tmp_path)


async def test_twenty_reschedules_race_for_one_slot_sqlite(tmp_path: Path) -> None:
    await _reschedule_race(f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}", tmp_path)
