"""Run planning with a fixed clock: intervals, catch-up, DST, month ends, end_date, @once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.models.specs import CronSchedule, DagSpec, DeltaSchedule
from orchestrator.scheduling.planning import (
    DataInterval,
    TooManyIntervals,
    backfill_intervals,
    latest_complete_interval,
    next_due,
    next_run,
    runs_to_create,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def dag(schedule: str | timedelta | None, start: datetime | None, **kw: Any) -> DagSpec:
    if isinstance(schedule, str):
        kw["schedule"] = CronSchedule(expression=schedule)
    elif isinstance(schedule, timedelta):
        kw["schedule"] = DeltaSchedule(every=schedule)
    return DagSpec(dag_id="d", start_date=start, **kw)


def starts(intervals: list[DataInterval]) -> list[datetime]:
    return [i.start for i in intervals]


def test_a_daily_run_starts_once_its_day_has_ended() -> None:
    spec = dag("@daily", utc(2026, 3, 10))
    assert next_run(spec, None, utc(2026, 3, 10, 23, 59)) is None
    assert next_run(spec, None, utc(2026, 3, 11)) == (utc(2026, 3, 10), utc(2026, 3, 11))
    assert next_due(spec, None) == utc(2026, 3, 11)


def test_catchup_makes_one_run_per_missed_interval() -> None:
    spec = dag("@daily", utc(2026, 3, 10))
    created = runs_to_create(spec, None, utc(2026, 3, 14, 12))
    assert starts(created) == [utc(2026, 3, d) for d in (10, 11, 12, 13)]
    assert created[-1].end == utc(2026, 3, 14)
    # the next pass, after the last one created, has nothing to do until the 15th
    assert runs_to_create(spec, created[-1], utc(2026, 3, 14, 12)) == []
    assert next_due(spec, created[-1]) == utc(2026, 3, 15)


def test_catchup_is_capped_per_pass_and_resumes() -> None:
    spec = dag("@hourly", utc(2016, 1, 1))
    now = utc(2026, 1, 1)
    first = runs_to_create(spec, None, now, limit=25)
    assert len(first) == 25 and first[0].start == utc(2016, 1, 1)
    second = runs_to_create(spec, first[-1], now, limit=25)
    assert second[0].start == utc(2016, 1, 2, 1)


def test_catchup_false_makes_only_the_latest_complete_interval() -> None:
    spec = dag("@daily", utc(2026, 1, 1), catchup=False)
    assert starts(runs_to_create(spec, None, utc(2026, 3, 14, 12))) == [utc(2026, 3, 13)]
    # after a pause of days, again only the latest
    last = DataInterval(utc(2026, 3, 13), utc(2026, 3, 14))
    assert starts(runs_to_create(spec, last, utc(2026, 3, 20, 1))) == [utc(2026, 3, 19)]
    # the catch-up override (unpausing with catchup=True behaviour is the DAG's own flag)
    assert len(runs_to_create(spec, last, utc(2026, 3, 20, 1), catchup=True)) == 6


def test_a_start_date_between_fire_times_starts_at_the_next_one() -> None:
    spec = dag("0 6 * * *", utc(2026, 3, 10, 7))
    assert starts(runs_to_create(spec, None, utc(2026, 3, 13))) == [
        utc(2026, 3, 11, 6),
    ]


def test_end_date_stops_the_schedule() -> None:
    spec = dag("@daily", utc(2026, 3, 1), end_date=utc(2026, 3, 3))
    created = runs_to_create(spec, None, utc(2026, 4, 1))
    assert starts(created) == [utc(2026, 3, 1), utc(2026, 3, 2), utc(2026, 3, 3)]
    assert next_due(spec, created[-1]) is None
    late = dag("@daily", utc(2026, 3, 1), end_date=utc(2026, 3, 3), catchup=False)
    assert runs_to_create(late, None, utc(2026, 4, 1)) == []


def test_once_runs_once_at_its_start_date() -> None:
    spec = dag("@once", utc(2026, 3, 10, 9))
    assert runs_to_create(spec, None, utc(2026, 3, 10, 8)) == []
    created = runs_to_create(spec, None, utc(2026, 3, 12))
    assert created == [(utc(2026, 3, 10, 9), utc(2026, 3, 10, 9))]
    assert runs_to_create(spec, created[0], utc(2027, 1, 1)) == []


def test_timedelta_schedules_step_from_start_date() -> None:
    spec = dag(timedelta(hours=5), utc(2026, 3, 10, 1))
    created = runs_to_create(spec, None, utc(2026, 3, 11))
    assert starts(created) == [utc(2026, 3, 10, h) for h in (1, 6, 11, 16)]
    assert created[-1].end == utc(2026, 3, 10, 21)
    latest = latest_complete_interval(
        dag(timedelta(hours=5), utc(2026, 3, 10, 1)), utc(2026, 3, 11)
    )
    assert latest == (utc(2026, 3, 10, 16), utc(2026, 3, 10, 21))


def test_unscheduled_or_startless_dags_get_no_runs() -> None:
    assert runs_to_create(dag(None, utc(2026, 1, 1)), None, utc(2026, 3, 1)) == []
    assert runs_to_create(dag("@daily", None), None, utc(2026, 3, 1)) == []


def test_taken_logical_dates_are_stepped_over() -> None:
    spec = dag("@daily", utc(2026, 3, 10))
    created = runs_to_create(spec, None, utc(2026, 3, 14), limit=2, taken={utc(2026, 3, 10)})
    assert starts(created) == [utc(2026, 3, 11), utc(2026, 3, 12)]


# --- month ends -----------------------------------------------------------------------------
def test_day_31_fires_only_in_months_that_have_one() -> None:
    spec = dag("0 0 31 * *", utc(2026, 1, 1))
    created = runs_to_create(spec, None, utc(2026, 8, 1))
    assert starts(created) == [utc(2026, m, 31) for m in (1, 3, 5)]
    assert created[-1].end == utc(2026, 7, 31)


def test_monthly_from_january_31_starts_on_february_1() -> None:
    spec = dag("@monthly", utc(2026, 1, 31))
    created = runs_to_create(spec, None, utc(2026, 5, 15))
    assert starts(created) == [utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)]
    assert created[0].end == utc(2026, 3, 1)


# --- DST in Europe/Amsterdam (UTC+1 winter, UTC+2 summer; 2026-03-29 and 2026-10-25) ----------
AMS = "Europe/Amsterdam"


def test_daily_at_2_follows_wall_time_and_the_skipped_hour_runs_at_3() -> None:
    spec = dag("0 2 * * *", utc(2026, 3, 27), timezone=AMS)
    created = runs_to_create(spec, None, utc(2026, 4, 1))
    assert starts(created)[:4] == [
        utc(2026, 3, 27, 1),  # 02:00 CET
        utc(2026, 3, 28, 1),  # 02:00 CET
        utc(2026, 3, 29, 1),  # 02:00 does not exist: 03:00 CEST, the same instant
        utc(2026, 3, 30, 0),  # 02:00 CEST
    ]
    assert created[1].end - created[1].start == timedelta(hours=24)
    assert created[2].end - created[2].start == timedelta(hours=23)


def test_a_skipped_half_hour_is_shifted_by_the_gap() -> None:
    spec = dag("30 2 * * *", utc(2026, 3, 28), timezone=AMS)
    created = runs_to_create(spec, None, utc(2026, 3, 31))
    # 02:30 CET, then 03:30 CEST on the gap day (01:30 UTC), then 02:30 CEST
    assert starts(created) == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30)]
    assert created[-1].end == utc(2026, 3, 30, 0, 30)


def test_a_repeated_wall_time_runs_once_at_its_first_occurrence() -> None:
    spec = dag("30 2 * * *", utc(2026, 10, 24), timezone=AMS)
    created = runs_to_create(spec, None, utc(2026, 10, 27, 2))
    assert starts(created) == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, first of the two; 02:30 CET is no run
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]
    assert created[1].end - created[1].start == timedelta(hours=25)


def test_hourly_keeps_real_hours_across_both_changes() -> None:
    spring = dag("@hourly", utc(2026, 3, 28, 23), timezone=AMS)
    made = runs_to_create(spring, None, utc(2026, 3, 29, 4))
    assert starts(made) == [utc(2026, 3, 28, 23) + timedelta(hours=h) for h in range(5)]
    autumn = dag("@hourly", utc(2026, 10, 24, 23), timezone=AMS)
    made = runs_to_create(autumn, None, utc(2026, 10, 25, 4))
    # 01:00, 02:00 CEST, 02:00 CET (the repeated hour), 03:00, 04:00 CET: every real hour
    assert starts(made) == [utc(2026, 10, 24, 23) + timedelta(hours=h) for h in range(5)]
    assert all(i.end - i.start == timedelta(hours=1) for i in made)


def test_catchup_false_across_dst_takes_the_latest_local_day() -> None:
    spec = dag("@daily", utc(2026, 1, 1), timezone=AMS, catchup=False)
    created = runs_to_create(spec, None, utc(2026, 3, 30, 12))
    # midnight of 30 March CEST is 22:00 UTC on the 29th; the latest complete day is the 29th
    assert created == [(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))]


# --- backfill -------------------------------------------------------------------------------
def test_backfill_takes_every_logical_date_in_the_inclusive_range() -> None:
    spec = dag("@daily", utc(2026, 1, 1))
    got = backfill_intervals(spec, utc(2026, 2, 1), utc(2026, 2, 3))
    assert starts(got) == [utc(2026, 2, d) for d in (1, 2, 3)]
    assert backfill_intervals(spec, utc(2026, 2, 1, 1), utc(2026, 2, 1, 23)) == []


def test_backfill_of_a_delta_schedule_keeps_its_grid() -> None:
    spec = dag(timedelta(hours=6), utc(2026, 1, 1, 3))
    got = backfill_intervals(spec, utc(2026, 2, 1), utc(2026, 2, 1, 12))
    assert starts(got) == [utc(2026, 2, 1, 3), utc(2026, 2, 1, 9)]


def test_a_huge_backfill_is_refused() -> None:
    spec = dag("* * * * *", utc(2026, 1, 1))
    with pytest.raises(TooManyIntervals, match="shorter range"):
        backfill_intervals(spec, utc(2026, 1, 1), utc(2026, 12, 31), limit=100)
