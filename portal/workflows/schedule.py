"""Cron expressions of schedule triggers: parsed by Celery's own crontab parser (already a dependency:
django-celery-beat is not), evaluated here in the trigger's time zone.

Five fields: minute hour day-of-month month day-of-week, with `*`, lists, ranges, steps and day names
(`0 8 * * mon`, `*/15 9-17 * * mon-fri`). As in Vixie cron, when both day fields are restricted a day
matching either one fires. Times are wall-clock times in the zone: across a daylight-saving change a
time that does not exist that day is skipped and one that occurs twice fires once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab

ERROR_CRON_FIELDS = "A cron expression has five fields (minute hour day-of-month month day-of-week), not {count}."
SEARCH_DAYS = 366 * 5  # a valid expression fires within this (29 February fires every four years)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday, as cron and Celery count
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days_of_month
        in_week = (day.isoweekday() % 7) in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_month or in_week
        return in_month and in_week


def parse_cron(expression: str) -> Cron:
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(ERROR_CRON_FIELDS.format(count=len(fields)))
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        parsed: Any = crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
        )
    except ValueError as error:
        raise ValueError(f"invalid cron expression: {error}") from error
    return Cron(
        minutes=frozenset(parsed.minute),
        hours=frozenset(parsed.hour),
        days_of_month=frozenset(parsed.day_of_month),
        months=frozenset(parsed.month_of_year),
        days_of_week=frozenset(parsed.day_of_week),
        day_of_month_restricted=day_of_month != "*",
        day_of_week_restricted=day_of_week != "*",
    )


def next_fire(expression: str, zone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after `after` (aware) at which the expression fires, as an aware UTC time."""
    cron = parse_cron(expression)
    tz = ZoneInfo(zone)
    local = after.astimezone(tz)
    start = local.replace(second=0, microsecond=0, tzinfo=None) + dt.timedelta(minutes=1)
    day = start.date()
    for _ in range(SEARCH_DAYS):
        if cron.day_matches(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = dt.datetime.combine(day, dt.time(hour, minute))
                    if wall < start:
                        continue
                    candidate = wall.replace(tzinfo=tz)
                    # a wall time that does not exist that day (clocks went forward) does not round-trip
                    if candidate.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != wall:
                        continue
                    utc = candidate.astimezone(dt.UTC)
                    if utc > after:
                        return utc
        day += dt.timedelta(days=1)
    raise ValueError(f"the cron expression {expression!r} never fires")
