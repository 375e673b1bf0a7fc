"""Benchmark of the records service: slot search latency and booking throughput.

    .venv/bin/python bench/bench_records.py                 # SQLite + PostgreSQL if running
    .venv/bin/python bench/bench_records.py --backend sqlite --searches 300

PostgreSQL: ``source scripts/services.sh`` first (uses $TWIN_TEST_PG_URL or var/test-pg-url;
a throw-away database is created and dropped). Prints p50/p95 per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from records import BookingService, Database, PatientDetails, seed_demo

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def line(name: str, ms: list[float], extra: str = "") -> str:
    return (f"  {name:<44} n={len(ms):<5} p50={pct(ms, .5):7.2f} ms  p95={pct(ms, .95):7.2f} ms"
            f"  {extra}")


async def bench(url: str, label: str, searches: int, bookings: int, concurrency: int) -> None:
    db = Database(url=url, pool_size=concurrency)
    await db.migrate()
    await seed_demo(db, today=TODAY)
    svc = BookingService(db=db, now=lambda: NOW, spool_path=Path(tempfile.gettempdir())
                         / "bench-spool.jsonl")
    print(f"\n{label}: {db.safe_url}")

    # Booking throughput: `concurrency` callers book distinct free slots.
    free = await svc.find_free_slots(practitioner="morel", appointment_type="consultation",
                                     limit=bookings)
    queue = list(free)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def caller(k: int) -> None:
        while queue:
            slot = queue.pop()
            t = time.perf_counter()
            out = await svc.book(practitioner_id="morel", appointment_type="consultation",
                                 start=slot.start, actor=f"assistant:bench-{k}",
                                 patient=PatientDetails(f"P{k}", f"Bench{uuid.uuid4().hex[:8]}",
                                                        date(1980, 1, 1)))
            latencies.append((time.perf_counter() - t) * 1000)
            outcomes[out.status] = outcomes.get(out.status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    print(line(f"book, {concurrency} concurrent callers", latencies,
               f"{len(latencies) / wall:6.1f} bookings/s {outcomes}"))

    # Contention: 50 callers race for 5 slots.
    race = (await svc.find_free_slots(practitioner="haddad", appointment_type="dermato_premiere",
                                      limit=5))
    race_ms: list[float] = []
    statuses: list[str] = []

    async def racer(k: int) -> None:
        slot = race[k % len(race)]
        t = time.perf_counter()
        out = await svc.book(practitioner_id="haddad", appointment_type="dermato_premiere",
                             start=slot.start, actor=f"assistant:race-{k}",
                             patient=PatientDetails(f"R{k}", f"Race{uuid.uuid4().hex[:8]}",
                                                    date(1990, 1, 1)))
        race_ms.append((time.perf_counter() - t) * 1000)
        statuses.append(out.status)

    await asyncio.gather(*(racer(k) for k in range(50)))
    print(line("book, 50 callers racing for 5 slots", race_ms,
               f"booked={statuses.count('booked')} slot_taken={statuses.count('slot_taken')}"))

    # Slot search on the now busier agenda.
    rng = random.Random(7)
    queries = [
        ("any practitioner, next slots", {}),
        ("practitioner by spoken name", {"practitioner": "docteur Adad"}),
        ("type + afternoon + weekday", {"appointment_type": "consultation",
                                        "day_part": "afternoon", "weekdays": [3]}),
        ("date range 2 weeks ahead", {"date_from": TODAY + timedelta(days=14),
                                      "date_to": TODAY + timedelta(days=21)}),
    ]
    for name, kwargs in queries:
        ms = []
        for _ in range(searches // len(queries)):
            t = time.perf_counter()
            await svc.find_free_slots(limit=rng.choice([3, 5, 10]), **kwargs)  # type: ignore[arg-type]
            ms.append((time.perf_counter() - t) * 1000)
        print(line(f"find_free_slots: {name}", ms))
    ms = []
    for _ in range(max(10, searches // 4)):
        t = time.perf_counter()
        await svc.verify_identity(full_name="Paul Girard", birth_date="quatre juin 78")
        ms.append((time.perf_counter() - t) * 1000)
    print(line("verify_identity (spoken date)", ms))
    await db.dispose()
    print(f"  (median book latency {statistics.median(latencies):.1f} ms)")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--bookings", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()

    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            await bench(f"sqlite+aiosqlite:///{tmp}/bench.db", "SQLite", args.searches,
                        args.bookings, args.concurrency)
    if args.backend in ("postgres", "both"):
        url = os.environ.get("TWIN_TEST_PG_URL")
        f = ROOT / "var" / "test-pg-url"
        if not url and f.exists():
            url = f.read_text().strip()
        if not url:
            print("\nPostgreSQL: skipped (source scripts/services.sh first)")
            return
        import asyncpg

        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        name = f"twin_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(plain)
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            await bench(url.rsplit("/", 1)[0] + "/" + name, "PostgreSQL", args.searches,
                        args.bookings, args.concurrency)
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
