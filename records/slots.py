"""Free-slot computation (pure functions, no database).

For each day, each consultation range of the practitioner is filled from its start with
back-to-back appointments of the requested length; a busy interval pushes the next
candidate to the end of that interval. Everything is computed in the practice's local
time and returned timezone-aware.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["AFTERNOON_FROM", "DayPart", "Interval", "candidate_starts", "fits_schedule",
           "in_day_part", "overlaps"]

DayPart = Literal["morning", "afternoon"]
AFTERNOON_FROM = time(13, 0)  # a slot starting at 13:00 or later is "afternoon"


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def in_day_part(start: datetime, day_part: DayPart | None) -> bool:
    if day_part is None:
        return True
    is_afternoon = start.time() >= AFTERNOON_FROM
    return is_afternoon if day_part == "afternoon" else not is_afternoon


def fits_schedule(start: datetime, end: datetime,
                  ranges: Sequence[tuple[time, time]]) -> bool:
    """Whether [start, end) (local, same day) lies inside one of the day's ranges."""
    if start.date() != end.date() and end.time() != time(0):
        return False
    s, e = start.time(), end.time()
    return any(r0 <= s and e <= r1 for r0, r1 in ranges)


def candidate_starts(*, day: date, ranges: Sequence[tuple[time, time]], duration: timedelta,
                     busy: Sequence[Interval], tz: ZoneInfo, not_before: datetime,
                     day_part: DayPart | None = None,
                     weekdays: Collection[int] | None = None) -> Iterator[datetime]:
    """Free starts on ``day`` for one practitioner, in order.

    ``busy`` must be sorted by start; ``not_before`` is aware (now plus notice).
    """
    if weekdays is not None and day.weekday() not in weekdays:
        return
    for r0, r1 in ranges:
        t = datetime.combine(day, r0, tzinfo=tz)
        range_end = datetime.combine(day, r1, tzinfo=tz)
        while t + duration <= range_end:
            end = t + duration
            blocking = [b for b in busy if overlaps(t, end, b.start, b.end)]
            if blocking:
                t = max(b.end for b in blocking).astimezone(tz)
                continue
            if t >= not_before and in_day_part(t, day_part):
                yield t
            t = end
